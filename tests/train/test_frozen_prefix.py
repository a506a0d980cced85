"""Frozen encoder prefixes computed once (ume_jax/train/frozen_prefix.py):
training from the cache is training without it, entries are keyed by the
weights and reused, and what cannot be cached is refused or left alone."""
import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from tests import fakes as fx
from ume_jax import experiment
from ume_jax.config import common
from ume_jax.train import frozen_prefix, provenance, trainer

# Stem + mbconv0 of the image tower, embeddings + layer0 of the text tower
# frozen: both encoders start training at unit 2.
_FROZEN = ((r"(image_)?encoder/(stem|mbconv0)/.*", 0.0),
           (r"(text_)?encoder/(word_embed|pos_embed|type_embed|ln_embed"
            r"|layer0)(/.*)?", 0.0))


def _config(tmp, substitute="zeros"):
  tmp.mkdir(parents=True, exist_ok=True)
  c = common.base()
  c.data = ml_collections.ConfigDict(dict(
      name="clipart", data_dir=str(tmp / "tfds"),
      asset_path=str(fx.write_clipart_asset(tmp / "clipart.npz",
                                            sizes=(16, 8, 8))),
      worker_count=0, augment=False, modalities=("image", "text"),
      tokenizer="wordpiece", tokenizer_path="", vocab_size=60, max_len=8,
      image_normalization="imagenet"))
  c.model.encoders = ml_collections.ConfigDict({
      "image": common.encoder("efficientnet_lite0",
                              dict(blocks=2, head=False)),
      "text": common.encoder("bert", dict(
          vocab_size=60, max_positions=8, max_len=8, width=16, depth=2,
          heads=2, mlp_dim=32, pool="mean"))})
  common.set_modalities(c, ("image", "text"))
  c.model.substitute = substitute
  common.update_stages(c, num_epochs=0, num_steps=5, batch_size=8,
                       optim_values={"warmup_steps": 1})
  for stage in common.stages(c):
    stage.optim.lr_multipliers = _FROZEN
  c.checkpoint.asynchronous = False
  c.frozen_prefix_cache = True
  c.prompts.depth = 1
  return c


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("prefix")
  return {sub: experiment.setup(_config(tmp / sub, sub))
          for sub in ("zeros", "learned", "map")}


def _train(s, method, directory, cache: bool):
  c = s.config
  section = c[experiment.SECTION_OF.get(method.name, "pretrain")]
  settings = (frozen_prefix.settings(c, experiment.data_identity(s))
              if cache else None)
  return jax.device_get(trainer.train(
      method, section, dataset=s.dataset, mesh=s.mesh,
      directory=str(directory), seed=0, checkpoint_cfg=c.checkpoint,
      log_every_steps=5, prefix_cache=settings))


def _test_logits(s, method, params):
  batch = next(iter(s.dataset.eval_batches("test", 4, None)))
  present = np.asarray(batch["present"]).copy()
  present[::2, 1] = False   # some texts missing
  return np.asarray(method.eval_logits(params, batch, present))


def test_training_from_the_cache_is_training_without_it(built, tmp_path):
  """``mma`` draws absent modalities every step: their rows are the
  substitute's prefix (of zero inputs here)."""
  s = built["zeros"]
  method = s.methods.fusion["mma"]
  plain = _train(s, method, tmp_path / "plain", cache=False)
  cached = _train(s, method, tmp_path / "cached", cache=True)
  for path, a in jax.tree_util.tree_flatten_with_path(plain)[0]:
    b = dict(jax.tree_util.tree_flatten_with_path(cached)[0])[path]
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=2e-5,
                               err_msg=jax.tree_util.keystr(path))
  # The layers above the prefix trained, the prefix did not: the equality
  # is not that of two untrained models.
  init = jax.device_get(methods_init(s, method))
  for m, trained, frozen in (("image", "mbconv1", "mbconv0"),
                             ("text", "layer1", "layer0")):
    enc, enc0 = plain[f"{m}_encoder"], init[f"{m}_encoder"]
    assert any(not np.allclose(a, b) for a, b in zip(
        jax.tree.leaves(enc[trained]), jax.tree.leaves(enc0[trained])))
    for a, b in zip(jax.tree.leaves(enc[frozen]),
                    jax.tree.leaves(enc0[frozen])):
      np.testing.assert_array_equal(a, b)
  a, b = _test_logits(s, method, plain), _test_logits(s, method, cached)
  np.testing.assert_allclose(b, a, atol=1e-4)
  np.testing.assert_array_equal(b.argmax(-1), a.argmax(-1))


