"""Torch tensors -> the transformer towers' Flax parameters, layer by layer.

Torch ``Linear`` weights are (out, in): Flax kernels are (in, out). The
attention projections are reshaped to Flax's multi-head layout,
(embed, heads, head_dim) for query/key/value and (heads, head_dim, embed)
for the output; heads are contiguous slices of the hidden size in both.
Patch embeddings (a torch conv, (out, in, kh, kw)) become (kh, kw, in, out).

The functions use only ``.T``, ``.reshape`` and ``.transpose``, so the same
code converts numpy arrays (reading a checkpoint) and traced shapes
(``jax.eval_shape``: the full-size coverage test, with no weights).

``LayerNames`` is where each family keeps a layer's tensors; one layer of
every family becomes the same ``ume_jax/models/transformer.py`` layer.
"""
import dataclasses

from ume_jax.weights.hf_snapshot import Tensors


@dataclasses.dataclass(frozen=True)
class LayerNames:
  """Where, under a layer's prefix, each of its tensors is."""
  query: str
  key: str
  value: str
  out: str
  ln_attn: str
  mlp_in: str
  mlp_out: str
  ln_mlp: str


BERT = LayerNames(
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "attention.output.LayerNorm",
    "intermediate.dense", "output.dense", "output.LayerNorm")
VIT = LayerNames(
    "attention.attention.query", "attention.attention.key",
    "attention.attention.value", "attention.output.dense", "layernorm_before",
    "intermediate.dense", "output.dense", "layernorm_after")
CLIP = LayerNames(
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
    "self_attn.out_proj", "layer_norm1", "mlp.fc1", "mlp.fc2", "layer_norm2")


def dense(t: Tensors, prefix: str, n_in: int, n_out: int,
          bias: bool = True) -> dict:
  out = {"kernel": t.take(f"{prefix}.weight", (n_out, n_in)).T}
  if bias:
    out["bias"] = t.take(f"{prefix}.bias", (n_out,))
  return out


def layer_norm(t: Tensors, prefix: str, width: int) -> dict:
  return {"scale": t.take(f"{prefix}.weight", (width,)),
          "bias": t.take(f"{prefix}.bias", (width,))}


def attention(t: Tensors, names: LayerNames, prefix: str, width: int,
              heads: int) -> dict:
  head_dim = width // heads
  tree = {}
  for ours, theirs in (("query", names.query), ("key", names.key),
                       ("value", names.value)):
    d = dense(t, f"{prefix}.{theirs}", width, width)
    tree[ours] = {"kernel": d["kernel"].reshape(width, heads, head_dim),
                  "bias": d["bias"].reshape(heads, head_dim)}
  out = dense(t, f"{prefix}.{names.out}", width, width)
  tree["out"] = {"kernel": out["kernel"].reshape(heads, head_dim, width),
                 "bias": out["bias"]}
  return tree


def layer(t: Tensors, names: LayerNames, prefix: str, width: int, heads: int,
          mlp_dim: int) -> dict:
  """One layer ``prefix`` -> ``{attn, ln_attn, mlp_in, mlp_out, ln_mlp}``."""
  return {
      "attn": attention(t, names, prefix, width, heads),
      "ln_attn": layer_norm(t, f"{prefix}.{names.ln_attn}", width),
      "mlp_in": dense(t, f"{prefix}.{names.mlp_in}", width, mlp_dim),
      "mlp_out": dense(t, f"{prefix}.{names.mlp_out}", mlp_dim, width),
      "ln_mlp": layer_norm(t, f"{prefix}.{names.ln_mlp}", width),
  }


def layers(t: Tensors, names: LayerNames, prefix: str, arch: dict) -> dict:
  """``layer{i}`` for every layer of an encoder of architecture ``arch``
  (encoder kwargs: depth, width, heads, mlp_dim), read from
  ``{prefix}{i}``."""
  return {f"layer{i}": layer(t, names, f"{prefix}{i}", arch["width"],
                             arch["heads"], arch["mlp_dim"])
          for i in range(arch["depth"])}


def patch_embedding(t: Tensors, key: str, channels: int, width: int,
                    patch: int):
  """A torch conv weight (out, in, kh, kw) -> (kh, kw, in, out)."""
  return t.take(key, (width, channels, patch, patch)).transpose(2, 3, 1, 0)
