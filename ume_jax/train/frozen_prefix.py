"""Frozen encoder prefixes computed once per example instead of once per step.

When a stage freezes the lowest units of an encoder (``lr_multipliers`` of 0:
EfficientNet's stem and lower blocks, MiniLM's embeddings and lower layers
in ``configs/clipart.py``), those units compute the same output for the
same example in every step, epoch and stage. With ``frozen_prefix_cache``
on, the trainer computes them once per training example (the inputs as
preprocessed, un-augmented) and once for the substitute of an absent
input, stores them with the prepared data, and each step runs only the
units above (``encoder(x, start=k)``, ``models/``).

- **Where a prefix ends** (``split_points``): the lowest unit of the
  encoder that has a trainable parameter in this stage's optimizer config;
  a fully frozen encoder is cached whole (its output features).
- **What is cached, and under which key** (``entry_key``): per modality,
  the sha256 of the prefix parameters' bytes, the encoder's name and
  kwargs, the split and the data's identity (spec and data settings).
  Stages and seeds whose frozen weights are the same (every stage that
  starts from the same packaged weights: frozen units never move) share
  one entry. Files: ``<data_dir>/ume_jax_frozen_prefix/<key>/train.npy``
  and ``meta.json``, each written whole or not at all (``infra/paths``).
- **Which methods use it**: those whose training forward is the plain
  encoders (``Method.prefix_train_logits``): the uni-modal models and the
  late-fusion methods except ``umt`` (its loss reads the students' full
  features beside frozen teachers) and the prompted towers of ``prompts``
  (prompt tokens enter the frozen layers, so the prefix is no longer the
  same for every pattern; their other modalities are cached).
- **Refused** with data augmentation (``check_config``): an augmented input
  differs every epoch, so its prefix cannot be computed once.

The key of every entry a run used is recorded in its ``provenance.json``
(``provenance.check_frozen_prefix``).
"""
import dataclasses
import hashlib
import io
import json
import os
from typing import Any, Callable, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from ume_jax.infra import logs
from ume_jax.infra import mesh as mesh_lib
from ume_jax.infra import paths
from ume_jax.models.registry import build_encoder
from ume_jax.train import optim

CONFIG_KEY = "frozen_prefix_cache"
DIRNAME = "ume_jax_frozen_prefix"
_BATCH = 256   # examples per forward while filling the cache


class PrefixCacheError(ValueError):
  """The frozen-prefix cache cannot serve this config."""


def check_config(config) -> None:
  """Refuses the cache with data augmentation, before any work starts."""
  if not config.get(CONFIG_KEY, False):
    return
  if config.data.get("augment", False):
    raise PrefixCacheError(
        f"config.{CONFIG_KEY}=True with data.augment=True: augmentation"
        " changes the training inputs every epoch, so the outputs of an"
        " encoder's frozen lowest layers cannot be computed once per"
        f" example. Set {CONFIG_KEY}=False (the frozen layers then run in"
        " every step), or data.augment=False.")


@dataclasses.dataclass(frozen=True)
class Settings:
  """Where entries live, and the data's identity (part of every key)."""
  root: str
  data_identity: Mapping[str, Any]


def settings(config, data_identity: Mapping[str, Any]) -> Settings | None:
  """The run's cache settings, or None when the cache is off."""
  if not config.get(CONFIG_KEY, False):
    return None
  from ume_jax.data import prepare   # pylint: disable=g-import-not-at-top
  data_dir = config.data.get("data_dir") or prepare.DEFAULT_DATA_DIR
  return Settings(paths.join(os.path.expanduser(data_dir), DIRNAME),
                  data_identity)


