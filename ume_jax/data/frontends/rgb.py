"""The input every pre-trained image front end starts from: RGB uint8."""
import numpy as np


def checked(images, who: str) -> np.ndarray:
  """``images`` as an array of RGB uint8 images (..., H, W, 3), or a
  ValueError naming ``who`` and what it got."""
  images = np.asarray(images)
  if images.ndim < 3 or images.shape[-1] != 3:
    raise ValueError(f"{who} expects RGB images (..., height, width, 3);"
                     f" got shape {images.shape}")
  if images.dtype != np.uint8:
    raise ValueError(f"{who} expects uint8 RGB images (0..255); got dtype"
                     f" {images.dtype}")
  return images
