"""Optimisers from config: AdamW or SGD, warm-up + cosine, clipping, and
per-parameter-group learning-rate multipliers chosen by path regex.

``optim.lr_multipliers`` is a sequence of ``(regex, multiplier)``; the first
regex that matches a parameter path (``'image_encoder/conv0/kernel'``) sets its
multiplier; 0 freezes the parameter: no update, no optimizer state growth,
and (``frozen_mask`` used by the train step) no gradient computed for it, so
a frozen lower half of a pre-trained encoder costs no backward pass.
"""
import re
from typing import Any, Mapping, Sequence

import jax
import optax

from ume_jax.config import rules

OPTIMIZERS = ("adamw", "sgd")

# The keys of an ``optim`` section, and what each must be.
CONFIG_KEYS = {
    "name": rules.one_of(*OPTIMIZERS),
    "learning_rate": rules.number(0),
    "warmup_steps": rules.integer(0),
    "weight_decay": rules.number(0),
    "momentum": rules.number(0, 1),
    "nesterov": rules.boolean,
    "grad_clip_norm": rules.number(0),   # 0: no clipping
    "lr_multipliers": rules.each(rules.anything),
    "final_lr_fraction": rules.number(0, 1),
}


def _schedule(cfg: Mapping[str, Any], multiplier: float, total_steps: int):
  peak = float(cfg["learning_rate"]) * multiplier
  warmup = min(int(cfg.get("warmup_steps", 0)), max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      0.0, peak, warmup, max(total_steps, warmup + 1),
      end_value=peak * float(cfg.get("final_lr_fraction", 0.0)))


def learning_rate(cfg: Mapping[str, Any], total_steps: int, step: int
                  ) -> float:
  """The learning rate (multiplier 1) that training step ``step`` (1-based)
  applies: optax counts the updates before it."""
  return float(_schedule(cfg, 1.0, total_steps)(max(step - 1, 0)))


def _base(cfg: Mapping[str, Any], lr) -> optax.GradientTransformation:
  name = cfg["name"]
  if name == "adamw":
    return optax.adamw(lr, weight_decay=float(cfg.get("weight_decay", 0.0)))
  if name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(float(cfg.get("weight_decay", 0.0))),
        optax.sgd(lr, momentum=float(cfg.get("momentum", 0.9)) or None,
                  nesterov=bool(cfg.get("nesterov", False))))
  raise ValueError(f"Unknown optimizer {name!r} (config key optim.name);"
                   f" expected one of {OPTIMIZERS}.")


def param_path(key_path) -> str:
  """'image_encoder/conv0/kernel' from a jax key path."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", k)))
                  for k in key_path)


def group_of(path: str, rules: Sequence[tuple[str, float]]) -> int:
  """Index of the first rule whose regex matches ``path`` (len(rules) if none)."""
  for i, (regex, _) in enumerate(rules):
    if re.fullmatch(regex, path):
      return i
  return len(rules)


def _rules(cfg: Mapping[str, Any]) -> list[tuple[str, float]]:
  return [(str(r), float(m)) for r, m in cfg.get("lr_multipliers", ()) or ()]


def frozen_mask(params: Any, cfg: Mapping[str, Any]) -> Any:
  """Tree of bools: True where ``cfg.lr_multipliers`` gives multiplier 0."""
  rules = _rules(cfg)
  multipliers = [m for _, m in rules] + [1.0]
  return jax.tree_util.tree_map_with_path(
      lambda path, _: multipliers[group_of(param_path(path), rules)] == 0.0,
      params)


def with_frozen(cfg: Mapping[str, Any], paths: Sequence[str]
                ) -> Mapping[str, Any]:
  """``cfg`` with every parameter matching one of ``paths`` (regexes)
  frozen ahead of its own ``lr_multipliers``; ``cfg`` itself if none."""
  if not paths:
    return cfg
  plain = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
  return {**plain, "lr_multipliers": tuple((p, 0.0) for p in paths)
          + tuple(tuple(r) for r in plain.get("lr_multipliers", ()) or ())}


def make_optimizer(cfg: Mapping[str, Any], total_steps: int
                   ) -> optax.GradientTransformation:
  """The optax transformation for one training stage."""
  rules = _rules(cfg)
  multipliers = [m for _, m in rules] + [1.0]

  def labels(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: str(group_of(param_path(path), rules)), params)

  groups = {
      str(i): (optax.set_to_zero() if m == 0.0
               else _base(cfg, _schedule(cfg, m, total_steps)))
      for i, m in enumerate(multipliers)
  }
  tx = optax.multi_transform(groups, labels)
  clip = cfg.get("grad_clip_norm")
  if clip:
    tx = optax.chain(optax.clip_by_global_norm(float(clip)), tx)
  return tx
