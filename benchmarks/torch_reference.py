"""PyTorch twin of the ``mma`` late-fusion train step (benchmark only).

Same model as ``ume_jax.models``: per modality a ConvEncoder (3x3 'SAME'
convs + ReLU with the channels and strides the JAX encoder is given, then
flatten, Dense + ReLU) and a linear head; fusion sums the heads' logits
(``sum_logits``, ``missing_logits="keep"``). Same per-sample
missing-modality augmentation as ``ume_jax.missing.masking.train_present``
(Bernoulli drop with prob p per modality, rescue one native modality when all
would be dropped) and zero substitution; softmax cross-entropy; AdamW (weight
decay on every parameter, like ``optax.adamw``), global-norm clipping,
warm-up + cosine schedule with the encoders at a multiple of the heads'
learning rate (``config.finetune.optim``'s ``lr_multipliers``). The caller
passes every setting (encoder fields, drop probabilities, optimizer) from the
config the JAX side runs; ``benchmarks/train_step.py`` does.

PyTorch is an optional benchmark extra, never a runtime dependency of ume_jax:

    .venv/bin/pip install torch==2.13.0

Padding: XLA's 'SAME' for a 3x3 stride-2 conv on an even size pads (0, 1)
(bottom/right only). ``exact_padding=True`` reproduces that with an explicit
``F.pad`` (used to check the two models compute the same function);
``exact_padding=False`` (the benchmark default) uses torch's usual symmetric
``padding=1``, which gives the same output shapes and the same FLOPs without
an extra copy per layer, i.e. torch's best practice.

Layout: NCHW tensors in ``channels_last`` memory format (oneDNN's preferred
layout on CPU, cuDNN's for tensor cores) unless ``channels_last=False``.
Flattening goes through ``permute(0, 2, 3, 1)``, i.e. (h, w, c) order like the
JAX model's NHWC reshape, and is a free view in channels_last memory.

Device: ``TorchTrainer(device="cuda")`` puts the model, the optimizer state,
the mask generator and (through ``prepare``) the batches on the GPU, so a step
never copies between host and device nor waits for the GPU: the caller
synchronises before reading its clock. ``autocast_dtype=torch.bfloat16`` runs
the forward under ``torch.autocast`` (parameters and optimizer stay float32).
"""
import contextlib
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

