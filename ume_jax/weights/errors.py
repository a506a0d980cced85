"""The error pre-trained weights raise: missing, unknown or not fitting."""


class WeightsError(ValueError):
  """Pre-trained weights missing, unknown or not fitting their encoder."""
