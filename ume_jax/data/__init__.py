"""Input pipeline: dataset registry, tfds builders and grain pipelines.

    ds = get_dataset(config.data)            # ml_collections.ConfigDict
    it = ds.train_iterator(global_bs, sharding, seed=0)
    batch = next(it)                         # dict of global jax.Arrays
    for batch in ds.eval_batches("validation", global_bs, sharding): ...

Layout: ``registry`` (name -> dataset), ``pipeline`` (batches),
``spec``, ``errors``, ``transforms``, ``global_batch``; ``prepare``, the one
preparation and check of a dataset's files; ``datasets/``, one module per
dataset family; ``frontends/``, what turns raw audio, images and text into
what the encoders read.
"""

from ume_jax.data.errors import DataError
from ume_jax.data.pipeline import Dataset, TrainIterator
from ume_jax.data.registry import get_dataset, known_datasets, register
from ume_jax.data.spec import DatasetSpec

__all__ = [
    "DataError", "Dataset", "DatasetSpec", "TrainIterator", "get_dataset",
    "known_datasets", "register",
]
