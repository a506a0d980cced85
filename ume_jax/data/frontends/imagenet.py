"""The ImageNet front end of the "efficientnet_lite0" encoder (numpy).

torchvision's ImageNet convention, which efficientnet-lite-pytorch's own
example uses with these weights: RGB scaled to 0..1, minus the per-channel
ImageNet mean, divided by its std. The resize to the network's input size
is done by the encoder (``image_size``), on device, so the pipeline keeps
moving the dataset's small images.
"""
import numpy as np

from ume_jax.data.frontends import rgb

MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)

# The same in a dataset pipeline, whose image standardisation is
# (x / 255 - mean) / std per RGB channel.
PIPELINE_STATS_RGB = (MEAN_RGB, STD_RGB)


def normalize(images: np.ndarray) -> np.ndarray:
  """RGB uint8 images (..., H, W, 3) -> float32, ImageNet-normalised
  (computed in float64, as the parity fixture's script does)."""
  images = rgb.checked(images, "imagenet normalize")
  x = images.astype(np.float64) / 255.0
  return ((x - np.asarray(MEAN_RGB)) / np.asarray(STD_RGB)).astype(np.float32)
