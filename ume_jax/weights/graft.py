"""Where pre-trained weights enter a model: grafted onto fresh parameters.

``model.encoders.<m>.weights`` names a registered weight set (``""``: train
from scratch); ``weights_path`` optionally points at the file instead of the
pip package's copy. Every stage that initialises an encoder afresh starts it
from those weights: uni-modal pre-training (``encoder``) and the jointly
trained ``late_fusion`` baseline (``<m>_encoder``). Methods initialised from
uni-modal checkpoints inherit them from there.

An encoder whose weights come from a Hugging Face snapshot folder
(``hf_bert``, ``hf_vit``, ``hf_clip_vision``, ``hf_clip_text``) takes its
architecture from the folder's ``config.json``: ``with_architectures``
fills its kwargs in before anything is built, so the config a run records
names every size it was built with (kwargs given in the config win, e.g.
``depth=2`` to keep the first two layers).

The loaded tree may hold more than the encoder uses (an encoder built with
fewer layers or blocks than the checkpoint takes the first ones); every
parameter the encoder has must be in the file with the same shape.
"""
from typing import Any, Callable, Mapping

import jax
import numpy as np

from ume_jax.train.optim import param_path
from ume_jax.weights import registry
from ume_jax.weights.registry import WeightsError


def requested(encoders_config) -> dict[str, tuple[str, str]]:
  """modality -> (weight set, path) for encoders configured with weights."""
  out = {}
  for m, enc in encoders_config.items():
    name = enc.get("weights", "") or ""
    if name:
      out[m] = (name, enc.get("weights_path", "") or "")
  return out


def _leaves(tree, where: str) -> dict[str, Any]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {f"{where}/{param_path(p)}": x for p, x in flat}


def check_fits(target: Any, loaded: Any, *, where: str, source: str) -> None:
  """Every target parameter has a same-shaped loaded one, or an error."""
  have = _leaves(loaded, where)
  missing, bad = [], []
  for key, x in _leaves(target, where).items():
    if key not in have:
      missing.append(key)
    elif tuple(np.shape(have[key])) != tuple(x.shape):
      bad.append(f"{key}: model {tuple(x.shape)}, file"
                 f" {tuple(np.shape(have[key]))}")
  if missing or bad:
    raise WeightsError(
        f"Pre-trained weights from {source} do not fit parameters {where!r}"
        f" of the model: {len(missing)} missing (e.g. {missing[:3]}),"
        f" {len(bad)} with other shapes (e.g. {bad[:3]}). Check that"
        " model.encoders.<m>.name and its kwargs describe the architecture"
        " the weights were trained for.")


def graft(target: Any, loaded: Any, *, where: str, source: str) -> Any:
  """``target`` (sharded jax arrays) with values from ``loaded`` (numpy).

  Each array is built from its slices on the devices it lives on
  (``make_array_from_callback``), so it works unchanged across processes:
  every process reads the file and contributes its own shards.
  """
  check_fits(target, loaded, where=where, source=source)
  have = _leaves(loaded, where)

  def put(path, x):
    value = np.asarray(have[f"{where}/{param_path(path)}"], dtype=x.dtype)
    return jax.make_array_from_callback(x.shape, x.sharding,
                                        lambda index: value[index])

  return jax.tree_util.tree_map_with_path(put, target)


def initializer(encoders_config, subtree_of: Callable[[str], str]
                ) -> Callable[[Mapping], dict] | None:
  """``params -> params`` grafting the weights of the encoders configured.

  ``encoders_config`` maps the model's modalities to their encoder configs;
  ``subtree_of(m)`` names modality m's encoder parameters (``encoder`` in a
  uni-modal model, ``<m>_encoder`` in the late-fusion model). None when no
  encoder has weights configured.
  """
  wanted = requested(encoders_config)
  if not wanted:
    return None

  def init(params):
    params = dict(params)
    for m, (name, path) in wanted.items():
      key = subtree_of(m)
      source = f"{name!r} ({registry.locate(name, path)})"
      params[key] = graft(params[key], registry.load(name, path), where=key,
                          source=source)
    return params

  return init


def with_architectures(config):
  """``config``, or a copy whose snapshot encoders' kwargs hold the
  architecture their ``config.json`` describes (config kwargs win)."""
  wanted = {m: (name, path)
            for m, (name, path) in requested(config.model.encoders).items()
            if registry.get(name).from_snapshot}
  if not wanted:
    return config
  check_config(config.model.encoders,
               lambda m: config.model.encoders[m].name)
  config = config.copy_and_resolve_references()
  for m, (name, path) in wanted.items():
    enc = config.model.encoders[m]
    enc.kwargs = {**registry.architecture(name, path),
                  **dict(enc.get("kwargs") or {})}
  return config


def check_config(encoders_config, encoder_names_of: Callable[[str], str]
                 ) -> None:
  """Weight sets exist and fit the configured encoder kinds (no file read)."""
  for m, (name, path) in requested(encoders_config).items():
    ws = registry.get(name)
    if ws.encoder != encoder_names_of(m):
      raise WeightsError(
          f"config.model.encoders.{m}.weights = {name!r} holds weights for"
          f" encoder {ws.encoder!r}, but the encoder is"
          f" {encoder_names_of(m)!r}; set model.encoders.{m}.name ="
          f" {ws.encoder!r} or choose other weights.")
    registry.locate(name, path)   # the file exists, or say how to get it
