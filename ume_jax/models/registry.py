"""Encoder registry: config names an encoder, this module builds it.

Adding an encoder is a one-file job: define a Linen module that maps a batch of
inputs ``(B, *shape)`` to features ``(B, D)``, declare ``input_ndim =
len(shape)`` as a class attribute (config checks use it), decorate it with
``@register_encoder("name")`` and import that file from ``models/__init__.py``.
"""
from typing import Callable

import flax.linen as nn

_ENCODERS: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str):
  """Class decorator adding an encoder constructor under ``name``."""

  def decorate(cls):
    if name in _ENCODERS:
      raise ValueError(f"Encoder {name!r} is registered twice.")
    _ENCODERS[name] = cls
    return cls

  return decorate


def encoder_names() -> list[str]:
  return sorted(_ENCODERS)


def input_ndim(name: str) -> int | None:
  """Dims per example the encoder accepts (its ``input_ndim``), if declared."""
  return getattr(_ENCODERS[name], "input_ndim", None)


def build_encoder(name: str, kwargs: dict | None = None,
                  module_name: str | None = None) -> nn.Module:
  """Instantiates the encoder registered as ``name`` with config ``kwargs``.

  Called inside a parent's ``@nn.compact`` method, the encoder binds to that
  parent under ``module_name``.
  """
  if name not in _ENCODERS:
    raise ValueError(
        f"Unknown encoder {name!r} (config key model.encoders.<modality>.name);"
        f" registered encoders are {encoder_names()}."
    )
  kwargs = dict(kwargs or {})
  try:
    return _ENCODERS[name](**kwargs, name=module_name)
  except TypeError as e:
    raise ValueError(
        f"Bad options {sorted(kwargs)} for encoder {name!r}: {e}") from None
