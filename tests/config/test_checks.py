"""Config validation (ume_jax/config/checks.py, rules.py): every shipped
config passes; a bad value anywhere is refused naming its key."""
import importlib.util
import os

import pytest

from ume_jax import experiment
from ume_jax.config import checks, common

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
SHIPPED = {
    "default": ("", "small", "hard,small"), "avmnist": ("", "small"),
    "mmimdb": ("", "small", "map", "map,small", "map,clip", "clip,small",
               "clip,tuned"),
    "food101": ("", "small", "map,small", "map,clip", "clip,small"),
    "clipart": ("", "small", "scratch", "three", "vgg", "three,small"),
    "ave": ("", "small", "whisper", "whisper,small"),
    "kinetics_sounds": ("", "whisper,small"),
}


def _load(name):
  spec = importlib.util.spec_from_file_location(
      f"_cfg_{name}", os.path.join(ROOT, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


SHIPPED_CONFIGS = [(n, v) for n, vs in SHIPPED.items() for v in vs]


@pytest.mark.parametrize("name,variant", SHIPPED_CONFIGS)
def test_every_shipped_config_passes(name, variant):
  checks.check_config(_load(name).get_config(variant),
                      experiment.CONFIG_SCHEMA)


# (key, bad value, words of what was expected)
BAD = [
    ("stage", "train", "one of ['all', 'pretrain', 'finetune', 'eval']"),
    ("seed", 1.5, "an integer"),
    ("log_every_steps", 0, "an integer in [1, inf]"),
    ("methods", ("mma", "ensemble"), "found 'ensemble'"),
    ("model.fusion", "attention", "one of ['sum_logits', 'concat_linear']"),
    ("model.substitute", "ones", "one of ['zeros', 'mean', 'learned', 'map']"),
    ("mma.drop_probs.audio", 1.0, "a number in [0, 1)"),
    ("umt.distill_weight", -1.0, "a number in [0, inf]"),
    ("prompts.length", 0, "an integer in [1, inf]"),
    ("prompts.depth", 2.5, "an integer in [1, inf]"),
    ("train_missing.rates.image", -0.1, "a number in [0, 1]"),
    ("train_missing.ratio", 1.5, "a number in [0, 1]"),
    ("num_seeds", 0, "an integer in [1, inf]"),
    ("pretrain.batch_size", 0, "an integer in [1, inf]"),
    ("scratch.num_steps", -5, "an integer in [0, inf]"),
    ("finetune.optim.learning_rate", -1.0, "a number in [0, inf]"),
    ("finetune.optim.name", "lamb", "one of ['adamw', 'sgd']"),
    ("pretrain.optim.momentum", 1.5, "a number in [0, 1]"),
    ("eval.missing_rates", (0.5, 1.5), "found 1.5"),
    ("eval.batch_size", -8, "an integer in [1, inf]"),
    ("checkpoint.max_to_keep", 0, "an integer in [1, inf]"),
    ("checkpoint.asynchronous", "yes", "True or False"),
]


@pytest.mark.parametrize("key,value,expected", BAD)
def test_a_bad_value_is_refused_naming_its_key(key, value, expected):
  """In every shipped config (where it has the key's section)."""
  swept = 0
  for name, variant in SHIPPED_CONFIGS:
    # A plain dict: a config file may hold any value, while a ConfigDict
    # refuses some of these at override time already.
    c = _load(name).get_config(variant).to_dict()
    *parents, leaf = key.split(".")
    section = c
    for p in parents:
      section = section.get(p, {})
    if leaf not in section and parents:
      continue     # e.g. mma.drop_probs.audio in an image+text config
    section[leaf] = value
    with pytest.raises(checks.ConfigError) as e:
      checks.check_config(c, experiment.CONFIG_SCHEMA)
    assert f"config.{key} = {value!r}" in str(e.value), (name, variant)
    assert expected in str(e.value)
    swept += 1
  assert swept >= 3


def test_unknown_keys_are_refused_with_a_hint():
  c = common.base()
  with c.unlocked():
    c.eval.mask_sed = 3
  with pytest.raises(checks.ConfigError,
                     match=r"'eval.mask_sed' \(did you mean 'mask_seed'\?\)"):
    checks.check_config(c, experiment.CONFIG_SCHEMA)


def test_every_key_of_the_base_config_is_declared():
  """The schema is the config's: a key without a rule would go unchecked."""
  def walk(section, schema, path):
    for key, value in section.items():
      assert key in schema, f"{path}{key} has no rule"
      if isinstance(schema[key], dict):
        walk(value, schema[key], f"{path}{key}.")
  walk(common.base(), experiment.CONFIG_SCHEMA, "")
