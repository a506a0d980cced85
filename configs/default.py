"""UME-MMA on the embedded audio-visual digits dataset (``avdigits``).

Run the whole method (pre-train -> fine-tune -> evaluate):

  python -m ume_jax.main --config=configs/default.py --workdir=/tmp/ume_default

One stage alone: ``--config.stage=pretrain|finetune|eval``. A laptop smoke run
(a few hundred steps in all): ``--config=configs/default.py:small``.
"""
import ml_collections


def _optim(name="adamw", learning_rate=3e-3, warmup_steps=50,
           lr_multipliers=()):
  return ml_collections.ConfigDict(dict(
      name=name, learning_rate=learning_rate, warmup_steps=warmup_steps,
      weight_decay=1e-4, momentum=0.9, nesterov=False, grad_clip_norm=1.0,
      lr_multipliers=lr_multipliers, final_lr_fraction=0.0))


def encoder(name, kwargs=None, weights="", weights_path=""):
  """One modality's encoder: a registered ``name`` with its ``kwargs``,
  started from pre-trained ``weights`` (a registered weight set; "" = from
  scratch), read from ``weights_path`` or else from the pip package that
  ships them."""
  return dict(name=name, kwargs=dict(kwargs or {}), weights=weights,
              weights_path=weights_path)


def _stage(num_epochs, batch_size, optim):
  return ml_collections.ConfigDict(dict(
      num_epochs=num_epochs, num_steps=0, batch_size=batch_size, optim=optim,
      pretrained_dir=""))


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.stage = "all"
  c.log_every_steps = 50

  c.data = ml_collections.ConfigDict(dict(
      name="avdigits", data_dir="", worker_count=0, augment=False,
      asset_path=""))
  # 'data' spans all devices; set fsdp > 1 to split parameters as well.
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))

  c.model = ml_collections.ConfigDict()
  c.model.encoders = ml_collections.ConfigDict({
      "image": encoder(name="image_cnn", kwargs={}),
      "audio": encoder(name="audio_cnn", kwargs={}),
  })
  c.model.fusion = "sum_logits"      # or "concat_linear"
  c.model.substitute = "zeros"       # or "mean", "learned"
  c.model.missing_logits = "keep"    # "drop": leave absent logits out

  # Missing-modality augmentation: per-sample drop probability per modality.
  c.mma = ml_collections.ConfigDict(dict(
      drop_probs={"image": 0.5, "audio": 0.5}))

  # Training-time missingness (the paper's page-8 experiment): a fraction of
  # *training* examples lacks a modality for good in every stage, e.g.
  # --config.train_missing.rates.audio=0.5. 0 = off.
  c.train_missing = ml_collections.ConfigDict(dict(
      rates={"image": 0.0, "audio": 0.0}, seed=7))

  c.pretrain = _stage(num_epochs=8, batch_size=128, optim=_optim())
  # The late_fusion baseline: trained jointly from scratch, same budget.
  c.scratch = _stage(num_epochs=8, batch_size=128, optim=_optim())
  # late_fusion_pretrained and mma: from uni-modal checkpoints; pre-trained
  # encoders move 10x slower than the fusion heads.
  c.finetune = _stage(num_epochs=4, batch_size=128, optim=_optim(
      learning_rate=1e-3, warmup_steps=20,
      lr_multipliers=((r".*_encoder/.*", 0.1),)))
  c.methods = ("late_fusion", "late_fusion_pretrained", "mma")

  c.eval = ml_collections.ConfigDict(dict(
      batch_size=512, missing_rates=(0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
      mask_seed=20231010, checkpoint_dir="", primary_metric=""))
  c.checkpoint = ml_collections.ConfigDict(dict(
      max_to_keep=2, every_steps=200, asynchronous=True))

  if arg == "small":
    for stage in (c.pretrain, c.scratch, c.finetune):
      stage.num_epochs = 0
      stage.num_steps = 30
      stage.batch_size = 64
    c.log_every_steps = 10
    c.eval.missing_rates = (0.5, 1.0)
  elif arg not in (None, ""):
    raise ValueError(f"Unknown variant {arg!r} of configs/default.py;"
                     " expected '' or 'small'.")
  return c
