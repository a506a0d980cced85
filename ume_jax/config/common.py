"""Building blocks of every config in ``configs/``: the base config, encoder
and optimiser sections, the training-stage sections, and the one variant
syntax (``--config=configs/x.py:small,three``).

A per-dataset config is ``base()`` plus a few overrides, e.g.::

  from ume_jax.config import common

  def get_config(arg=None):
    variants = common.parse_variants(arg, ("small",), "configs/x.py")
    c = common.base()
    c.data = ...
    if "small" in variants:
      common.smoke_run(c, num_steps=30, batch_size=32)
    return c
"""
from typing import Iterable, Sequence

import ml_collections

# The config sections that each hold one kind of training run's budget and
# optimiser: uni-modal pre-training, the late_fusion baseline trained from
# scratch, and fine-tuning from the uni-modal checkpoints.
STAGE_SECTIONS = ("pretrain", "scratch", "finetune")
# Fine-tuning from uni-modal checkpoints: the pre-trained encoders move 10x
# slower than the fusion heads.
SLOWER_ENCODERS = ((r".*_encoder/.*", 0.1),)


def parse_variants(arg: str | None, known: Sequence[str],
                   config_file: str) -> set[str]:
  """``"small,three"`` -> ``{"small", "three"}``; unknown names refused."""
  variants = {v.strip() for v in (arg or "").split(",") if v.strip()}
  unknown = variants - set(known)
  if unknown:
    raise ValueError(f"Unknown variant(s) {sorted(unknown)} of {config_file};"
                     f" expected a comma-separated subset of {list(known)}.")
  return variants


def encoder(name, kwargs=None, weights="", weights_path=""):
  """One modality's encoder: a registered ``name`` with its ``kwargs``,
  started from pre-trained ``weights`` (a registered weight set; "" = from
  scratch), read from ``weights_path`` or else from the pip package that
  ships them."""
  return dict(name=name, kwargs=dict(kwargs or {}), weights=weights,
              weights_path=weights_path)


def optim(name="adamw", learning_rate=3e-3, warmup_steps=50,
          lr_multipliers=(), weight_decay=1e-4, momentum=0.9,
          grad_clip_norm=1.0, final_lr_fraction=0.0
          ) -> ml_collections.ConfigDict:
  """An optimiser section (``ume_jax/train/optim.py``)."""
  return ml_collections.ConfigDict(dict(
      name=name, learning_rate=learning_rate, warmup_steps=warmup_steps,
      weight_decay=weight_decay, momentum=momentum, nesterov=False,
      grad_clip_norm=grad_clip_norm, lr_multipliers=lr_multipliers,
      final_lr_fraction=final_lr_fraction))


def set_optimizers(c, **optim_kwargs) -> None:
  """The same optimiser (``optim(**optim_kwargs)``) for every stage, with
  fine-tuning's pre-trained encoders at ``SLOWER_ENCODERS``."""
  for name in STAGE_SECTIONS:
    multipliers = SLOWER_ENCODERS if name == "finetune" else ()
    c[name].optim = optim(lr_multipliers=multipliers, **optim_kwargs)


def stage(num_epochs, batch_size, optim_cfg) -> ml_collections.ConfigDict:
  """A training-stage section: budget (epochs, or steps when > 0), batch
  size and optimiser."""
  return ml_collections.ConfigDict(dict(
      num_epochs=num_epochs, num_steps=0, batch_size=batch_size,
      optim=optim_cfg, pretrained_dir=""))


def stages(c) -> list[ml_collections.ConfigDict]:
  """The three stage sections of config ``c``, in ``STAGE_SECTIONS`` order."""
  return [c[name] for name in STAGE_SECTIONS]


def update_stages(c, *, optim_values: dict | None = None, **values) -> None:
  """Sets ``values`` (and ``optim_values`` in their optimisers) on every
  stage section."""
  for s in stages(c):
    s.update(values)
    if optim_values:
      s.optim.update(optim_values)


def set_epochs(c, *, pretrain, scratch, finetune) -> None:
  for name, epochs in zip(STAGE_SECTIONS, (pretrain, scratch, finetune)):
    c[name].num_epochs = epochs
    c[name].num_steps = 0


def per_modality(modalities: Iterable[str], value) -> dict:
  return {m: value for m in modalities}


def smoke_run(c, *, num_steps: int, batch_size: int,
              warmup_steps: int | None = None,
              missing_rates: Sequence[float] = (0.5, 1.0)) -> None:
  """The ``:small`` variants' common part: a few dozen steps a stage, a log
  line every 10, two evaluation rates."""
  update_stages(c, num_epochs=0, num_steps=num_steps, batch_size=batch_size,
                optim_values=(None if warmup_steps is None
                              else {"warmup_steps": warmup_steps}))
  c.log_every_steps = 10
  c.eval.missing_rates = tuple(missing_rates)
  # Tiny towers have a layer or two.
  c.prompts.update(dict(length=4, depth=1))