def test_each_substitute_trains_from_the_same_rows(built):
  """The cached rows do not depend on the substitute. Under ``learned``
  the model puts its token in place of an absent modality's features, so
  no substitute row is made (the step keeps the real rows, as the plain
  step keeps the real inputs); ``map``'s rows are the prefixes of an
  all-ones image and an empty text, not those of zeros."""
  rows, subs = {}, {}
  for sub in ("zeros", "learned", "map"):
    s = built[sub]
    method = s.methods.fusion["mma"]
    prefix = frozen_prefix.prepare(
        method, methods_init(s, method), s.config.finetune.optim, s.dataset,
        s.mesh, frozen_prefix.settings(s.config, experiment.data_identity(s)))
    rows[sub], subs[sub] = prefix.rows, prefix.substitutes
    if sub == "learned":
      assert all(v is None for v in prefix.substitutes.values())
    else:
      assert all(v is not None for v in prefix.substitutes.values())
    batch = prefix.gather(next(iter(s.dataset.eval_batches("train", 8,
                                                           None))))
    logits = jax.eval_shape(
        lambda p, b: method.prefix.train_logits(p, b, jax.random.key(0),
                                                prefix),
        methods_init(s, method), batch)
    assert logits.shape == (8, s.dataset.spec.num_classes)
  for sub in ("learned", "map"):
    for m in ("image", "text"):
      np.testing.assert_array_equal(rows[sub][m], rows["zeros"][m])
  # An empty text is zeros under both; an all-ones image is not a zero one.
  np.testing.assert_array_equal(subs["map"]["text"], subs["zeros"]["text"])
  assert not np.allclose(subs["map"]["image"], subs["zeros"]["image"])


def methods_init(s, method):
  """A fresh state's parameters, as the trainer creates them (seed 0)."""
  from ume_jax.train import optim, seeds   # pylint: disable=g-import-not-at-top
  tx = optim.make_optimizer(s.config.finetune.optim, 5)
  init_fn, _ = trainer.plan_state(method, tx, s.mesh)
  return init_fn(seeds.init_key(0)).params


def test_entries_are_keyed_by_weights_shared_and_recorded(built, tmp_path):
  s = built["zeros"]
  root = frozen_prefix.settings(s.config, experiment.data_identity(s)).root
  # Two runs from the same (seeded, frozen) weights: one entry per modality.
  run = tmp_path / "uni"
  os.makedirs(run)
  provenance.check_or_record(str(run), {"f": 1}, {}, has_checkpoint=False)
  _train(s, s.methods.unimodal["text"], run, cache=True)
  record = provenance.read(str(run))["frozen_prefix"]
  assert record["text"]["first_trained_unit"] == 2
  key = record["text"]["key"]
  meta = json.loads(open(os.path.join(root, key, "meta.json")).read())
  rows = np.load(os.path.join(root, key, "train.npy"))
  # Bert's state before layer1: (L, width + the padding-mask channel).
  assert rows.shape == (16, 8, 17) and meta["stop"] == 2
  mtime = os.path.getmtime(os.path.join(root, key, "train.npy"))
  _train(s, s.methods.unimodal["text"], tmp_path / "again", cache=True)
  assert os.path.getmtime(os.path.join(root, key, "train.npy")) == mtime
  # Other frozen weights: another key, and a run recorded with the first
  # refuses it.
  with pytest.raises(provenance.ProvenanceError, match="cached frozen"):
    provenance.check_frozen_prefix(
        str(run), {"text": {"key": "0" * 24, "first_trained_unit": 2}})


def test_split_points_follow_the_stage_optimizer(built):
  s = built["zeros"]
  method = s.methods.fusion["mma"]
  params = methods_init(s, method)
  hooks = method.prefix
  assert frozen_prefix.split_points(
      hooks, params, s.config.finetune.optim) == {"image": 2, "text": 2}
  assert frozen_prefix.split_points(hooks, params, {}) == {}
  # A fully frozen tower is cached whole: its output features.
  everything = {"lr_multipliers": ((r"image_encoder/.*", 0.0),)}
  image = frozen_prefix.split_points(hooks, params, everything)["image"]
  assert image == 4   # stem, mbconv0, mbconv1, pooling


def test_the_key_is_the_prefix_weights(built):
  """Training the layers above the prefix keeps the key; any change to a
  frozen weight, or to where the prefix ends, gives another."""
  s = built["zeros"]
  name, kwargs, _ = s.methods.fusion["mma"].prefix.encoders["image"]
  params = jax.device_get(methods_init(s, s.methods.fusion["mma"]))
  enc = params["image_encoder"]
  data = experiment.data_identity(s)
  key = frozen_prefix.entry_key(name, kwargs, 2, enc, data)
  bump = lambda block: {**enc, block: jax.tree.map(lambda x: x + 1e-3,
                                                   enc[block])}
  assert frozen_prefix.entry_key(name, kwargs, 2, bump("mbconv1"),
                                 data) == key
  assert frozen_prefix.entry_key(name, kwargs, 2, bump("mbconv0"),
                                 data) != key
  assert frozen_prefix.entry_key(name, kwargs, 3, enc, data) != key


def test_methods_that_cannot_train_from_prefixes_do_not(built):
  s = built["zeros"]
  c, spec = s.config, s.dataset.spec
  assert set(s.methods.fusion["mma"].prefix.encoders) == {"image", "text"}
  # umt's loss reads the students' whole features beside its teachers.
  assert fx.fusion(c, spec, "umt").prefix is None
  # Prompt tokens enter the text tower's frozen layers: only the image is
  # cacheable (its tower is no transformer, so it takes no prompts).
  assert set(fx.fusion(c, spec, "prompts").prefix.encoders) == {"image"}


def test_augmentation_is_refused_before_any_work(tmp_path):
  c = _config(tmp_path)
  c.data.augment = True
  with pytest.raises(frozen_prefix.PrefixCacheError,
                     match="data.augment=True"):
    experiment.setup(c)
