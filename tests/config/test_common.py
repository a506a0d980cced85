"""The shared config building blocks (ume_jax/config/common.py)."""
import pytest

from ume_jax.config import common


def test_variants_parse_the_same_for_every_config():
  assert common.parse_variants(None, ("small",), "x.py") == set()
  assert common.parse_variants("", ("small",), "x.py") == set()
  assert common.parse_variants("small, three", ("small", "three"),
                               "x.py") == {"small", "three"}
  with pytest.raises(ValueError, match=r"Unknown variant\(s\) \['big'\] of"
                     r" configs/x.py; expected a comma-separated subset of"
                     r" \['small'\]"):
    common.parse_variants("small,big", ("small",), "configs/x.py")


def test_smoke_run_sets_every_stage():
  c = common.base()
  common.smoke_run(c, num_steps=7, batch_size=16, warmup_steps=3)
  for name, stage in zip(common.STAGE_SECTIONS, common.stages(c)):
    assert (stage.num_epochs, stage.num_steps, stage.batch_size,
            stage.optim.warmup_steps) == (0, 7, 16, 3), name
  assert c.log_every_steps == 10 and c.eval.missing_rates == (0.5, 1.0)
  # Other optimiser values are untouched: fine-tuning keeps its own lr.
  assert c.finetune.optim.learning_rate == 1e-3
  assert c.pretrain.optim.learning_rate == 3e-3


def test_set_modalities_keys_per_modality_sections_by_the_dataset():
  c = common.base()
  common.set_modalities(c, ("image", "text", "title"), drop_prob=0.3)
  assert c.mma.drop_probs.to_dict() == {"image": 0.3, "text": 0.3,
                                        "title": 0.3}
  assert c.train_missing.rates.to_dict() == {"image": 0.0, "text": 0.0,
                                             "title": 0.0}
