"""Samples/s of the jitted ``mma`` train step vs an identical PyTorch model.

    .venv/bin/pip install torch==2.13.0     # optional benchmark extra
    .venv/bin/python benchmarks/train_step.py [--quick] [--xla_conv]
    .venv/bin/python benchmarks/train_step.py --device gpu [--dtype bfloat16]

(``python -m benchmarks.train_step`` from the repository root works too.)

JAX side: the project's own code, as ``ume_jax.train.trainer.train`` runs the
default job's ``mma`` fine-tuning (config ``ume_jax.config.common.base()``):
``methods.fusion(config.model, spec, "mma", MaskingSpec.from_config(...))``,
``optim.make_optimizer(config.finetune.optim)``, ``trainer.plan_state`` and
``trainer.jit_train_step`` (in/out shardings, donated state), seeded with
``seeds.fusion_seed(config.seed)``. ``--xla_conv`` adds a second JAX runner,
``xla_conv``: the same step with the encoders' ``conv_impl="xla"`` (XLA's own
convolution in place of the default ``ume_jax.models.layers.im2col_conv``).
PyTorch side: ``torch_reference.py`` (same layers, masking, loss, AdamW +
clipping + warm-up/cosine schedule with the encoders' learning-rate
multiplier), its drop probabilities and optimizer settings taken from the
same config (``config.mma.drop_probs``, ``config.finetune.optim``).

Data loading is excluded on both sides: a few random device-resident batches
are cycled. Per batch size, every runner is warmed up (compiled), then timed
over ~``--seconds`` of steps, ``--repeats`` times, the runners interleaved
(alternating which goes first); the table shows medians. The last line is
``ratio_jax_over_torch=<median over batch sizes of jax/torch samples/s>``.

``--device gpu``: JAX on a 1-device mesh of the first GPU, torch on ``cuda``
(model, optimizer state, mask generator and the cycled batches all resident
there; fused AdamW; ``cudnn.benchmark``, since XLA autotunes its kernels too);
a timed run ends with ``block_until_ready`` / ``torch.cuda.synchronize()``
before the clock is read. Batches default to 128,512,2048: smaller ones mostly
time kernel launches. ``--torch_threads`` is ignored there. ``--tf32`` makes
the float32 precision the same on both sides: JAX's GPU default for float32
dots and convs is TF32 while torch's matmuls default to full float32 (its
cuDNN convs to TF32). ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (unless set) so
JAX does not take 75% of the GPU before torch starts. Without a GPU,
``--device gpu`` exits at once with a one-line error. ``--device cpu`` (the
default) sets ``JAX_PLATFORMS=cpu`` unless set, so that on a GPU machine the
JAX side runs on the CPU like torch's.

``--dtype bfloat16``: the ume_jax encoders get ``dtype="bfloat16"`` in their
kwargs, torch runs its forward under ``torch.autocast``; parameters and
optimizers stay float32 on both sides. The run refuses to start while the
JAX encoders' dots/convs still compute in float32 (see ``_check_jax_dtype``).

Measurements made with this benchmark: the README's "Benchmarks" section and
``benchmarks/NOTES.md``.
"""
import argparse
import math
import os
import re
import statistics
import sys
import time

MODALITIES = ("image", "audio")
INPUT_SHAPES = {"image": (28, 28, 1), "audio": (40, 40, 1)}
NUM_CLASSES = 10
TOTAL_STEPS = 100_000  # schedule length; long enough never to reach its end.
# Per --device: (default batch sizes, --quick's); small GPU batches time only
# kernel launches.
BATCH_SIZES = {"cpu": ("32,64,128,256", "32,128"),
               "gpu": ("128,512,2048", "128,2048")}


def _torch_reference():
  """The sibling module, whether this file runs as a script (its folder is
  on ``sys.path``) or as ``benchmarks.train_step``."""
  # pylint: disable=g-import-not-at-top
  if __package__:
    from . import torch_reference
  else:
    import torch_reference
  return torch_reference


def _fail(message):
  """One line on stderr and exit status 1 instead of a traceback."""
  sys.exit(f"train_step.py: {message}")


