"""Pre-trained encoder weights read straight from the files pip packages ship.

Importing this package registers the built-in weight sets.
"""
from ume_jax.weights import (  # noqa: F401  (registers them)
    hf_bert, hf_clip, hf_vit, minilm, torch_efficientnet, vgg16, whisper)
from ume_jax.weights.registry import (WeightSet, WeightsError, load, locate,
                                      register_weights, weight_names)

__all__ = ["WeightSet", "WeightsError", "load", "locate", "register_weights",
           "weight_names"]
