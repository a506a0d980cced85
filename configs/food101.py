"""UME-MMA on UPMC Food-101 (food photo + web-page title, 101 classes).

  python -m ume_jax.main --config=configs/food101.py \
      --config.data.manual_dir=/path/to/food101 --workdir=/tmp/ume_food101

``data.manual_dir`` holds images/{train,test}/<class>/*.jpg and
texts/{train,test}_titles.csv (see ume_jax/data/food101.py). A CPU smoke run:
``--config=configs/food101.py:small``.

Hyper-parameters. From the literature: the train/test split and 101 classes
of UPMC Food-101 (Wang et al. 2015, "Recipe recognition with large
multimodal food dataset"), accuracy as the metric (as there and in the
missing-aware-prompts benchmark, Lee et al. CVPR 2023); ResNet-18 for images
and a BERT-style word-piece text encoder as the usual uni-modal backbones.
Our choices: 5% of each class's train rows as validation (seeded), images at
128x128, titles cut at 32 word pieces, an 8,000-piece vocabulary, a 4-layer
256-wide text transformer from scratch, AdamW 1e-3, batch 128, 15 / 15 / 5
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
      name="food101", data_dir="", manual_dir="", worker_count=0,
      augment=True, image_size=(128, 128), validation_fraction=0.05,
      vocab_size=8000, max_len=32))
  c.model.encoders = ml_collections.ConfigDict({
      "image": default.encoder(name="resnet18", kwargs={}),
      "text": default.encoder(name="text_transformer", kwargs=dict(
          vocab_size=8000, max_len=32, width=256, depth=4, heads=4,
          mlp_dim=1024, feature_dim=256)),
  })
  c.mma.drop_probs = {"image": 0.5, "text": 0.5}
  for stage, epochs in ((c.pretrain, 15), (c.scratch, 15), (c.finetune, 5)):
    stage.num_epochs = epochs
    stage.batch_size = 128
    stage.optim.learning_rate = 1e-3
    stage.optim.weight_decay = 1e-2
  c.finetune.optim.learning_rate = 3e-4
  c.eval.batch_size = 256
  c.eval.primary_metric = "accuracy"
  c.log_every_steps = 100
  c.checkpoint.every_steps = 1000

  if arg == "small":
    c.data.image_size = (32, 32)
    c.data.vocab_size = 1000
    c.data.augment = False
    c.model.encoders.image = default.encoder(name="image_cnn", kwargs=dict(
        channels=(16, 32), strides=(2, 2), feature_dim=64))
    c.model.encoders.text.kwargs = dict(
        vocab_size=1000, max_len=32, width=64, depth=2, heads=2,
        mlp_dim=128, feature_dim=64)
    for stage in (c.pretrain, c.scratch, c.finetune):
      stage.num_epochs = 0
      stage.num_steps = 60
      stage.batch_size = 32
    c.eval.batch_size = 64
    c.eval.missing_rates = (0.5, 1.0)
    c.log_every_steps = 10
  elif arg not in (None, ""):
    raise ValueError(f"Unknown variant {arg!r} of configs/food101.py;"
                     " expected '' or 'small'.")
  return c
