"""best_per_pattern (ume_jax/eval/pattern_choice.py): the choice on
validation, and the composite that applies it example by example."""
import jax.numpy as jnp
import numpy as np
import pytest

from ume_jax.eval import pattern_choice
from ume_jax.missing import scenarios as scenarios_lib

MODS = ("image", "audio", "text")
METHODS = ["unimodal:image", "unimodal:audio", "unimodal:text", "ume", "mma"]


def _table(rng, scenarios):
  return {m: {s.name: {"accuracy": float(rng.integers(0, 5)) / 4}
              for s in scenarios} for m in METHODS}


@pytest.mark.parametrize("seed", range(20))
def test_never_picks_a_candidate_worse_on_validation(seed):
  rng = np.random.default_rng(seed)
  scenarios = scenarios_lib.build_scenarios(MODS, (0.5,), ())
  validation = _table(rng, scenarios)   # coarse values: many ties
  choice = pattern_choice.choose(validation, "accuracy", MODS, scenarios)
  fixed = [s for s in scenarios if not s.has_rate]
  assert len(fixed) == 7                          # every non-empty subset
  assert set(choice) == {s.name for s in fixed}   # one per pattern
  for s in fixed:
    c = choice[s.name]
    cands = pattern_choice.candidates(validation, "accuracy", MODS,
                                      c["present"])
    best = max(validation[k][s.name]["accuracy"] for k in cands)
    assert validation[c["chosen"]][s.name]["accuracy"] == best
    # Ties go to the first candidate in order (ume, uni-modal, mma).
    first_best = next(k for k in cands
                      if validation[k][s.name]["accuracy"] == best)
    assert c["chosen"] == first_best
    # A uni-modal candidate is one whose modality is present.
    if c["chosen"].startswith("unimodal:"):
      m = c["chosen"].split(":")[1]
      assert c["present"][MODS.index(m)]


def test_the_composite_scores_each_example_by_its_own_pattern():
  mods = ("image", "audio")
  choice = {"full": {"present": [True, True], "chosen": "mma"},
            "missing:image": {"present": [False, True],
                              "chosen": "unimodal:audio"},
            "missing:audio": {"present": [True, False], "chosen": "ume"}}

  def member(value):
    return lambda params, batch, present: jnp.full(
        (present.shape[0], 3), value + params, jnp.float32)

  members = {"mma": member(1.0), "unimodal:audio": member(2.0),
             "ume": member(3.0), "unimodal:image": member(9.0)}
  fn, names = pattern_choice.composite(choice, members, mods)
  assert names == ["mma", "ume", "unimodal:audio"]
  present = jnp.asarray([[True, True], [False, True], [True, False],
                         [True, True]])
  out = fn({n: 0.0 for n in names}, {}, present)
  np.testing.assert_array_equal(out[:, 0], [1.0, 2.0, 3.0, 1.0])
