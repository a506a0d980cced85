"""The field's missing-modality protocol (ume_jax/missing/protocol.py):
exact counts, exclusive sets under `both`, nested over eta."""
import numpy as np
import pytest

from ume_jax.missing import protocol

MODS = ("image", "text")


@pytest.mark.parametrize("n", [1000, 777])
@pytest.mark.parametrize("eta", [0.1, 0.5, 0.7, 1.0])
def test_both_marks_half_of_eta_lacking_each_modality_exclusively(n, eta):
  absent = protocol.absent_by_type(3, "both", eta, MODS, n)
  marked = int(np.floor(eta * n + 0.5))
  assert absent.any(1).sum() == marked           # round(eta N) examples
  assert not (absent[:, 0] & absent[:, 1]).any()  # each lacks one modality
  lacking = absent.sum(0)
  assert lacking.sum() == marked and abs(lacking[0] - lacking[1]) <= 1
  fractions = protocol.present_fractions("both", eta, MODS, n)
  np.testing.assert_allclose([fractions[m] for m in MODS],
                             1 - lacking / n)


@pytest.mark.parametrize("kind", ["image", "text", "both"])
def test_sets_at_a_smaller_eta_are_subsets_of_a_larger_one(kind):
  sets = [protocol.absent_by_type(5, kind, eta, MODS, 500)
          for eta in (0.1, 0.3, 0.7, 1.0)]
  for small, large in zip(sets, sets[1:]):
    assert not (small & ~large).any()
    assert small.sum() < large.sum()


def test_a_modality_type_marks_exactly_round_eta_n():
  absent = protocol.absent_by_type(0, "text", 0.3, MODS, 1001)
  assert absent[:, 1].sum() == 300 and not absent[:, 0].any()


def test_ranks_are_a_permutation_fixed_by_seed_and_type():
  r = protocol.ranks(7, 0, 200)
  assert sorted(r.tolist()) == list(range(200))
  np.testing.assert_array_equal(r, protocol.ranks(7, 0, 200))
  assert (r != protocol.ranks(8, 0, 200)).any()
  assert (r != protocol.ranks(7, 1, 200)).any()
  # An example's rank among the first 100 does not depend on later ones:
  # its key depends only on the seed, the type and its index.
  first = protocol.ranks(7, 0, 100)
  np.testing.assert_array_equal(np.argsort(r[:100]), np.argsort(first))


def test_more_modalities_spread_evenly_under_mixed():
  mods = ("a", "b", "c")
  assert protocol.canonical_type("both", mods) == "mixed"
  absent = protocol.absent_by_type(1, "mixed", 0.9, mods, 300)
  assert absent.sum(0).tolist() == [90, 90, 90]
  assert (absent.sum(1) <= 1).all()


def test_an_explicit_mix_is_exclusive_blocks():
  absent = protocol.absent_by_mix(2, {"image": 0.2, "text": 0.5}, MODS, 100)
  assert absent.sum(0).tolist() == [20, 50]
  assert not (absent[:, 0] & absent[:, 1]).any()
  with pytest.raises(protocol.ProtocolError, match="sum to at most 1"):
    protocol.absent_by_mix(2, {"image": 0.6, "text": 0.5}, MODS, 100)


def test_unknown_types_are_refused():
  with pytest.raises(protocol.ProtocolError, match="'audio'"):
    protocol.canonical_type("audio", MODS)