def _spec():
  from ume_jax.data import DatasetSpec  # pylint: disable=g-import-not-at-top
  return DatasetSpec(name="bench", modalities=MODALITIES,
                     input_shapes=dict(INPUT_SHAPES), num_classes=NUM_CLASSES,
                     multilabel=False, split_sizes={"train": 7000})


def get_config(dtype="float32", conv_impl=None):
  """The default job's config, its encoders computing in ``dtype`` and, if
  given, convolving with ``conv_impl``."""
  from ume_jax.config import common  # pylint: disable=g-import-not-at-top
  config = common.base()
  if set(config.model.encoders) != set(MODALITIES):
    _fail(f"the base config's encoders are {sorted(config.model.encoders)},"
          f" this benchmark's batches {sorted(MODALITIES)}")
  extra = {"dtype": dtype} if dtype != "float32" else {}
  if conv_impl:
    extra["conv_impl"] = conv_impl
  for m in MODALITIES:
    enc = config.model.encoders[m]
    enc.kwargs = {**dict(enc.get("kwargs", {}) or {}), **extra}
  return config


def _masking(config):
  from ume_jax.missing.masking import MaskingSpec  # pylint: disable=g-import-not-at-top
  return MaskingSpec.from_config(config, MODALITIES)


def _mma_method(config):
  from ume_jax import methods  # pylint: disable=g-import-not-at-top
  return methods.fusion(config.model, _spec(), "mma", _masking(config))


def _build_encoder(config, modality):
  from ume_jax.models import registry  # pylint: disable=g-import-not-at-top
  enc = config.model.encoders[modality]
  return registry.build_encoder(enc.name, dict(enc.get("kwargs", {}) or {}))


def encoder_kwargs(config):
  """{modality: ConvEncoder fields} of the configured ume_jax encoders, so
  the torch twin mirrors whatever ume_jax currently builds. The encoders'
  ``dtype`` is left out: torch gets it as autocast (``--dtype``)."""
  out = {}
  for m in MODALITIES:
    mod = _build_encoder(config, m)
    out[m] = dict(channels=tuple(mod.channels), strides=tuple(mod.strides),
                  kernel_size=mod.kernel_size, feature_dim=mod.feature_dim)
  return out


def torch_trainer_kwargs(config):
  """``TorchTrainer``'s model, masking and optimizer settings, from the
  config the JAX side trains with; exits on a setting the twin lacks."""
  model, opt = config.model, config.finetune.optim
  rules = [(str(r), float(m)) for r, m in opt.lr_multipliers or ()]
  mirrored = {
      "model.fusion": (model.fusion, "sum_logits"),
      "model.substitute": (model.substitute, "zeros"),
      "model.missing_logits": (model.missing_logits, "keep"),
      "finetune.optim.name": (opt.name, "adamw"),
      "finetune.optim.final_lr_fraction": (float(opt.final_lr_fraction), 0.0),
      "finetune.optim.lr_multipliers regexes": (
          [r for r, _ in rules], [r".*_encoder/.*"]),
  }
  for key, (value, want) in mirrored.items():
    if value != want:
      _fail(f"config {key} is {value!r}; the torch twin mirrors only {want!r}")
  return dict(
      encoders=encoder_kwargs(config), drop_probs=_masking(config).drop_probs,
      learning_rate=float(opt.learning_rate), encoder_lr_mult=rules[0][1],
      weight_decay=float(opt.weight_decay), clip=float(opt.grad_clip_norm),
      warmup_steps=int(opt.warmup_steps), total_steps=TOTAL_STEPS)


_MATMUL_RESULT = re.compile(
    r":(\w+)\[[^\]]*\] = (?:dot_general|conv_general_dilated)\b")


