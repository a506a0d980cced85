"""Flax Linen modules, used pure-functionally (``init``/``apply`` on pytrees).

Importing this package registers the built-in encoders.
"""
from ume_jax.models import (  # noqa: F401  (registers encoders)
    bert, clip_text, cnn, efficientnet, resnet, text, vgg, vit, whisper)
from ume_jax.models.classifier import LateFusionClassifier, UniModalClassifier
from ume_jax.models.registry import build_encoder, encoder_names, register_encoder

__all__ = [
    "LateFusionClassifier",
    "UniModalClassifier",
    "build_encoder",
    "encoder_names",
    "register_encoder",
]