def _same_out(size: int, stride: int) -> int:
  return -(-size // stride)


class ConvEncoder(nn.Module):
  """3x3 'SAME' conv stack -> flatten (h, w, c) -> Linear + ReLU."""

  def __init__(self, in_hw: tuple[int, int], in_ch: int, *,
               strides: Sequence[int], channels: Sequence[int],
               kernel_size: int, feature_dim: int,
               exact_padding: bool = False):
    if kernel_size != 3:
      raise NotImplementedError("only 3x3 convs are mirrored")
    super().__init__()
    self.exact_padding = exact_padding
    self.convs = nn.ModuleList()
    self.pads = []
    h, w = in_hw
    c = in_ch
    for ch, s in zip(channels, strides):
      # XLA SAME: total = max((out - 1) * s + k - in, 0), low = total // 2.
      out_h, out_w = _same_out(h, s), _same_out(w, s)
      th = max((out_h - 1) * s + 3 - h, 0)
      tw = max((out_w - 1) * s + 3 - w, 0)
      explicit = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
      if not exact_padding or explicit == (1, 1, 1, 1):
        pad, explicit = 1, None  # torch's symmetric padding (same shapes).
      else:
        pad = 0
      self.convs.append(nn.Conv2d(c, ch, 3, stride=s, padding=pad))
      self.pads.append(explicit)
      h, w, c = _same_out(h, s), _same_out(w, s), ch
    self.out_hw = (h, w)
    self.proj = nn.Linear(h * w * c, feature_dim)
    for conv in self.convs:  # He-normal fan-in like ume_jax.models.layers.
      nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
      nn.init.zeros_(conv.bias)
    nn.init.kaiming_normal_(self.proj.weight, nonlinearity="relu")
    nn.init.zeros_(self.proj.bias)

  def forward(self, x):
    for conv, pad in zip(self.convs, self.pads):
      if pad is not None:
        x = F.pad(x, pad)
      x = F.relu(conv(x))
    x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
    return F.relu(self.proj(x))


class LateFusion(nn.Module):
  """Per-modality encoder + linear head, logits summed."""

  def __init__(self, input_shapes: dict, encoders: dict, num_classes: int,
               exact_padding: bool = False):
    """``encoders``: {modality: ConvEncoder kwargs (strides, channels,
    kernel_size, feature_dim)}, as the JAX encoders have them."""
    super().__init__()
    self.modalities = tuple(input_shapes)
    self.encoders = nn.ModuleDict()
    self.heads = nn.ModuleDict()
    for m, (h, w, c) in input_shapes.items():
      feature_dim = encoders[m]["feature_dim"]
      self.encoders[m] = ConvEncoder((h, w), c, exact_padding=exact_padding,
                                     **encoders[m])
      self.heads[m] = nn.Linear(feature_dim, num_classes)
      # lecun_normal's scale, as the JAX heads; init is not timed.
      std = 1.0 / math.sqrt(feature_dim)
      nn.init.normal_(self.heads[m].weight, std=std)
      nn.init.zeros_(self.heads[m].bias)

  def forward(self, inputs: dict):
    logits = 0.0
    for m in self.modalities:
      logits = logits + self.heads[m](self.encoders[m](inputs[m]))
    return logits


def train_present(data_present: torch.Tensor, drop_probs: Sequence[float],
                  generator: torch.Generator | None = None) -> torch.Tensor:
  """Torch version of ``ume_jax.missing.masking.train_present`` (same
  semantics).

  Draws on ``data_present``'s device; ``generator`` must live there too, and
  ``drop_probs`` is best a tensor already there (no copy per step).
  """
  device = data_present.device
  p = torch.as_tensor(drop_probs, dtype=torch.float32, device=device)
  u = torch.rand(data_present.shape, generator=generator, device=device)
  present = (u >= p) & data_present
  scores = torch.rand(data_present.shape, generator=generator, device=device)
  scores = torch.where(data_present, scores, torch.full_like(scores, -1.0))
  rescued = F.one_hot(scores.argmax(1), data_present.shape[1]).bool()
  nothing_left = ~present.any(1, keepdim=True)
  return torch.where(nothing_left, rescued & data_present, present)


def substitute_zeros(inputs: dict, present: torch.Tensor,
                     modalities: Sequence[str]) -> dict:
  out = dict(inputs)
  for i, m in enumerate(modalities):
    x = inputs[m]
    keep = present[:, i].reshape((-1,) + (1,) * (x.dim() - 1))
    out[m] = torch.where(keep, x, x.new_zeros(()))  # x's device and dtype
  return out


def warmup_cosine(warmup: int, total: int):
  """LambdaLR factor matching ``optax.warmup_cosine_decay_schedule(0, peak,
  warmup, total, end_value=0)`` at optimizer count ``step``."""

  def factor(step: int) -> float:
    if warmup > 0 and step < warmup:
      return step / warmup
    t = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * t))

  return factor


