"""A snapshot's tokenizer.json as the text front end: truncation keeps the
end token, padding is 0, errors name the path; the ids equal transformers'
(tests/fixtures/hf/{bert,clip}_tiny); clipart's data.tokenizer="snapshot"."""

import pathlib

import ml_collections
import numpy as np
import pytest
import tokenizers
from tokenizers import models, pre_tokenizers, processors

from tests import fakes
from ume_jax.data.datasets import clipart
from ume_jax.data.errors import DataError
from ume_jax.data.frontends import pretrained_tokenizer
from ume_jax.data.frontends import text_tokenizer

HF = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "hf"
CLS, SEP = 2, 3


@pytest.fixture(scope="module")
def bert_json(tmp_path_factory):
  return fakes.write_wordpiece_tokenizer_json(
      tmp_path_factory.mktemp("bert"))


def test_truncation_keeps_sep_and_padding_is_zero(bert_json):
  tok = pretrained_tokenizer.load(bert_json.parent, 6)  # the folder
  long = " ".join(["space"] * 20)
  ids = text_tokenizer.encode(tok, [long, "war", ""], 6)
  space = tok.token_to_id("space")
  np.testing.assert_array_equal(ids[0], [CLS] + [space] * 4 + [SEP])
  np.testing.assert_array_equal(ids[1], [CLS, tok.token_to_id("war"), SEP,
                                         0, 0, 0])
  np.testing.assert_array_equal(ids[2], [CLS, SEP, 0, 0, 0, 0])
  assert ids.dtype == np.int32
  assert pretrained_tokenizer.vocab_size(tok) == tok.get_vocab_size()
  # The file itself works too.
  assert pretrained_tokenizer.load(bert_json, 6).to_str() == tok.to_str()


def test_padding_saved_in_the_file_is_ignored(tmp_path):
  path = fakes.write_wordpiece_tokenizer_json(
      tmp_path, padding=dict(length=40, pad_id=SEP, pad_token="[SEP]"))
  tok = pretrained_tokenizer.load(path, 8)
  ids = text_tokenizer.encode(tok, ["war"], 8)[0]
  assert list(ids[3:]) == [0] * 5


def test_clip_style_template_keeps_its_end_token(tmp_path):
  vocab = {"!": 0, "a</w>": 1, "b</w>": 2, "<|startoftext|>": 3,
           "<|endoftext|>": 4}
  tok = tokenizers.Tokenizer(models.BPE(vocab, [], end_of_word_suffix="</w>",
                                        unk_token="<|endoftext|>"))
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  tok.post_processor = processors.RobertaProcessing(
      ("<|endoftext|>", 4), ("<|startoftext|>", 3))
  tok.save(str(tmp_path / "tokenizer.json"))
  ids = text_tokenizer.encode(pretrained_tokenizer.load(tmp_path, 5),
                              ["a b a b a b", "b"], 5)
  np.testing.assert_array_equal(ids, [[3, 1, 2, 1, 4], [3, 2, 4, 0, 0]])


def test_missing_unreadable_and_too_short(tmp_path, bert_json):
  for path, fragment in ((tmp_path / "nope", "does not exist"),
                         (tmp_path, "folder without tokenizer.json"),
                         ("", "is not set")):
    with pytest.raises(DataError) as e:
      pretrained_tokenizer.load(path, 8)
    msg = str(e.value)
    for want in (str(path), "data.tokenizer_path", fragment,
                 "snapshot folder", "tokenizer.json"):
      assert want in msg, (want, msg)
    assert "\n" not in msg
  bad = tmp_path / "tokenizer.json"
  bad.write_text('{"model": ')
  with pytest.raises(DataError) as e:
    pretrained_tokenizer.load(bad, 8)
  assert str(bad) in str(e.value) and "cannot be read" in str(e.value)
  with pytest.raises(DataError, match="data.max_len = 2"):
    pretrained_tokenizer.load(bert_json, 2)  # [CLS] + [SEP] and no text


@pytest.mark.parametrize("name", ["bert_tiny", "clip_tiny"])
def test_matches_transformers_input_ids(name):
  folder = HF / name
  if not (folder / "reference.npz").is_file():
    pytest.skip(f"{folder} has no reference.npz yet")
  ref = np.load(folder / "reference.npz")
  want, mask = ref["input_ids"], ref["attention_mask"].astype(bool)
  tok = pretrained_tokenizer.load(folder, want.shape[1])
  got = text_tokenizer.encode(tok, [str(t) for t in ref["texts"]],
                              want.shape[1])
  np.testing.assert_array_equal(got[mask], want[mask])
  assert (got[~mask] == 0).all()
  # Every text, the truncated ones too, ends with the template's end token.
  end = want[0, mask[0].sum() - 1]
  np.testing.assert_array_equal(got[np.arange(len(got)), mask.sum(1) - 1],
                                end)


def test_clipart_snapshot_tokenizer(tmp_path, bert_json):
  asset = fakes.write_clipart_asset(tmp_path / "clipart.npz")
  ds = clipart.load(ml_collections.ConfigDict(dict(
      name="clipart", data_dir=str(tmp_path / "tfds"), asset_path=str(asset),
      tokenizer="snapshot", tokenizer_path=str(bert_json.parent),
      max_len=8)))
  b = next(ds.eval_batches("train", 6, None, process_index=0,
                           process_count=1))
  arrays, _ = clipart.load_asset(asset)
  want = text_tokenizer.encode(pretrained_tokenizer.load(bert_json, 8),
                               arrays["train"]["text"], 8)
  np.testing.assert_array_equal(b["text"], want)
  assert ds.spec.input_shapes["text"] == (8,)
  # No WordPiece vocabulary was trained for it.
  assert not list((tmp_path / "tfds").rglob("tokenizer_wordpiece_*"))
  with pytest.raises(DataError, match="data.tokenizer_path"):
    clipart.load(ml_collections.ConfigDict(dict(
        name="clipart", data_dir=str(tmp_path / "tfds"),
        asset_path=str(asset), tokenizer="snapshot")))
