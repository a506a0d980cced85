"""Word-piece tokenizer for the text modality, trained on a training split.

Built with the Hugging Face ``tokenizers`` library: BERT-style normalisation
(lowercase, accents stripped, control characters removed), BERT
pre-tokenisation (whitespace and punctuation), a WordPiece model whose
vocabulary (fixed size) is chosen from the TRAINING texts only (see
``train_tokenizer``). Id 0 is ``[PAD]`` and id 1 is ``[UNK]``, so an all-zero
row is an all-padding sequence (the "zeros" substitute of an absent text).
Deterministic: the same texts give a byte-identical tokenizer file.

The trained tokenizer is cached as JSON next to the prepared dataset
(``<data_dir>/<dataset>/tokenizer_wordpiece_<vocab_size>.json``) with a
``.settings.json`` sidecar recording what it was trained from; a cached file
is reused only when those settings match, otherwise it is retrained.

``TextImagePreprocess`` is the grain transform of image+text datasets: images
are standardised as in ``transforms.Standardize``; raw UTF-8 text is encoded
here, at load time, into int32 ``(L,)`` ids (truncated, padded with 0), one
array per text field (``text``; or e.g. ``title`` and ``keywords`` when a
dataset offers its text as several modalities).
"""

import collections
import dataclasses
import json
import os
import pathlib
from typing import Callable, Iterable, Sequence

import grain
import numpy as np
import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers


PAD, UNK = "[PAD]", "[UNK]"
ALGORITHM = "wordpiece-frequent-words-bert-lowercase-v1"


def _normalize_and_split(texts: Iterable[str]):
  norm = normalizers.BertNormalizer(lowercase=True, strip_accents=True,
                                    clean_text=True)
  pre = pre_tokenizers.BertPreTokenizer()
  for t in texts:
    for word, _ in pre.pre_tokenize_str(norm.normalize_str(t)):
      yield word


