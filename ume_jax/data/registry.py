"""Dataset registry: `get_dataset(data_config)` dispatches on the name.

To add a dataset, write one module with a `load(data_config) -> Dataset`
factory and add it to `_FACTORIES` (or call `register`).
"""

from typing import Callable

import jax
from jax.experimental import multihost_utils

from ume_jax.data.datasets import ave
from ume_jax.data.datasets import avdigits
from ume_jax.data.datasets import avmnist
from ume_jax.data.datasets import clipart
from ume_jax.data.datasets import food101
from ume_jax.data.datasets import kinetics_sounds
from ume_jax.data.datasets import mmimdb
from ume_jax.data.errors import DataError
from ume_jax.data.pipeline import Dataset

_FACTORIES: dict[str, Callable[..., Dataset]] = {
    "avdigits": avdigits.load,
    "avmnist": avmnist.load,
    "clipart": clipart.load,
    "ave": ave.load,
    "kinetics_sounds": kinetics_sounds.load,
    "mmimdb": mmimdb.load,
    "food101": food101.load,
}


def register(name: str, factory: Callable[..., Dataset]) -> None:
  _FACTORIES[name] = factory


def known_datasets() -> list[str]:
  return sorted(_FACTORIES)


def get_dataset(data_config) -> Dataset:
  """Builds the dataset named `data_config.name` (an ml_collections.ConfigDict).

  Keys (read with .get): name, data_dir (None -> ~/.cache/ume_jax/
  tensorflow_datasets), worker_count (0), worker_buffer_size (1), augment
  (False), asset_path (None -> packaged asset), read_threads (None -> CPUs /
  max(worker_count, 1), at most 16), cache_in_memory (dataset's default; read
  each split into memory once).
  """
  name = data_config.get("name")
  if name not in _FACTORIES:
    raise DataError(f"Unknown dataset {name!r} (data.name); known datasets: "
                    f"{', '.join(known_datasets())}.")
  if jax.process_count() == 1:
    return _FACTORIES[name](data_config)
  # Preparing writes files: process 0 prepares, the others wait, then find it
  # prepared (shared filesystem) or prepare their own host's copy.
  dataset = _FACTORIES[name](data_config) if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices(f"ume_jax:prepared:{name}")
  return dataset or _FACTORIES[name](data_config)
