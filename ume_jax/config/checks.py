"""Config validation before anything is built: unknown keys, bad choices,
encoders that cannot take the dataset's inputs. Each error names the key."""
import difflib
from typing import Any, Mapping

from ume_jax import methods
from ume_jax.missing import masking
from ume_jax.train import optim
from ume_jax.models import classifier, registry
from ume_jax.weights import graft

_ENCODER_KEYS = {"name", "kwargs", "weights", "weights_path"}

STAGES = ("all", "pretrain", "finetune", "eval")

_STAGE_KEYS = {"num_epochs", "num_steps", "batch_size", "optim",
               "pretrained_dir"}
KNOWN_KEYS: dict[str, set[str] | None] = {
    "": {"seed", "stage", "data", "mesh", "model", "mma", "pretrain",
         "scratch", "finetune", "methods", "eval", "checkpoint",
         "log_every_steps", "train_missing"},
    "train_missing": {"rates", "seed"},
    "data": None,  # owned by the dataset registry, checked there
    "mesh": {"data", "fsdp"},
    "model": {"encoders", "fusion", "substitute", "missing_logits"},
    "mma": {"drop_probs"},
    "pretrain": _STAGE_KEYS,
    "scratch": _STAGE_KEYS,
    "finetune": _STAGE_KEYS,
    "optim": {"name", "learning_rate", "warmup_steps", "weight_decay",
              "momentum", "nesterov", "grad_clip_norm", "lr_multipliers",
              "final_lr_fraction"},
    "eval": {"batch_size", "missing_rates", "mask_seed", "checkpoint_dir",
             "primary_metric", "splits"},
    "checkpoint": {"max_to_keep", "every_steps", "asynchronous"},
}


class ConfigError(ValueError):
  """The config names something that does not exist or cannot work."""


def _check_keys(section: Mapping[str, Any], path: str):
  known = KNOWN_KEYS.get(path.rsplit(".", 1)[-1] if path else "")
  if known is None:
    return
  for key, value in section.items():
    full = f"{path}.{key}" if path else key
    if key not in known:
      hint = difflib.get_close_matches(key, sorted(known), n=1)
      raise ConfigError(
          f"Unknown config key {full!r}"
          + (f" (did you mean {hint[0]!r}?)" if hint else "")
          + f"; known keys under {path or 'the top level'}: {sorted(known)}.")
    if key in KNOWN_KEYS and hasattr(value, "items"):
      _check_keys(value, full)


def _one_of(value, choices, key):
  if value not in choices:
    raise ConfigError(f"config.{key} = {value!r}; expected one of"
                      f" {list(choices)}.")


def check_config(config):
  """Checks that need no dataset: keys and enumerated choices."""
  _check_keys(config, "")
  _one_of(config.stage, STAGES, "stage")
  _one_of(config.model.fusion, classifier.FUSIONS, "model.fusion")
  _one_of(config.model.substitute, masking.SUBSTITUTES, "model.substitute")
  _one_of(config.model.missing_logits, classifier.MISSING_LOGITS,
          "model.missing_logits")
  for name in config.methods:
    _one_of(name, methods.FUSION_METHODS, "methods[...]")
  for stage in ("pretrain", "scratch", "finetune"):
    _one_of(config[stage].optim.name, optim.OPTIMIZERS, f"{stage}.optim.name")


def check_against_dataset(config, spec):
  """Checks that the model config fits the dataset's modalities and shapes."""
  mods = set(spec.modalities)
  for key, section in (("model.encoders", config.model.encoders),
                       ("mma.drop_probs", config.mma.drop_probs)):
    if set(section) != mods:
      raise ConfigError(
          f"config.{key} has entries {sorted(section)} but dataset"
          f" {spec.name!r} has modalities {sorted(mods)}; give exactly one"
          " per modality.")
  for m, r in (config.train_missing.rates or {}).items():
    if (m not in mods and float(r) != 0.0) or not 0.0 <= float(r) < 1.0:
      raise ConfigError(
          f"config.train_missing.rates.{m} = {r}; expected a modality of"
          f" {spec.name!r} ({sorted(mods)}) and a fraction in [0, 1).")
  for m, p in config.mma.drop_probs.items():
    if not 0.0 <= float(p) < 1.0:
      raise ConfigError(f"config.mma.drop_probs.{m} = {p}; expected a"
                        " probability in [0, 1).")
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


def check_against_mesh(config, mesh):
  """Batch sizes must split evenly over the devices the batch is split on."""
  shards = mesh.size  # the batch spans every mesh axis (ume_jax/sharding.py)
  for key in ("pretrain", "scratch", "finetune", "eval"):
    size = int(config[key].batch_size)
    if size <= 0 or size % shards:
      raise ConfigError(
          f"config.{key}.batch_size = {size} does not split over the {shards}"
          f" devices of the mesh {dict(mesh.shape)}; use a positive multiple"
          f" of {shards}.")
