"""Config validation before anything is built: one pass over every key and
value against the schema its consumers declare (``rules.py``), then the
checks that need the dataset or the mesh. Each error names the key."""
import difflib
from typing import Any, Mapping

from ume_jax.config import common, rules
from ume_jax.missing import protocol
from ume_jax.models import registry
from ume_jax.weights import graft

_ENCODER_KEYS = {"name", "kwargs", "weights", "weights_path"}


class ConfigError(ValueError):
  """The config names something that does not exist or cannot work."""


def _check_value(value, rule, key: str) -> None:
  expected = rule(value)
  if expected:
    raise ConfigError(f"config.{key} = {value!r}; expected {expected}.")


def _walk(section: Mapping[str, Any], schema: rules.Schema, path: str):
  for key, value in section.items():
    full = f"{path}.{key}" if path else key
    if key not in schema:
      hint = difflib.get_close_matches(key, sorted(schema), n=1)
      raise ConfigError(
          f"Unknown config key {full!r}"
          + (f" (did you mean {hint[0]!r}?)" if hint else "")
          + f"; known keys under {path or 'the top level'}: {sorted(schema)}.")
    expected = schema[key]
    if expected is None:          # checked by its owner (data, encoders)
      continue
    if isinstance(expected, Mapping) or isinstance(expected, rules.PerKey):
      if not hasattr(value, "items"):
        raise ConfigError(f"config.{full} = {value!r}; expected a section"
                          " (a ConfigDict of keys).")
      if isinstance(expected, rules.PerKey):
        for k, v in value.items():
          _check_value(v, expected.rule, f"{full}.{k}")
      else:
        _walk(value, expected, full)
    else:
      _check_value(value, expected, full)


def check_config(config, schema: rules.Schema):
  """Every key of ``config`` known to ``schema``, every value within its
  rule: checks that need no dataset, run before anything is built."""
  _walk(config, schema, "")


def check_against_dataset(config, spec, vocab_sizes=None):
  """Checks that the model config fits the dataset's modalities and shapes
  (and, for token modalities whose tokenizer the loader knows,
  ``vocab_sizes``, that every id has a row in the encoder's embedding)."""
  mods = set(spec.modalities)
  for key, section in (("model.encoders", config.model.encoders),
                       ("mma.drop_probs", config.mma.drop_probs)):
    if set(section) != mods:
      raise ConfigError(
          f"config.{key} has entries {sorted(section)} but dataset"
          f" {spec.name!r} has modalities {sorted(mods)}; give exactly one"
          " per modality.")
  _check_missingness(config, spec)
  for m in spec.modalities:
    enc = config.model.encoders[m]
    unknown = set(enc) - _ENCODER_KEYS
    if unknown:
      raise ConfigError(
          f"Unknown config keys {sorted(unknown)} under"
          f" config.model.encoders.{m}; known: {sorted(_ENCODER_KEYS)}.")
    if enc.name not in registry.encoder_names():
      raise ConfigError(
          f"config.model.encoders.{m}.name = {enc.name!r} is not a registered"
          f" encoder; registered: {registry.encoder_names()}.")
    want = registry.input_ndim(enc.name)
    shape = tuple(spec.input_shapes[m])
    if want is not None and len(shape) != want:
      raise ConfigError(
          f"Encoder {enc.name!r} (config.model.encoders.{m}) takes inputs of"
          f" {want} dims per example, but dataset {spec.name!r} gives"
          f" {m} examples of shape {shape}; choose an encoder for that shape.")
    module = registry.build_encoder(enc.name, dict(enc.get("kwargs") or {}))
    problem = getattr(module, "input_problem", lambda _: None)(shape)
    if problem:
      raise ConfigError(
          f"Encoder {enc.name!r} (config.model.encoders.{m}) {problem}, but"
          f" dataset {spec.name!r} gives {m} examples of shape {shape}.")
    _check_vocab(m, enc.name, getattr(module, "vocab_size", None),
                 (vocab_sizes or {}).get(m), spec.name)
  graft.check_config(config.model.encoders,
                     lambda m: config.model.encoders[m].name)
  ints = [m for m, d in spec.input_dtypes.items() if "int" in str(d)]
  if config.model.substitute == "mean" and ints:
    raise ConfigError(
        f"config.model.substitute = 'mean' cannot stand in for {ints} of"
        f" dataset {spec.name!r}: they are token ids, which have no mean;"
        " use 'zeros' (all padding) or 'learned'.")
  if len(spec.modalities) < 2:
    raise ConfigError(f"Dataset {spec.name!r} has {len(spec.modalities)}"
                      " modality; late fusion needs at least two.")


def _check_vocab(m: str, encoder: str, table, vocab, dataset: str) -> None:
  """An id past the embedding table would be clamped by JAX, silently."""
  if table and vocab and int(vocab) > int(table):
    raise ConfigError(
        f"Encoder {encoder!r} (config.model.encoders.{m}) embeds {table}"
        f" token ids (vocab_size), but the {m} tokenizer of dataset"
        f" {dataset!r} emits ids up to {int(vocab) - 1}; give the encoder"
        f" vocab_size >= {vocab}, or the tokenizer its weights were trained"
        " with.")


def _missing_type(name: str, key: str, spec) -> None:
  try:
    protocol.canonical_type(name, spec.modalities)
  except protocol.ProtocolError as e:
    raise ConfigError(f"config.{key} = {name!r} for dataset {spec.name!r}:"
                      f" {e}") from None


def _check_missingness(config, spec) -> None:
  """Training-set missingness and evaluation types name this dataset's
  modalities; a type at a ratio and explicit rates are not both set."""
  mods = set(spec.modalities)
  tm = config.train_missing
  rates = {m: float(r) for m, r in (tm.rates or {}).items()}
  for m, r in rates.items():
    if m not in mods and r != 0.0:
      raise ConfigError(
          f"config.train_missing.rates.{m} = {r}; expected a modality of"
          f" {spec.name!r} ({sorted(mods)}).")
  if sum(rates.values()) > 1.0 + 1e-9:
    raise ConfigError(
        f"config.train_missing.rates = {rates} sum to"
        f" {sum(rates.values()):g}: each is the fraction of training examples"
        " lacking that modality, in exclusive sets, so they sum to at most 1.")
  if tm.type:
    _missing_type(tm.type, "train_missing.type", spec)
    if any(rates.values()):
      raise ConfigError(
          f"config.train_missing.type = {tm.type!r} and"
          f" config.train_missing.rates = {rates} are both set; give a type"
          " with a ratio, or per-modality rates, not both.")
  elif float(tm.ratio) > 0:
    raise ConfigError(
        f"config.train_missing.ratio = {tm.ratio} without a"
        " config.train_missing.type; give the type (a modality, or 'both').")
  for t in config.eval.missing_types:
    _missing_type(t, "eval.missing_types[...]", spec)


def check_against_mesh(config, mesh):
  """Batch sizes must split evenly over the devices the batch is split on."""
  shards = mesh.size  # the batch spans every mesh axis (infra/mesh.py)
  for key in common.STAGE_SECTIONS + ("eval",):
    size = int(config[key].batch_size)
    if size <= 0 or size % shards:
      raise ConfigError(
          f"config.{key}.batch_size = {size} does not split over the {shards}"
          f" devices of the mesh {dict(mesh.shape)}; use a positive multiple"
          f" of {shards}.")
