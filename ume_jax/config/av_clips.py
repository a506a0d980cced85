"""The audio-visual clip datasets' config (AVE, Kinetics-Sounds): ResNet-18
encoders on frames and a log-mel image, OGM-GE's optimiser, and the
``whisper`` and ``small`` variants. ``configs/ave.py`` and
``configs/kinetics_sounds.py`` are this with their dataset's name; their
docstrings say where each value comes from.
"""
import ml_collections

from ume_jax.config import common

VARIANTS = ("whisper", "small")


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


def get_config(dataset: str, arg=None):
  variants = common.parse_variants(arg, VARIANTS, f"configs/{dataset}.py")
  c = common.base()
  c.data = ml_collections.ConfigDict(dict(
      name=dataset,
      manual_dir="",       # output of scripts/extract_av_clips.py
      data_dir="",         # "" -> ~/.cache/ume_jax/tensorflow_datasets
      num_frames=3, image_size=112, n_mels=128, audio_frames=1024,
      audio_front_end="fbank",  # or "whisper" (Whisper's log-mel)
      audio_seconds=10.0,       # whisper front end only: 100 frames a second
      max_missing_fraction=0.05,  # clips gone from the lists' sources
      max_bad_fraction=0.01,      # clips whose frames / wav do not decode
      validation_fraction=0.1,  # kinetics_sounds only (AVE has valSet.txt)
      worker_count=0, augment=False, cache_in_memory=False))
  c.model.encoders = ml_collections.ConfigDict({
      "audio": common.encoder(name="resnet18", kwargs={}),
      "visual": common.encoder(name="resnet18", kwargs={}),
  })
  common.set_modalities(c, ("audio", "visual"))
  common.set_epochs(c, pretrain=100, scratch=100, finetune=30)
  common.update_stages(c, batch_size=64)
  common.set_optimizers(c, name="sgd", learning_rate=1e-3, warmup_steps=100,
                        momentum=0.9, grad_clip_norm=0.0,
                        final_lr_fraction=0.1)
  c.eval.batch_size = 128
  c.checkpoint.every_steps = 1000
  c.log_every_steps = 50

  if "small" in variants:
    tiny = dict(widths=(8, 16, 32, 64), feature_dim=64)
    c.model.encoders.audio.kwargs = dict(tiny)
    c.model.encoders.visual.kwargs = dict(tiny)
    c.data.update(dict(num_frames=2, image_size=64, n_mels=64,
                       audio_frames=256))
    common.smoke_run(c, num_steps=40, batch_size=32, warmup_steps=5)
    common.update_stages(c, optim_values={"learning_rate": 1e-2})
    c.checkpoint.every_steps = 20
    c.eval.batch_size = 64
  if "whisper" in variants:
    _use_whisper(c, small="small" in variants)
  return c


def _use_whisper(c, small: bool):
  """The pre-trained Whisper audio encoder on Whisper's log-mel."""
  depth = 2 if small else 4
  c.data.audio_front_end = "whisper"
  c.data.audio_seconds = 2.0 if small else 10.0
  c.model.encoders.audio = common.encoder(
      "whisper_tiny_en", {"depth": depth} if small else {},
      weights="whisper_tiny_en")
  for stage in common.stages(c):
    stage.optim.lr_multipliers = tuple(
        _whisper_rules(depth) + list(stage.optim.lr_multipliers))
