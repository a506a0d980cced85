"""Fixtures: a fake asset and a dataset prepared from it, once per session."""

import ml_collections
import pytest

from tests import fakes


@pytest.fixture(scope="session")
def fake_asset(tmp_path_factory):
  return fakes.write_asset(tmp_path_factory.mktemp("asset") / "avdigits.npz")


@pytest.fixture(scope="session")
def fake_arrays():
  return fakes.make_arrays()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, fake_asset):
  from ume_jax.data.datasets import avdigits  # pylint: disable=g-import-not-at-top
  d = tmp_path_factory.mktemp("tfds")
  avdigits.prepare(d, fake_asset)
  return d


@pytest.fixture
def make_config(data_dir, fake_asset):
  def make(**overrides):
    cfg = dict(name="avdigits", data_dir=str(data_dir),
               asset_path=str(fake_asset), worker_count=0, augment=False)
    cfg.update(overrides)
    return ml_collections.ConfigDict(cfg)
  return make