class TorchTrainer:
  """model + AdamW + clipping + schedule; ``step(batch)`` is one train step.

  ``batch`` holds NCHW inputs per modality, ``present`` (B, M) bool and
  ``label`` (B,) int64. Metrics stay tensors (no host sync per step), like the
  JAX step whose metrics are not fetched either. ``device``: where everything
  lives (``prepare`` moves batches there); ``autocast_dtype``: run the
  forward and loss under ``torch.autocast`` in that dtype (None: float32).
  """

  def __init__(self, input_shapes: dict, num_classes: int, *,
               encoders: dict, drop_probs: Sequence[float],
               learning_rate: float, encoder_lr_mult: float,
               weight_decay: float, clip: float, warmup_steps: int,
               total_steps: int, channels_last: bool = True,
               exact_padding: bool = False, optimizer_impl: str = "fused",
               compile_mode: str | None = None, seed: int = 0,
               device: str | torch.device = "cpu",
               autocast_dtype: torch.dtype | None = None):
    torch.manual_seed(seed)
    self.device = torch.device(device)
    self.autocast_dtype = autocast_dtype
    # Initialised on the CPU (same values whatever the device), then moved
    # before the optimizer exists, so its state is created on the device.
    self.model = LateFusion(input_shapes, encoders, num_classes,
                            exact_padding=exact_padding)
    self.channels_last = channels_last
    self.model = self.model.to(self.device)
    if channels_last:
      self.model = self.model.to(memory_format=torch.channels_last)
    self.modalities = self.model.modalities
    self.drop_probs = torch.tensor(drop_probs, dtype=torch.float32,
                                   device=self.device)
    self.clip = clip
    self.generator = torch.Generator(device=self.device).manual_seed(seed)
    enc = [p for n, p in self.model.named_parameters() if n.startswith("enc")]
    rest = [p for n, p in self.model.named_parameters()
            if not n.startswith("enc")]
    kwargs = {}
    if optimizer_impl == "fused":
      kwargs["fused"] = True
    elif optimizer_impl == "foreach":
      kwargs["foreach"] = True
    elif optimizer_impl == "loop":
      kwargs["foreach"] = False
    self.opt = torch.optim.AdamW(
        [{"params": enc, "lr": learning_rate * encoder_lr_mult},
         {"params": rest, "lr": learning_rate}],
        lr=learning_rate, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=weight_decay, **kwargs)
    self.sched = torch.optim.lr_scheduler.LambdaLR(
        self.opt, warmup_cosine(warmup_steps, total_steps))
    self.params = list(self.model.parameters())
    self._loss_fn = self._forward_loss
    if compile_mode:
      self._loss_fn = torch.compile(self._forward_loss, mode=compile_mode,
                                    dynamic=False)

  def _autocast(self):
    if self.autocast_dtype is None:
      return contextlib.nullcontext()
    return torch.autocast(self.device.type, dtype=self.autocast_dtype)

  def _forward_loss(self, inputs, present, label):
    inputs = substitute_zeros(inputs, present, self.modalities)
    logits = self.model(inputs)
    return F.cross_entropy(logits, label), logits

  def prepare(self, batch: dict) -> dict:
    """The batch on ``device``, inputs in the model's memory format."""
    out = {k: v.to(self.device) for k, v in batch.items()}
    for m in self.modalities:
      x = out[m]
      if self.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
      out[m] = x
    return out

  def step(self, batch: dict):
    present = train_present(batch["present"], self.drop_probs, self.generator)
    inputs = {m: batch[m] for m in self.modalities}
    self.opt.zero_grad(set_to_none=True)
    with self._autocast():
      loss, logits = self._loss_fn(inputs, present, batch["label"])
    loss.backward()  # outside autocast, as torch recommends
    grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip,
                                               foreach=True)
    self.opt.step()
    self.sched.step()
    accuracy = (logits.detach().argmax(-1) == batch["label"]).float().mean()
    return {"loss": loss.detach(), "grad_norm": grad_norm,
            "accuracy": accuracy}, logits


def load_from_jax(model: LateFusion, params) -> None:
  """Copies ume_jax LateFusionClassifier params ({m}_encoder/conv{i}, proj,
  {m}_head) into ``model`` (HWIO -> OIHW; Dense (in, out) -> (out, in)).
  The flatten orders already agree ((h, w, c) on both sides)."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  def t(x, transpose=None):
    x = np.array(x, np.float32)  # a writable copy
    return torch.from_numpy(np.ascontiguousarray(
        x.transpose(transpose) if transpose else x))

  with torch.no_grad():
    for m in model.modalities:
      enc = params[f"{m}_encoder"]
      for i, conv in enumerate(model.encoders[m].convs):
        conv.weight.copy_(t(enc[f"conv{i}"]["kernel"], (3, 2, 0, 1)))
        conv.bias.copy_(t(enc[f"conv{i}"]["bias"]))
      proj = model.encoders[m].proj
      proj.weight.copy_(t(enc["proj"]["kernel"], (1, 0)))
      proj.bias.copy_(t(enc["proj"]["bias"]))
      head = params[f"{m}_head"]
      model.heads[m].weight.copy_(t(head["kernel"], (1, 0)))
      model.heads[m].bias.copy_(t(head["bias"]))
