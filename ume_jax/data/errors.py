"""Errors raised by the input pipeline."""


class DataError(ValueError):
  """A data asset, prepared dataset or data directory is missing or unusable.

  The message is one paragraph naming the file or directory at fault, what was
  found and what was expected, so it can be acted on without a traceback.
  """
