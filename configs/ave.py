"""UME-MMA on AVE from your extracted clips (see ume_jax/data/ave.py).

  python scripts/extract_av_clips.py --dataset=ave --videos=AVE_Dataset/AVE \
      --lists=AVE_Dataset --out=/data/ave_clips
  python -m ume_jax.main --config=configs/ave.py --workdir=/tmp/ume_ave \
      --config.data.manual_dir=/data/ave_clips

A CPU smoke run (tiny ResNets, small inputs, ~200 steps in all):
``--config=configs/ave.py:small``.

Hyper-parameters from OGM-GE (github.com/GeWu-Lab/OGM-GE_CVPR2022, main.py
defaults and dataset/dataset.py): ResNet-18 audio and visual encoders, 3
frames per clip (``pick_num = 3``) averaged over time, SGD with momentum 0.9,
lr 1e-3, weight decay 1e-4, batch 64, 100 epochs.

Our choices: OGM-GE decays the lr x0.1 at epoch 70, we use the shared
warm-up + cosine schedule down to 0.1x; frames 112x112 (OGM-GE: 224) and a
128-mel fbank of 1024 frames (OGM-GE: librosa STFT magnitudes) to keep the
prepared data small; the audio spectrogram is an image (1024, 128, 1) for
the 2D ResNet; fine-tuning from the uni-modal models (no such stage in
OGM-GE) for 30 epochs with encoders at 0.1x the lr; eval batch 128.
"""
import importlib.util
import os

import ml_collections

try:
  from configs import default as default_config
except ImportError:  # run from outside the repository root: load by path
  _spec = importlib.util.spec_from_file_location(
      "_ume_default_config", os.path.join(os.path.dirname(__file__),
                                          "default.py"))
  default_config = importlib.util.module_from_spec(_spec)
  _spec.loader.exec_module(default_config)

DATASET = "ave"


def _sgd(learning_rate=1e-3, lr_multipliers=()):
  return ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=learning_rate, warmup_steps=100,
      weight_decay=1e-4, momentum=0.9, nesterov=False, grad_clip_norm=0.0,
      lr_multipliers=lr_multipliers, final_lr_fraction=0.1))


def get_config(arg=None, dataset=DATASET):
  c = default_config.get_config()
  c.data = ml_collections.ConfigDict(dict(
      name=dataset,
      manual_dir="",       # output of scripts/extract_av_clips.py
      data_dir="",         # "" -> ~/.cache/ume_jax/tensorflow_datasets
      num_frames=3, image_size=112, n_mels=128, audio_frames=1024,
      max_missing_fraction=0.05,
      validation_fraction=0.1,  # kinetics_sounds only (AVE has valSet.txt)
      worker_count=0, augment=False, cache_in_memory=False))
  c.model.encoders = ml_collections.ConfigDict({
      "audio": default_config.encoder(name="resnet18", kwargs={}),
      "visual": default_config.encoder(name="resnet18", kwargs={}),
  })
  c.mma.drop_probs = {"audio": 0.5, "visual": 0.5}
  for stage, epochs in ((c.pretrain, 100), (c.scratch, 100), (c.finetune, 30)):
    stage.num_epochs, stage.num_steps, stage.batch_size = epochs, 0, 64
  c.pretrain.optim = _sgd()
  c.scratch.optim = _sgd()
  c.finetune.optim = _sgd(lr_multipliers=((r".*_encoder/.*", 0.1),))
  c.eval.batch_size = 128
  c.checkpoint.every_steps = 1000
  c.log_every_steps = 50

  if arg == "small":
    tiny = dict(widths=(8, 16, 32, 64), feature_dim=64)
    c.model.encoders.audio.kwargs = dict(tiny)
    c.model.encoders.visual.kwargs = dict(tiny)
    c.data.update(dict(num_frames=2, image_size=64, n_mels=64,
                       audio_frames=256))
    for stage in (c.pretrain, c.scratch, c.finetune):
      stage.num_epochs, stage.num_steps, stage.batch_size = 0, 40, 32
      stage.optim.warmup_steps = 5
      stage.optim.learning_rate = 1e-2
    c.checkpoint.every_steps = 20
    c.log_every_steps = 10
    c.eval.batch_size = 64
    c.eval.missing_rates = (0.5, 1.0)
  elif arg not in (None, ""):
    raise ValueError(f"Unknown variant {arg!r} of configs/{dataset}.py;"
                     " expected '' or 'small'.")
  return c
