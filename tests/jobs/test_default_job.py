"""The default job (`make run`) end to end on the embedded dataset, with the
paper's claims checked on its test split: the numbers the README reports."""
import pytest

from configs import default as default_config
from ume_jax import experiment


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  config = default_config.get_config()
  config.data.data_dir = str(tmp_path_factory.mktemp("tfds"))
  # On the 8 fake test devices: sharded, where `make run` here uses one.
  return experiment.run(config, str(tmp_path_factory.mktemp("default_job")))


def _acc(results, method, scenario):
  return 100 * results["methods"][method][scenario]["accuracy"]


def test_embedded_dataset_modalities_strong_and_weak(results):
  image = _acc(results, "unimodal:image", "full")
  audio = _acc(results, "unimodal:audio", "full")
  assert image >= 95.0
  assert 50.0 <= audio <= image - 5.0


def test_ume_mma_reaches_the_ceiling_when_a_modality_is_missing(results):
  for m in ("image", "audio"):
    s = f"missing:{m}"
    assert _acc(results, "ume_mma", s) >= 100 * results["ceiling"][s] - 1.5


def test_ume_mma_full_at_least_best_unimodal(results):
  best = max(_acc(results, f"unimodal:{m}", "full") for m in ("image", "audio"))
  assert _acc(results, "ume_mma", "full") >= best


def test_mma_beats_late_fusion_on_every_missing_modality(results):
  for m in ("image", "audio"):
    s = f"missing:{m}"
    assert _acc(results, "mma", s) > _acc(results, "late_fusion", s)