@dataclasses.dataclass(frozen=True)
class Hooks:
  """How a method trains from cached prefixes (``Method.prefix``).

  ``encoders``: {modality: (encoder name, kwargs, parameter slot)} of the
  encoders it may run from a prefix; ``train_logits(params, batch, key,
  prefix)``: its training forward with those modalities' inputs replaced by
  prefix rows; ``fill(m, x)``: the substitute of absent inputs ``x`` of
  ``m`` (None, or returning None: absent inputs are not substituted).
  """
  encoders: Mapping[str, tuple[str, dict, str]]
  train_logits: Callable[..., jnp.ndarray]
  fill: Callable[[str, np.ndarray], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Prefix:
  """What a stage's train step needs: per cached modality the first unit
  it runs, the cached rows of the training split (host memory) and the
  substitute's row (None: the model substitutes features, ``learned``)."""
  starts: Mapping[str, int]
  rows: Mapping[str, np.ndarray]
  substitutes: Mapping[str, np.ndarray | None]
  keys: Mapping[str, str]

  def record(self) -> dict:
    """What provenance.json keeps of it."""
    return {m: {"key": self.keys[m], "first_trained_unit": self.starts[m]}
            for m in sorted(self.starts)}

  def gather(self, batch: dict) -> dict:
    """A host batch with each cached modality's input replaced by its rows
    (by the examples' ``index`` in the split)."""
    index = np.asarray(batch["index"])
    return {**batch, **{m: rows[index] for m, rows in self.rows.items()}}


def _flat(tree: Any) -> list[tuple[tuple[str, ...], Any]]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [(tuple(optim.param_path(p).split("/")), x) for p, x in leaves]


def split_points(hooks: Hooks, params: Any, stage_optim) -> dict[str, int]:
  """{modality: first trained unit k > 0} of every encoder of ``hooks``
  under the stage's optimizer config."""
  frozen = optim.frozen_mask(params, stage_optim)
  out = {}
  for m, (name, kwargs, slot) in hooks.encoders.items():
    encoder = build_encoder(name, kwargs)
    if not hasattr(encoder, "unit_of"):
      continue
    trained = [encoder.unit_of(path) for path, is_frozen in _flat(frozen[slot])
               if not is_frozen]
    k = min(trained) if trained else encoder.num_units()
    if k > 0:
      out[m] = k
  return out


def _digest(encoder, k: int, tree: Any) -> str:
  """sha256 of the parameters of units 0..k-1 (the others train: they are
  not what the cached rows came from)."""
  h = hashlib.sha256()
  for path, x in _flat(tree):
    if encoder.unit_of(path) >= k:
      continue
    x = np.asarray(jax.device_get(x))
    h.update("/".join(path).encode())
    h.update(str((x.shape, x.dtype.str)).encode())
    h.update(np.ascontiguousarray(x).tobytes())
  return h.hexdigest()


def entry_key(name: str, kwargs: Mapping, k: int, encoder_params: Any,
              data_identity: Mapping) -> str:
  what = json.dumps({"encoder": name, "kwargs": dict(kwargs), "stop": k,
                     "weights": _digest(build_encoder(name, kwargs), k,
                                        encoder_params),
                     "data": data_identity}, sort_keys=True, default=str)
  return hashlib.sha256(what.encode()).hexdigest()[:24]


def _prefix_fn(encoder, k: int, mesh):
  return jax.jit(lambda p, x: encoder.apply({"params": p}, x, stop=k),
                 out_shardings=mesh_lib.replicated(mesh))


def _compute_rows(dataset, m: str, fn, encoder_params, mesh) -> np.ndarray:
  """The prefix of every training example, in split order."""
  n = dataset.spec.split_sizes["train"]
  out = []
  for batch in dataset.eval_batches("train", _BATCH,
                                    mesh_lib.batch_sharding(mesh)):
    # Replicated: every process holds the whole batch's rows.
    out.append(np.asarray(fn(encoder_params, batch[m]).addressable_data(0)))
  return np.concatenate(out)[:n]


def _load(directory: str, n: int) -> np.ndarray | None:
  path = paths.join(directory, "train.npy")
  if not paths.isfile(path):
    return None
  try:
    rows = np.load(io.BytesIO(paths.read_bytes(path)), allow_pickle=False)
  except (OSError, ValueError) as e:
    logging.warning("Unreadable frozen-prefix cache %s (%s); recomputing.",
                    path, e)
    return None
  return rows if rows.shape[:1] == (n,) else None


def _store(directory: str, rows: np.ndarray, meta: dict) -> None:
  if jax.process_index() != 0:
    return
  buf = io.BytesIO()
  np.save(buf, rows, allow_pickle=False)
  try:
    paths.write_bytes(paths.join(directory, "train.npy"), buf.getvalue())
    paths.write_text(paths.join(directory, "meta.json"),
                     json.dumps(meta, indent=1, default=str))
  except OSError as e:
    # The rows are in memory: this run trains from them; later ones
    # recompute them.
    logging.warning("Cannot store the frozen-prefix cache in %s (%s); it"
                    " will be computed again by the next run.", directory, e)


def _substitute_row(hooks: Hooks, spec, m: str, fn, encoder_params) -> Any:
  """The prefix of what stands in for an absent ``m`` (None: nothing is
  substituted, or the model swaps features, ``learned``)."""
  x = np.zeros((1,) + tuple(spec.input_shapes[m]),
               spec.input_dtypes.get(m, "float32"))
  filled = None if hooks.fill is None else hooks.fill(m, x)
  if filled is None:
    return None
  return np.asarray(fn(encoder_params, filled).addressable_data(0))[0]


def prepare(method, params: Any, stage_optim, dataset, mesh,
            cfg: Settings) -> Prefix | None:
  """The stage's cached prefixes (computed and stored the first time);
  None when ``method`` cannot train from prefixes or no encoder of it has
  a frozen prefix here."""
  hooks = method.prefix
  if hooks is None:
    return None
  starts = split_points(hooks, params, stage_optim)
  if not starts:
    return None
  n = dataset.spec.split_sizes["train"]
  rows, subs, keys = {}, {}, {}
  for m, k in starts.items():
    name, kwargs, slot = hooks.encoders[m]
    encoder = build_encoder(name, kwargs)
    key = entry_key(name, kwargs, k, params[slot], cfg.data_identity)
    directory = paths.join(cfg.root, key)
    fn = _prefix_fn(encoder, k, mesh)
    rows[m] = _load(directory, n)
    if rows[m] is None:
      logs.announce(f"{method.name}: computing the frozen prefix of {m}"
                    f" (units 0-{k - 1} of {name}) for {n} training"
                    f" examples, once -> {directory}")
      rows[m] = _compute_rows(dataset, m, fn, params[slot], mesh)
      _store(directory, rows[m], {"key": key, "modality": m, "encoder": name,
                                  "kwargs": kwargs, "stop": k,
                                  "shape": list(rows[m].shape),
                                  "dtype": rows[m].dtype.str})
    subs[m] = _substitute_row(hooks, dataset.spec, m, fn, params[slot])
    keys[m] = key
  return Prefix(starts, rows, subs, keys)


def substitute(batch: dict, present: jnp.ndarray, modalities, prefix: Prefix
               ) -> dict:
  """``batch``'s cached inputs with absent rows replaced by the substitute's
  prefix (inside the step: ``present`` may be an augmented draw)."""
  out = dict(batch)
  for i, m in enumerate(modalities):
    row = prefix.substitutes.get(m) if m in prefix.starts else None
    if row is None:
      continue
    x = batch[m]
    keep = present[:, i].reshape((-1,) + (1,) * (x.ndim - 1))
    out[m] = jnp.where(keep, x, jnp.asarray(row, x.dtype)[None])
  return out
