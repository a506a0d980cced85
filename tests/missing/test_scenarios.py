"""Evaluation scenarios (ume_jax/missing/scenarios.py)."""
import jax.numpy as jnp
import numpy as np

from ume_jax.missing import protocol, scenarios


def _mask(s, index, seed=0, n=20_000):
  ranks = scenarios.rank_table(seed, len(s.always_absent), n)
  return np.asarray(scenarios.present_mask(scenarios.scenario_arrays(s, n),
                                           jnp.asarray(ranks),
                                           jnp.asarray(index)))


def test_two_modalities_names_and_duplicates():
  built = scenarios.build_scenarios(("image", "audio"), (0.5, 1.0))
  assert [s.name for s in built] == [
      "full", "missing:image", "missing:audio",
      "missing_rate:image:0.5", "missing_rate:image:1",
      "missing_rate:audio:0.5", "missing_rate:audio:1",
      "missing_rate:both:0.5", "missing_rate:both:1"]
  same = {s.name: s.same_as(("image", "audio")) for s in built}
  assert same["missing_rate:image:1"] == "missing:image"
  assert same["missing_rate:both:1"] is None
  assert [s.name for s in scenarios.distinct_missing(
      built, ("image", "audio"))] == [
          "missing:image", "missing:audio", "missing_rate:image:0.5",
          "missing_rate:audio:0.5", "missing_rate:both:0.5",
          "missing_rate:both:1"]


def test_in_step_masks_equal_the_protocol():
  mods = ("image", "text")
  for s in scenarios.build_scenarios(mods, (0.3, 0.7), ("text", "both"))[3:]:
    got = ~_mask(s, np.arange(999), seed=4, n=999)
    want = protocol.absent_by_type(4, s.missing_type, s.rate, mods, 999)
    np.testing.assert_array_equal(got, want)


def test_three_modalities_cover_every_nonempty_subset():
  mods = ("a", "b", "c")
  fixed = [s for s in scenarios.build_scenarios(mods, ())]
  present_sets = {tuple(s.fixed_present) for s in fixed}
  assert len(fixed) == 2 ** 3 - 1 == len(present_sets)
  assert (False, False, False) not in present_sets
  assert [s.name for s in scenarios.single_missing(fixed)] == [
      "missing:a", "missing:b", "missing:c"]


def test_rate_masks_fraction_nested_and_index_based():
  s3, s7 = scenarios.build_scenarios(("x", "y"), (0.3, 0.7))[3:5]
  index = np.arange(20_000)
  m3, m7 = _mask(s3, index), _mask(s7, index)
  assert (~m3[:, 0]).sum() == 6000 and (~m7[:, 0]).sum() == 14000
  assert m3[:, 1].all() and m7[:, 1].all()
  assert not (~m3[:, 0] & m7[:, 0]).any(), "rate masks are not nested"
  # The same examples in another order/batching get the same mask.
  perm = np.random.default_rng(0).permutation(index)[:500]
  np.testing.assert_array_equal(_mask(s3, perm), m3[perm])
  assert (_mask(s3, index, seed=1) != m3).any()


def test_fixed_scenarios_masks():
  full, miss_x, _ = scenarios.build_scenarios(("x", "y"), ())
  assert _mask(full, np.arange(10)).all()
  m = _mask(miss_x, np.arange(10))
  assert (~m[:, 0]).all() and m[:, 1].all()