# The evaluation grid of the field's missing-rate sweeps: 0.1 ... 1.0 (rate
# 0 is the ``full`` scenario).
RATE_GRID = tuple(round(0.1 * i, 1) for i in range(1, 11))


def map_protocol(c, text: str = "text", image: str = "image") -> None:
  """Missing-aware prompts' setting (Lee et al., CVPR'23, kept by its
  successors): 70% of the training examples miss a modality, half the text
  and half the image (``both``), for good; evaluation of each test type -
  text, image, both - over the rate grid, 70% being the headline column
  (``results.md`` prints it in those papers' layout). The substitute stays
  the configured one; ``model.substitute = "map"`` is MAP's own (an all-ones
  image, an empty text)."""
  c.train_missing.type, c.train_missing.ratio = "both", 0.7
  c.eval.missing_types = (text, image, "both")
  c.eval.missing_rates = RATE_GRID


def base() -> ml_collections.ConfigDict:
  """The shared config: avdigits, two CNN encoders, 8 / 8 / 4 epochs.

  Per-dataset configs override ``data``, ``model.encoders``, the
  per-modality dicts (``mma.drop_probs``, ``train_missing.rates``) and the
  stage budgets.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Replicates of the whole method (seed_<k>/ each), aggregated with
  # intervals; 1 = one run in the workdir itself.
  c.num_seeds = 1
  c.stage = "all"
  c.log_every_steps = 50
  # Frozen lowest encoder layers run once per training example, cached with
  # the prepared data (ume_jax/train/frozen_prefix.py); refused with
  # data.augment. Off by default: only configs with frozen layers gain.
  c.frozen_prefix_cache = False

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
  c.model.calibrate = True           # temperature-scaled uni-modal models

  # Missing-modality augmentation: per-sample drop probability per modality.
  c.mma = ml_collections.ConfigDict(dict(
      drop_probs={"image": 0.5, "audio": 0.5}))
  # The umt baseline (methods.py, train/distill.py): weight of the feature
  # distillation loss toward the frozen uni-modal encoders (Du et al.'s 1).
  c.umt = ml_collections.ConfigDict(dict(distill_weight=1.0))
  # The prompts baseline (methods.py, models/prompts.py): prompt tokens per
  # layer and how many of each transformer tower's first layers get them
  # (Lee et al.'s 16 and 6).
  c.prompts = ml_collections.ConfigDict(dict(length=16, depth=6))

  # Training-time missingness: a fixed set of *training* examples lacks a
  # modality in every stage and run (missing/protocol.py). The field's
  # protocol: a type ("image", "audio", "both") at a ratio, e.g.
  # --config.train_missing.type=both --config.train_missing.ratio=0.7; or
  # explicit fractions per modality (the paper's page-8 experiment), e.g.
  # --config.train_missing.rates.audio=0.5. All 0 = off.
  c.train_missing = ml_collections.ConfigDict(dict(
      type="", ratio=0.0, rates={"image": 0.0, "audio": 0.0}, seed=7))

  c.pretrain = stage(num_epochs=8, batch_size=128, optim_cfg=optim())
  # The late_fusion baseline: trained jointly from scratch, same budget.
  c.scratch = stage(num_epochs=8, batch_size=128, optim_cfg=optim())
  # late_fusion_pretrained and mma: from uni-modal checkpoints.
  c.finetune = stage(num_epochs=4, batch_size=128, optim_cfg=optim(
      learning_rate=1e-3, warmup_steps=20, lr_multipliers=SLOWER_ENCODERS))
  c.methods = ("late_fusion", "late_fusion_pretrained", "mma")

  c.eval = ml_collections.ConfigDict(dict(
      batch_size=512, missing_rates=RATE_GRID,
      missing_types=(), mask_seed=20231010, checkpoint_dir="",
      primary_metric="", decompose=True))
  c.checkpoint = ml_collections.ConfigDict(dict(
      max_to_keep=2, every_steps=200, asynchronous=True))
  # Validation during training (ume_jax/train/validation.py): every N steps
  # and at the end; evaluation and fine-tuning read each run's best
  # checkpoint ("best") or its last ("last"); patience > 0 stops a run after
  # that many validations without improvement.
  c.validation = ml_collections.ConfigDict(dict(
      every_steps=100, select="best", patience=0))
  return c


def set_modalities(c, modalities: Sequence[str], drop_prob: float = 0.5
                   ) -> None:
  """Per-modality sections for ``modalities``: MMA drop probability
  ``drop_prob`` each, no training-time missingness."""
  c.mma.drop_probs = per_modality(modalities, drop_prob)
  c.train_missing.rates = per_modality(modalities, 0.0)
