"""BERT checkpoints (``BertModel``, ``BertForPreTraining``, ``BertFor*``)
-> the ``bert`` encoder's parameters; the architecture from config.json.

Keys are read with or without the ``bert.`` prefix the task models add;
their heads (``cls.*``, ``classifier.*``) are not part of the encoder and
are skipped. The pooler is converted when the file has one (``pool="pooler"``
needs it). Of the token-type table only row 0 is kept (see
``ume_jax/models/bert.py``); the ``position_ids`` buffer is not a weight.
"""
from ume_jax.weights import hf_layers, hf_snapshot
from ume_jax.weights.hf_snapshot import ConfigValues, Tensors
from ume_jax.weights.registry import register_snapshot


def architecture(c: ConfigValues) -> dict:
  """The ``bert`` encoder kwargs of a BertConfig."""
  c.require("position_embedding_type", "absolute", "absolute",
            "learned absolute positions")
  c.require("pad_token_id", 0, 0, "padding is id 0 in ume_jax's pipelines")
  positions = c.get("max_position_embeddings")
  return dict(vocab_size=c.get("vocab_size"), max_positions=positions,
              max_len=positions, width=c.get("hidden_size"),
              depth=c.get("num_hidden_layers"),
              heads=c.get("num_attention_heads"),
              mlp_dim=c.get("intermediate_size"),
              act=c.get("hidden_act", str, "gelu"),
              eps=c.get("layer_norm_eps", float, 1e-12))


def convert(t: Tensors, c: ConfigValues) -> dict:
  arch = architecture(c)
  width = arch["width"]
  p = hf_snapshot.prefix_of(t, "embeddings.word_embeddings.weight",
                            ("bert.", ""))
  e = f"{p}embeddings."
  types = t.take(f"{e}token_type_embeddings.weight",
                 (c.get("type_vocab_size", int, 2), width))
  tree = {
      "word_embed": {"embedding": t.take(f"{e}word_embeddings.weight",
                                         (arch["vocab_size"], width))},
      "pos_embed": t.take(f"{e}position_embeddings.weight",
                          (arch["max_positions"], width)),
      # Token type 0 only: every example is one sentence.
      "type_embed": types[0],
      "ln_embed": hf_layers.layer_norm(t, f"{e}LayerNorm", width),
      **hf_layers.layers(t, hf_layers.BERT, f"{p}encoder.layer.", arch),
  }
  if t.has(f"{p}pooler.dense.weight"):
    tree["pooler"] = hf_layers.dense(t, f"{p}pooler.dense", width, width)
  t.finish((p,) if p else ("",), r".*position_ids", f"BERT encoder {c.file} describes")
  return tree


WEIGHTS = register_snapshot("hf_bert", "bert", convert, architecture)