def _check_jax_dtype(config, dtype):
  """Exits unless every dot/conv of the JAX encoders yields ``dtype``.

  An encoder's ``dtype`` field only counts if its layers compute in it: one
  that casts its input and lets Flax promote it back to float32 at the first
  float32 kernel would time a float32 model against torch's bf16 one.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  for m in MODALITIES:
    mod = _build_encoder(config, m)
    x = jnp.zeros((1,) + INPUT_SHAPES[m], jnp.float32)
    variables = jax.eval_shape(mod.init, jax.random.key(0), x)
    found = set(_MATMUL_RESULT.findall(str(jax.make_jaxpr(mod.apply)(
        variables, x))))
    want = {"float32": "f32", "bfloat16": "bf16"}[dtype]  # jaxpr's names
    if found != {want}:
      _fail(f"--dtype {dtype}: the {m} encoder's dots/convs compute in"
            f" {sorted(found)}, not {want} ({type(mod).__name__}'s dtype"
            " field does not reach its conv/dense layers)")


def _numpy_batches(batch_size, count=4, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed + batch_size)
  out = []
  for _ in range(count):
    b = {m: rng.standard_normal((batch_size,) + s).astype(np.float32)
         for m, s in INPUT_SHAPES.items()}
    b["present"] = np.ones((batch_size, len(MODALITIES)), bool)
    b["label"] = rng.integers(0, NUM_CLASSES, (batch_size,)).astype(np.int32)
    out.append(b)
  return out


def _torch_inputs(batch, memory_format=None):
  """{modality: NCHW tensor} of a numpy NHWC batch."""
  import torch  # pylint: disable=g-import-not-at-top
  fmt = memory_format or torch.contiguous_format
  return {m: torch.from_numpy(batch[m]).permute(0, 3, 1, 2).contiguous(
      memory_format=fmt) for m in MODALITIES}


# ----------------------------------------------------------------------------
# JAX side.


class JaxRunner:
  """The trainer's jitted ``mma`` step on fresh state; ``run(n)`` does n
  steps. ``devices``: the mesh's; batches are put on it, the state is
  created on it."""

  def __init__(self, config, devices):
    import jax  # pylint: disable=g-import-not-at-top
    from ume_jax.infra import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
    from ume_jax.train import optim, seeds, trainer  # pylint: disable=g-import-not-at-top
    self.jax = jax
    method = _mma_method(config)
    mesh = mesh_lib.build_mesh(config.mesh, devices)
    self.batch_sh = mesh_lib.batch_sharding(mesh)
    stage = config.finetune
    seed = seeds.fusion_seed(config.seed)
    tx = optim.make_optimizer(stage.optim, TOTAL_STEPS)
    init_fn, state_sh = trainer.plan_state(method, tx, mesh)
    self.state = init_fn(seeds.init_key(seed))
    self.step_fn = trainer.jit_train_step(
        method, tx, stage, state_sh, self.batch_sh, mesh, multilabel=False,
        seed=seed)
    self.batches = {}

  def set_batch_size(self, batch_size):
    if batch_size not in self.batches:
      self.batches[batch_size] = [
          self.jax.device_put(b, self.batch_sh)
          for b in _numpy_batches(batch_size)]
    self.current = self.batches[batch_size]

  def run(self, n):
    state, out = self.state, None
    for i in range(n):
      state, out = self.step_fn(state, self.current[i % len(self.current)])
    self.jax.block_until_ready((state, out))
    self.state = state
    return out


# ----------------------------------------------------------------------------
# PyTorch side.


class TorchRunner:
  """``torch_reference.TorchTrainer`` on cycled batches; ``run(n)``.

  ``threads``: intra-op CPU threads, set before each run (None on a GPU,
  where the host only launches kernels); ``device``: where model, optimizer
  state and batches live; ``run`` waits for the device before returning.
  """

  def __init__(self, trainer_kwargs, threads=2, compile_mode=None,
               optimizer_impl="fused", device="cpu", autocast_dtype=None):
    import torch  # pylint: disable=g-import-not-at-top
    self.torch = torch
    self.threads = threads
    self.device = torch.device(device)
    self.trainer = _torch_reference().TorchTrainer(
        INPUT_SHAPES, NUM_CLASSES, optimizer_impl=optimizer_impl,
        compile_mode=compile_mode, device=self.device,
        autocast_dtype=autocast_dtype, **trainer_kwargs)
    self.batches = {}

  def set_batch_size(self, batch_size):
    torch = self.torch
    if batch_size not in self.batches:
      bs = []
      for b in _numpy_batches(batch_size):
        tb = _torch_inputs(b)
        tb["present"] = torch.from_numpy(b["present"])
        tb["label"] = torch.from_numpy(b["label"].astype("int64"))
        bs.append(self.trainer.prepare(tb))
      self.batches[batch_size] = bs
    self.current = self.batches[batch_size]

  def run(self, n):
    if self.threads:
      self.torch.set_num_threads(self.threads)
    out = None
    for i in range(n):
      out, _ = self.trainer.step(self.current[i % len(self.current)])
    if self.device.type == "cuda":
      self.torch.cuda.synchronize(self.device)  # CUDA launches are async
    return out


# ----------------------------------------------------------------------------
# Checks and timing.


def check_equivalence(config):
  """Same weights in both models: logits shapes/values, loss and grad norm
  agree (exact XLA SAME padding on the torch side); initial losses ~ln 10.

  Always in float32 and at full precision (JAX on its default device, torch
  on the CPU): it checks the two models are the same function, whatever
  precision the timed runs use.
  """
  import flax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from ume_jax.train import seeds  # pylint: disable=g-import-not-at-top
  torch_reference = _torch_reference()

  method = _mma_method(config)
  params = flax.linen.meta.unbox(method.boxed_params(seeds.init_key(0)))
  params = jax.tree.map(np.asarray, params)
  b = _numpy_batches(16, count=1, seed=123)[0]
  present = np.array([[1, 1], [1, 0], [0, 1], [1, 1]] * 4, bool)

  def jloss(p):
    logits = method.eval_logits(p, b, present)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, b["label"]).mean(), logits

  with jax.default_matmul_precision("highest"):  # no TF32 on a GPU
    (jl, jlogits), jg = jax.value_and_grad(jloss, has_aux=True)(params)
  jgn = float(optax.tree.norm(jg))

  results = {}
  for exact in (True, False):
    model = torch_reference.LateFusion(
        INPUT_SHAPES, encoder_kwargs(config), NUM_CLASSES,
        exact_padding=exact)
    torch_reference.load_from_jax(model, params)
    model = model.to(memory_format=torch.channels_last)
    tb = torch_reference.substitute_zeros(
        _torch_inputs(b, torch.channels_last), torch.from_numpy(present),
        MODALITIES)
    logits = model(tb)
    loss = torch.nn.functional.cross_entropy(
        logits, torch.from_numpy(b["label"].astype("int64")))
    loss.backward()
    gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9))
    results[exact] = (tuple(logits.shape), float(
        np.abs(logits.detach().numpy() - np.asarray(jlogits)).max()),
                      float(loss.detach()), gn)
  print(f"check: jax logits {tuple(jlogits.shape)} loss {float(jl):.5f}"
        f" grad_norm {jgn:.5f}")
  for exact, (shape, diff, loss, gn) in results.items():
    pad = "exact XLA SAME pad (0,1)" if exact else "symmetric pad 1 (timed)"
    print(f"check: torch[{pad}] logits {shape} max|dlogits| {diff:.2e}"
          f" loss {loss:.5f} grad_norm {gn:.5f}")
  shape, diff, loss, gn = results[True]
  ok = (shape == tuple(jlogits.shape) and diff < 1e-3 and
        abs(loss - float(jl)) < 1e-4 and abs(gn - jgn) < 1e-3 * max(1, jgn))
  print(f"check: same function with exact padding: {'OK' if ok else 'FAIL'}")
  return ok


def _time(runner, n):
  t = time.perf_counter()
  runner.run(n)
  return time.perf_counter() - t


def benchmark(runners, batch_sizes, seconds, repeats, warmup=3):
  """{batch: {name: [samples/s per repeat]}}, interleaved."""
  results = {}
  for bs in batch_sizes:
    counts = {}
    for name, r in runners.items():
      r.set_batch_size(bs)
      t = time.perf_counter()
      out = r.run(warmup)  # compile + warm caches
      compile_s = time.perf_counter() - t
      loss = float(out["loss"])
      dt = _time(r, 3) / 3
      counts[name] = max(2, int(math.ceil(seconds / dt)))
      print(f"  batch {bs:4d} {name:>10s}: warm-up {compile_s:6.2f}s"
            f" (loss {loss:.3f}), ~{dt * 1e3:7.2f} ms/step,"
            f" {counts[name]} steps/repeat", flush=True)
    results[bs] = {name: [] for name in runners}
    names = list(runners)
    for rep in range(repeats):
      order = names if rep % 2 == 0 else names[::-1]
      for name in order:
        dt = _time(runners[name], counts[name])
        results[bs][name].append(bs * counts[name] / dt)
  return results


def print_table(results, names):
  """Medians per batch size; ratios of each JAX runner to the best torch."""
  torch_names = [n for n in names if n.startswith("torch")]
  others = [n for n in names if n not in torch_names]
  header = f"{'batch':>6s}" + "".join(f" {n + ' samples/s':>24s}"
                                      for n in names)
  if torch_names:
    header += f" {'best torch':>11s}"
    header += "".join(f" {n + '/torch':>14s}" for n in others)
  print(header)
  ratios = {n: [] for n in others}
  for bs, per in results.items():
    med = {n: statistics.median(v) for n, v in per.items()}
    line = f"{bs:6d}"
    for n in names:
      spread = (max(per[n]) - min(per[n])) / med[n] * 100
      line += f" {med[n]:13.0f} (+-{spread / 2:3.0f}%)"
    if torch_names:
      best = max(torch_names, key=lambda n: med[n])
      line += f" {best:>11s}"
      for n in others:
        ratios[n].append(med[n] / med[best])
        line += f" {med[n] / med[best]:14.2f}"
    print(line)
  return {n: statistics.median(v) for n, v in ratios.items() if v}


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"),
                      help="where both sides run (gpu: the first GPU)")
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"),
                      help="compute dtype: ume_jax encoders' dtype field /"
                      " torch.autocast; parameters stay float32")
  parser.add_argument("--tf32", default="on", choices=("on", "off"),
                      help="GPU float32 dots/convs in TF32 on both sides"
                      " (on: JAX's default) or in full float32 (off)")
  parser.add_argument("--quick", action="store_true",
                      help="batches 32,128 (gpu: 128,2048); 0.7 s x 3"
                      " repeats; flags given explicitly win")
  parser.add_argument("--batch_sizes", default=None,
                      help=f"cpu: {BATCH_SIZES['cpu'][0]},"
                      f" gpu: {BATCH_SIZES['gpu'][0]}")
  parser.add_argument("--seconds", type=float, default=None,
                      help="target seconds per timed repeat (3)")
  parser.add_argument("--repeats", type=int, default=None, help="(5)")
  parser.add_argument("--xla_conv", action="store_true",
                      help="also time the JAX step with the encoders'"
                      " conv_impl='xla' (runner 'xla_conv')")
  parser.add_argument("--torch_compile", default="off",
                      choices=("off", "default", "max-autotune-no-cudagraphs"),
                      help="torch.compile the forward+loss")
  parser.add_argument("--torch_optimizer", default="fused",
                      choices=("fused", "foreach", "loop"))
  parser.add_argument("--torch_threads", default="2,1",
                      help="one torch runner per thread count; ratios use"
                      " the fastest per batch size (ignored on gpu)")
  parser.add_argument("--no_torch", action="store_true")
  parser.add_argument("--no_check", action="store_true")
  args = parser.parse_args()
  default_sizes, quick_sizes = BATCH_SIZES[args.device]
  if args.batch_sizes is None:
    args.batch_sizes = quick_sizes if args.quick else default_sizes
  if args.seconds is None:
    args.seconds = 0.7 if args.quick else 3.0
  if args.repeats is None:
    args.repeats = 3 if args.quick else 5
  return args


def set_environment(args):
  """Variables jax reads at import (so: before it is imported)."""
  if args.device == "cpu":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
  else:
    # Grow on demand: by default JAX takes 75% of the GPU at its first
    # allocation, leaving torch the rest.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def jax_devices(args):
  """The devices of the JAX mesh: every CPU device, or the first GPU; a
  one-line exit when there is none."""
  import jax  # pylint: disable=g-import-not-at-top
  platform = args.device
  try:
    devices = jax.devices(platform)
  except RuntimeError as e:
    _fail(f"--device {platform}: no {platform.upper()} visible to jax"
          f" {jax.__version__} ({str(e).splitlines()[0]})")
  if platform == "gpu":
    devices = devices[:1]
    if args.tf32 == "off":
      jax.config.update("jax_default_matmul_precision", "highest")
  return devices


def torch_device(args):
  """``cpu``, or ``cuda:0`` set up like XLA (autotuned convs, TF32 as
  --tf32); a one-line exit when torch sees no GPU."""
  if args.device == "cpu":
    # Passive OpenMP waiting: spinning torch threads slow down sharply on a
    # machine whose cores run anything else (NOTES.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
  import torch  # pylint: disable=g-import-not-at-top
  if args.device == "cpu":
    return torch.device("cpu")
  if not torch.cuda.is_available():
    _fail(f"--device gpu: no GPU visible to torch {torch.__version__}"
          " (torch.cuda.is_available() is False)")
  tf32 = args.tf32 == "on"
  torch.set_float32_matmul_precision("high" if tf32 else "highest")
  torch.backends.cudnn.allow_tf32 = tf32
  torch.backends.cudnn.benchmark = True
  return torch.device("cuda", 0)


def device_name(device):
  """'NVIDIA H200 (cuda:0)' / 'cpu (cpu:0)' for a jax or torch device."""
  if hasattr(device, "device_kind"):  # jax
    return f"{device.device_kind} ({device})"
  import torch  # pylint: disable=g-import-not-at-top
  if device.type == "cuda":
    return f"{torch.cuda.get_device_name(device)} ({device})"
  return str(device)


def make_torch_runners(args, device, config):
  import torch  # pylint: disable=g-import-not-at-top
  kwargs = {
      "trainer_kwargs": torch_trainer_kwargs(config),
      "compile_mode": (None if args.torch_compile == "off"
                       else args.torch_compile),
      "optimizer_impl": args.torch_optimizer, "device": device,
      "autocast_dtype": (None if args.dtype == "float32"
                         else getattr(torch, args.dtype)),
  }
  if device.type == "cuda":
    return {"torch": TorchRunner(threads=None, **kwargs)}
  return {f"torch_{t}t": TorchRunner(threads=int(t), **kwargs)
          for t in args.torch_threads.split(",")}


def main():
  args = parse_args()
  set_environment(args)
  import jax  # pylint: disable=g-import-not-at-top
  devices = jax_devices(args)
  tdevice = None if args.no_torch else torch_device(args)
  print(f"jax {jax.__version__} devices {devices}"
        f" XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"device {args.device}: jax on {device_name(devices[0])}, torch on"
        f" {device_name(tdevice) if tdevice else '-'}; dtype {args.dtype}"
        + (f", tf32 {args.tf32}" if args.device == "gpu" else ""))

  configs = {"jax": get_config(args.dtype)}
  if args.xla_conv:
    configs["xla_conv"] = get_config(args.dtype, conv_impl="xla")
  if args.dtype != "float32":
    for config in configs.values():
      _check_jax_dtype(config, args.dtype)
  config = configs["jax"]
  for m, k in encoder_kwargs(config).items():
    print(f"{m} encoder: {k} input {INPUT_SHAPES[m]}")
  print(f"mma drop_probs {_masking(config).drop_probs}")
  runners = {name: JaxRunner(c, devices) for name, c in configs.items()}
  if tdevice is not None:
    import torch  # pylint: disable=g-import-not-at-top
    threads = ([int(t) for t in args.torch_threads.split(",")]
               if tdevice.type == "cpu" else "n/a")
    print(f"torch {torch.__version__} threads {threads}"
          f" compile={args.torch_compile} optimizer={args.torch_optimizer}"
          f" channels_last OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '')}")
    if not args.no_check and not check_equivalence(get_config()):
      _fail("the torch twin does not compute the JAX model's function"
            " (see the check lines above)")
    runners.update(make_torch_runners(args, tdevice, config))

  batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
  results = benchmark(runners, batch_sizes, args.seconds, args.repeats)
  ratios = print_table(results, list(runners))
  for n, r in ratios.items():
    if n != "jax":
      print(f"ratio_{n}_over_torch={r:.2f}")
  if "jax" in ratios:
    print(f"ratio_jax_over_torch={ratios['jax']:.2f}")


if __name__ == "__main__":
  main()