def train_tokenizer(texts: Iterable[str], vocab_size: int
                    ) -> tokenizers.Tokenizer:
  """A lowercase WordPiece tokenizer for ``texts`` ([PAD] = 0, [UNK] = 1).

  The vocabulary is chosen here, deterministically, rather than by
  ``tokenizers.trainers.WordPieceTrainer``: that trainer breaks ties between
  equally frequent merges in hash-map order, so two runs on the same texts
  gave different vocabularies. Ours: the special
  tokens; every character seen at least twice, as a word start and as a
  ``##`` continuation (most frequent first, at most a quarter of the
  vocabulary); then the most frequent whole words (count >= 2). Ties are
  broken by the string. Words outside the vocabulary are split greedily into
  the longest known pieces (WordPiece), down to characters.
  """
  words = collections.Counter(_normalize_and_split(texts))
  chars = collections.Counter()
  for w, n in words.items():
    for ch in w:
      chars[ch] += n
  order = lambda counter: sorted(((-n, k) for k, n in counter.items()
                                  if n >= 2))
  budget = max(0, int(vocab_size) - 2)
  alphabet = [k for _, k in order(chars)][:max(1, budget // 8)]
  vocab = [PAD, UNK] + alphabet + ["##" + c for c in alphabet]
  seen = set(vocab)
  for _, w in order(words):
    if len(vocab) >= vocab_size:
      break
    if w not in seen:
      vocab.append(w)
      seen.add(w)
  vocab = vocab[:int(vocab_size)]
  tok = tokenizers.Tokenizer(models.WordPiece(
      {t: i for i, t in enumerate(vocab)}, unk_token=UNK,
      max_input_chars_per_word=100))
  tok.normalizer = normalizers.BertNormalizer(lowercase=True,
                                              strip_accents=True,
                                              clean_text=True)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.decoder = decoders.WordPiece()
  return tok


def cached_tokenizer(directory, train_texts: Callable[[], Sequence[str]],
                     vocab_size: int, source_key: str
                     ) -> tuple[tokenizers.Tokenizer, pathlib.Path]:
  """Loads the tokenizer cached in ``directory`` or trains and caches it.

  Args:
    directory: where the JSON lives (next to the prepared dataset).
    train_texts: called only when (re)training: the training split's texts.
    vocab_size: WordPiece vocabulary size.
    source_key: identifies what the training texts came from (dataset name,
      version and the fingerprint of the prepared dataset); the cache is
      reused only if its sidecar records the same key, algorithm and size.
  """
  directory = pathlib.Path(directory)
  path = directory / f"tokenizer_wordpiece_{int(vocab_size)}.json"
  meta_path = directory / f"tokenizer_wordpiece_{int(vocab_size)}.settings.json"
  settings = {"algorithm": ALGORITHM, "vocab_size": int(vocab_size),
              "source": source_key}
  if path.is_file() and meta_path.is_file():
    try:
      recorded = json.loads(meta_path.read_text())
      if all(recorded.get(k) == v for k, v in settings.items()):
        return tokenizers.Tokenizer.from_file(os.fspath(path)), path
    except Exception:  # pylint: disable=broad-except
      pass  # an unreadable cache is rebuilt below
  texts = list(train_texts())
  tok = train_tokenizer(texts, vocab_size)
  directory.mkdir(parents=True, exist_ok=True)
  tmp = directory / f".{path.name}.tmp"
  tok.save(os.fspath(tmp))
  os.replace(tmp, path)
  meta_path.write_text(json.dumps(
      {**settings, "num_train_texts": len(texts),
       "tokenizers_version": tokenizers.__version__}, indent=1))
  return tok, path


class TrainTexts:
  """A training split's texts for ``cached_tokenizer``: read from the
  records only when the tokenizer is (re)trained."""

  def __init__(self, source, field: str = "text"):
    self._source = source
    self._field = field

  def __call__(self) -> list[str]:
    return [as_str(self._source[i][self._field])
            for i in range(len(self._source))]


def encode(tok: tokenizers.Tokenizer, texts: Sequence[str], max_len: int
           ) -> np.ndarray:
  """Strings -> int32 (N, max_len) ids, truncated, right-padded with 0."""
  out = np.zeros((len(texts), int(max_len)), np.int32)
  if not len(texts):
    return out
  for i, enc in enumerate(tok.encode_batch(list(texts))):
    ids = enc.ids[:max_len]
    out[i, :len(ids)] = ids
  return out


def as_str(x) -> str:
  return x.decode("utf-8") if isinstance(x, (bytes, np.bytes_)) else str(x)


@dataclasses.dataclass(frozen=True)
class TextImagePreprocess(grain.transforms.Map):
  """uint8 image -> (x/255 - mean) / std (per channel); raw text -> int32 (L,) ids.

  Works on one example or a batch (the training pipeline batches first).
  The tokenizer is held as its JSON string (picklable for grain workers) and
  rebuilt lazily in each process.

  Attributes:
    image_stats: (mean, std) of image/255, per channel or scalar.
    tokenizer_json: ``Tokenizer.to_str()``.
    max_len: L.
    modalities: canonical modality order (for ``present``).
    multilabel: whether ``label`` is multi-hot.
    text_fields: the raw-text keys to encode, each into ids of its own name.
  """

  image_stats: tuple
  tokenizer_json: str
  max_len: int
  modalities: tuple = ("image", "text")
  multilabel: bool = False
  text_fields: tuple = ("text",)

  def _tok(self):
    tok = self.__dict__.get("_tok_cache")
    if tok is None:
      tok = tokenizers.Tokenizer.from_str(self.tokenizer_json)
      object.__setattr__(self, "_tok_cache", tok)
    return tok

  def __getstate__(self):
    state = dict(self.__dict__)
    state.pop("_tok_cache", None)
    return state

  def _ids(self, text) -> np.ndarray:
    if isinstance(text, np.ndarray) and text.ndim:
      return encode(self._tok(), [as_str(t) for t in text.reshape(-1)],
                    self.max_len).reshape(text.shape + (self.max_len,))
    return encode(self._tok(), [as_str(text)], self.max_len)[0]

  def map(self, element):
    mean, std = (np.asarray(v, np.float32) for v in self.image_stats)
    image = np.asarray(element["image"], np.float32) * np.float32(1 / 255)
    label = np.asarray(element["label"])
    ids = {f: self._ids(element[f]) for f in self.text_fields}
    batch_shape = ids[self.text_fields[0]].shape[:-1]
    return {"image": (image - mean) / std, **ids,
            "label": label.astype(np.float32 if self.multilabel else np.int32),
            "present": np.ones(batch_shape + (len(self.modalities),), bool)}
