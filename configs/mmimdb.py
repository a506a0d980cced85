"""UME-MMA on MM-IMDB (poster image + plot text, 23 genres, multi-label).

  python -m ume_jax.main --config=configs/mmimdb.py \
      --config.data.manual_dir=/path/to/mmimdb --workdir=/tmp/ume_mmimdb

``data.manual_dir`` holds MM-IMDB in the raw form (split.json + {id}.jpeg /
{id}.json) or MultiBench's multimodal_imdb.hdf5 (see ume_jax/data/mmimdb.py).
A CPU smoke run (tiny encoders, a few hundred steps in all):
``--config=configs/mmimdb.py:small``.

Hyper-parameters. From the literature: the splits (15,552 / 2,608 / 7,799,
Arevalo et al. 2017, "Gated Multimodal Units for Information Fusion"); the
23-genre label set and macro-F1 as the headline metric (Arevalo et al.;
MultiBench, Liang et al. 2021; missing-aware prompts, Lee et al. CVPR 2023);
ResNet-18 poster encoder and a BERT-style word-piece text encoder (the
common uni-modal backbones of these benchmarks). Our choices (no reference
value used): posters at 128x80 (half MultiBench's 256x160), plots cut at 128
word pieces, a 4-layer 256-wide text transformer trained from scratch with an
8,000-piece vocabulary, AdamW 1e-3 with warm-up, batch 64, 20 / 20 / 10
epochs, MMA drop probability 0.5 per modality (as the default config).
"""
import importlib.util
import os

import ml_collections

try:
  from configs import default
except ImportError:  # loaded by path (config_flags) from another directory
  _spec = importlib.util.spec_from_file_location(
      "_ume_default_config", os.path.join(os.path.dirname(__file__),
                                          "default.py"))
  default = importlib.util.module_from_spec(_spec)
  _spec.loader.exec_module(default)


def get_config(arg=None):
  c = default.get_config()
  c.data = ml_collections.ConfigDict(dict(
      name="mmimdb", data_dir="", manual_dir="", worker_count=0,
      augment=True, image_size=(128, 80), vocab_size=8000, max_len=128))
  c.model.encoders = ml_collections.ConfigDict({
      "image": default.encoder(name="resnet18", kwargs={}),
      "text": default.encoder(name="text_transformer", kwargs=dict(
          vocab_size=8000, max_len=128, width=256, depth=4, heads=4,
          mlp_dim=1024, feature_dim=256)),
  })
  c.mma.drop_probs = {"image": 0.5, "text": 0.5}
  for stage, epochs in ((c.pretrain, 20), (c.scratch, 20), (c.finetune, 10)):
    stage.num_epochs = epochs
    stage.batch_size = 64
    stage.optim.learning_rate = 1e-3
    stage.optim.weight_decay = 1e-2
  c.finetune.optim.learning_rate = 3e-4
  c.eval.batch_size = 256
  c.eval.primary_metric = "f1_macro"
  c.log_every_steps = 100
  c.checkpoint.every_steps = 1000

  if arg == "small":
    c.data.image_size = (32, 32)
    c.data.vocab_size = 1000
    c.data.max_len = 64
    c.data.augment = False
    c.model.encoders.image = default.encoder(name="image_cnn", kwargs=dict(
        channels=(16, 32), strides=(2, 2), feature_dim=64))
    c.model.encoders.text.kwargs = dict(
        vocab_size=1000, max_len=64, width=64, depth=2, heads=2,
        mlp_dim=128, feature_dim=64)
    for stage in (c.pretrain, c.scratch, c.finetune):
      stage.num_epochs = 0
      stage.num_steps = 60
      stage.batch_size = 32
    c.eval.batch_size = 64
    c.eval.missing_rates = (0.5, 1.0)
    c.log_every_steps = 10
  elif arg not in (None, ""):
    raise ValueError(f"Unknown variant {arg!r} of configs/mmimdb.py;"
                     " expected '' or 'small'.")
  return c
