"""Samples/s of the jitted ``mma`` train step vs an identical PyTorch model.

    .venv/bin/pip install torch==2.13.0     # optional benchmark extra
    .venv/bin/python benchmarks/train_step.py [--quick]
    python benchmarks/train_step.py --device gpu [--dtype bfloat16]

JAX side: the project's own code, exactly as ``ume_jax/trainer.py`` runs it
(``methods.fusion(config, spec, "mma")``, ``optim.make_optimizer(
config.finetune.optim)``, ``trainer.plan_state``, ``steps.make_train_step``
jitted with in/out shardings and a donated state) on a 1-device mesh. PyTorch
side: ``benchmarks/torch_reference.py`` (same layers, masking, loss, AdamW +
clipping + warm-up/cosine schedule with 0.1x encoder learning rate).

Data loading is excluded on both sides: a few random device-resident batches
are cycled. Per batch size, both steps are warmed up (compiled), then timed
over ~``--seconds`` of steps, ``--repeats`` times, JAX and torch interleaved
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
cuDNN convs to TF32); on an H200 (jax 0.11.2, torch 2.11) a 2048^2 float32
matmul erred by 2.8e-4 (relative) on both sides with TF32, 1.7e-6 without.
``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (unless set) so JAX does not take 75%
of the GPU before torch starts. Without a GPU, ``--device gpu`` exits at once
with a one-line error. ``--device cpu`` (the default) sets
``JAX_PLATFORMS=cpu`` unless set, so that on a GPU machine the JAX side runs
on the CPU like torch's.

``--dtype bfloat16``: the ume_jax encoders get ``dtype="bfloat16"`` in their
kwargs, torch runs its forward under ``torch.autocast``; parameters and
optimizers stay float32 on both sides. The run refuses to start while the
JAX encoders' dots/convs still compute in float32 (see ``_check_jax_dtype``).

``--xla_flags`` is put into ``XLA_FLAGS`` before jax is imported (for flag
experiments); ``--jax_variant`` selects prototypes of changes to the JAX step
that are not (yet) in ume_jax (see ``_VARIANTS``).
"""
import argparse
import dataclasses
import math
import os
import pathlib
import re
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

MODALITIES = ("image", "audio")
INPUT_SHAPES = {"image": (28, 28, 1), "audio": (40, 40, 1)}
NUM_CLASSES = 10
TOTAL_STEPS = 100_000  # schedule length; long enough never to reach its end.
# Per --device: (default batch sizes, --quick's); small GPU batches time only
# kernel launches.
BATCH_SIZES = {"cpu": ("32,64,128,256", "32,128"),
               "gpu": ("128,512,2048", "128,2048")}


def _spec():
  from ume_jax.data import DatasetSpec  # pylint: disable=g-import-not-at-top
  return DatasetSpec(name="bench", modalities=MODALITIES,
                     input_shapes=dict(INPUT_SHAPES), num_classes=NUM_CLASSES,
                     multilabel=False, split_sizes={"train": 7000})


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


def get_config(image_strides=None, dtype="float32"):
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  if image_strides:
    config.model.encoders.image.kwargs = {"strides": tuple(image_strides)}
  if dtype != "float32":
    for m in MODALITIES:
      enc = config.model.encoders[m]
      enc.kwargs = {**dict(enc.get("kwargs", {}) or {}), "dtype": dtype}
  return config


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


def _fail(message):
  """One line on stderr and exit status 1 instead of a traceback."""
  sys.exit(f"train_step.py: {message}")


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


# ----------------------------------------------------------------------------
# JAX side.


class JaxRunner:
  """The trainer's jitted train step on fresh state; ``run(n)`` does n steps."""

  def __init__(self, variant="trainer", config=None, devices=None):
    """``devices``: the mesh's (None: all of ``jax.devices()``); batches are
    put on it, the state is created on it."""
    import jax  # pylint: disable=g-import-not-at-top
    from ume_jax import methods  # pylint: disable=g-import-not-at-top
    from ume_jax.infra import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
    self.jax = jax
    self.config = config or get_config()
    self.spec = _spec()
    self.method = methods.fusion(self.config, self.spec, "mma", None)
    self.mesh = mesh_lib.build_mesh(self.config.mesh, devices)
    self.batch_sh = mesh_lib.batch_sharding(self.mesh)
    self.variant = variant
    build = _VARIANTS[variant]
    self.tx, self.step_fn, init_state = build(self)
    self.state = init_state
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


def _trainer_step(runner, train_logits=None, tx=None, opt_cfg=None):
  """Exactly what ``ume_jax.trainer.train`` jits."""
  from ume_jax.train import optim  # pylint: disable=g-import-not-at-top
  from ume_jax.train import trainer  # pylint: disable=g-import-not-at-top
  tx = tx or optim.make_optimizer(opt_cfg or runner.config.finetune.optim,
                                  TOTAL_STEPS)
  init_fn, state_sh = trainer.plan_state(runner.method, tx, runner.mesh)
  state = init_fn(trainer.init_key(runner.config.seed))
  method = runner.method
  if train_logits is not None:
    method = dataclasses.replace(method, train_logits=train_logits)
  step_fn = trainer.jit_train_step(
      method, tx, runner.config.finetune, state_sh, runner.batch_sh,
      runner.mesh, multilabel=False, seed=runner.config.seed)
  return tx, step_fn, state


def _variant_trainer(runner):
  return _trainer_step(runner)


def _variant_no_mma(runner):
  """Prototype: same step without masking/substitution (late_fusion's
  train_logits: the data's own ``present``, which is all True here) - the
  cost of the in-step augmentation."""
  from ume_jax import methods  # pylint: disable=g-import-not-at-top
  m = methods.fusion(runner.config, runner.spec, "late_fusion_pretrained",
                     None)
  return _trainer_step(runner, train_logits=m.train_logits)


def _variant_no_substitute(runner):
  """Prototype: masks drawn (train_present) but inputs not substituted and
  the model applied directly - isolates the where() over the inputs."""
  from ume_jax.missing import masking  # pylint: disable=g-import-not-at-top
  method = runner.method
  probs = [0.5, 0.5]

  def train_logits(params, batch, key):
    present = masking.train_present(key, batch["present"], probs)
    inputs = {m: batch[m] for m in MODALITIES}
    return method.model.apply({"params": params}, inputs, present)

  return _trainer_step(runner, train_logits=train_logits)


def _variant_multiply_substitute(runner):
  """Prototype: zero substitution as ``x * keep`` instead of
  ``where(keep, x, zeros_like(x))``."""
  from ume_jax.missing import masking  # pylint: disable=g-import-not-at-top
  method = runner.method
  probs = [0.5, 0.5]

  def train_logits(params, batch, key):
    present = masking.train_present(key, batch["present"], probs)
    inputs = {m: batch[m] * present[:, i, None, None, None].astype(
        batch[m].dtype) for i, m in enumerate(MODALITIES)}
    return method.model.apply({"params": params}, inputs, present)

  return _trainer_step(runner, train_logits=train_logits)


def _variant_plain_adamw(runner):
  """Prototype: one optax.adamw (no multi_transform groups; the schedule
  and clipping kept) - the cost of per-group optimizer plumbing."""
  import optax  # pylint: disable=g-import-not-at-top
  cfg = runner.config.finetune.optim
  sched = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate,
                                             cfg.warmup_steps, TOTAL_STEPS)
  tx = optax.chain(optax.clip_by_global_norm(1.0),
                   optax.adamw(sched, weight_decay=1e-4))
  return _trainer_step(runner, tx=tx)


def _variant_no_optimizer(runner):
  """Prototype: forward + backward only (SGD with constant lr, no clipping)
  - an upper bound for optimizer improvements."""
  import optax  # pylint: disable=g-import-not-at-top
  return _trainer_step(runner, tx=optax.sgd(1e-3))


def _variant_nchw(runner):
  """Prototype: the same model written with lax.conv_general_dilated in
  NCHW/OIHW layout (transposing the NHWC batch inside the step)."""
  jax = runner.jax
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from ume_jax.missing import masking  # pylint: disable=g-import-not-at-top
  probs = [0.5, 0.5]
  strides = {m: k["strides"] for m, k in encoder_kwargs(runner.config).items()}

  def apply(params, inputs):
    logits = 0.0
    for m in MODALITIES:
      p = params[f"{m}_encoder"]
      x = jnp.transpose(inputs[m], (0, 3, 1, 2))
      for i, s in enumerate(strides[m]):
        k = p[f"conv{i}"]["kernel"]
        x = jax.lax.conv_general_dilated(
            x, k, (s, s), "SAME", dimension_numbers=("NCHW", "HWIO", "NCHW"))
        x = jax.nn.relu(x + p[f"conv{i}"]["bias"][None, :, None, None])
      x = jnp.transpose(x, (0, 2, 3, 1)).reshape(x.shape[0], -1)
      x = jax.nn.relu(x @ p["proj"]["kernel"] + p["proj"]["bias"])
      h = params[f"{m}_head"]
      logits = logits + x @ h["kernel"] + h["bias"]
    return logits

  def train_logits(params, batch, key):
    present = masking.train_present(key, batch["present"], probs)
    inputs = masking.substitute_inputs(batch, present, MODALITIES, "zeros")
    return apply(params, inputs)

  return _trainer_step(runner, train_logits=train_logits)


def _variant_xla_conv(runner):
  """ume_jax with XLA's own convolution (encoder ``conv_impl="xla"``) in place
  of the default im2col (``ume_jax.models.layers.im2col_conv``): the
  comparison that made im2col the default."""
  from ume_jax import methods  # pylint: disable=g-import-not-at-top
  runner.config = runner.config.copy_and_resolve_references()
  for m in MODALITIES:
    enc = runner.config.model.encoders[m]
    enc.kwargs = {**dict(enc.get("kwargs", {}) or {}), "conv_impl": "xla"}
  runner.method = methods.fusion(runner.config, runner.spec, "mma", None)
  return _trainer_step(runner)


def _variant_chunk32(runner):
  """Prototype: masks drawn on the whole batch (same as ume_jax), then the
  model applied to 32-example chunks (unrolled; same logits, same grads) -
  XLA:CPU's conv throughput per example falls as the batch grows."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from ume_jax.missing import masking  # pylint: disable=g-import-not-at-top
  method = runner.method

  def train_logits(params, batch, key):
    present = masking.train_present(key, batch["present"], [0.5, 0.5])
    inputs = masking.substitute_inputs(batch, present, MODALITIES, "zeros")
    b = present.shape[0]
    chunks = [method.model.apply(
        {"params": params}, {m: inputs[m][i:i + 32] for m in MODALITIES},
        present[i:i + 32]) for i in range(0, b, 32)]
    return jnp.concatenate(chunks, 0)

  return _trainer_step(runner, train_logits=train_logits)


_VARIANTS = {
    "chunk32": _variant_chunk32,
    "xla_conv": _variant_xla_conv,
    "trainer": _variant_trainer,
    "no_mma": _variant_no_mma,
    "no_substitute": _variant_no_substitute,
    "multiply_substitute": _variant_multiply_substitute,
    "plain_adamw": _variant_plain_adamw,
    "no_optimizer": _variant_no_optimizer,
    "nchw": _variant_nchw,
}


# ----------------------------------------------------------------------------
# PyTorch side.


class TorchRunner:
  """``torch_reference.TorchTrainer`` on cycled batches; ``run(n)``.

  ``threads``: intra-op CPU threads, set before each run (None on a GPU,
  where the host only launches kernels); ``device``: where model, optimizer
  state and batches live; ``run`` waits for the device before returning.
  """

  def __init__(self, threads=2, compile_mode=None, optimizer_impl="fused",
               channels_last=True, exact_padding=False, encoders=None,
               device="cpu", autocast_dtype=None):
    import torch  # pylint: disable=g-import-not-at-top
    from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
    self.torch = torch
    self.threads = threads
    self.device = torch.device(device)
    self.trainer = torch_reference.TorchTrainer(
        INPUT_SHAPES, NUM_CLASSES, channels_last=channels_last,
        exact_padding=exact_padding, optimizer_impl=optimizer_impl,
        compile_mode=compile_mode, total_steps=TOTAL_STEPS,
        encoders=encoders, device=self.device, autocast_dtype=autocast_dtype)
    self.batches = {}

  def set_batch_size(self, batch_size):
    torch = self.torch
    if batch_size not in self.batches:
      bs = []
      for b in _numpy_batches(batch_size):
        tb = {m: torch.from_numpy(b[m]).permute(0, 3, 1, 2).contiguous()
              for m in MODALITIES}
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
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from ume_jax import methods  # pylint: disable=g-import-not-at-top
  from ume_jax.train import trainer  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top

  method = methods.fusion(config, _spec(), "mma", None)
  params = method.model.init(trainer.init_key(0),
                             *method.example_inputs(1))["params"]
  params = jax.tree.map(np.asarray, __import__("flax").linen.meta.unbox(
      params))
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
        INPUT_SHAPES, NUM_CLASSES, exact_padding=exact,
        encoders=encoder_kwargs(config))
    torch_reference.load_from_jax(model, params)
    model = model.to(memory_format=torch.channels_last)
    tb = {m: torch.from_numpy(b[m]).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last) for m in MODALITIES}
    tb = torch_reference.substitute_zeros(tb, torch.from_numpy(present),
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
  parser.add_argument("--torch_compile", default="off",
                      choices=("off", "default", "max-autotune-no-cudagraphs"),
                      help="torch.compile the forward+loss ('default' ran on"
                      " an H200; not tried on CPU)")
  parser.add_argument("--torch_optimizer", default="fused",
                      choices=("fused", "foreach", "loop"))
  parser.add_argument("--torch_threads", default="2,1",
                      help="one torch runner per thread count; ratios use"
                      " the fastest per batch size (ignored on gpu)")
  parser.add_argument("--xla_flags", default=None,
                      help="appended to XLA_FLAGS before importing jax")
  parser.add_argument("--jax_variant", default="trainer",
                      help="comma-separated; 'trainer' is ume_jax as is;"
                      f" prototypes: {sorted(_VARIANTS)}")
  parser.add_argument("--image_strides", default="",
                      help="override the image encoder's strides, e.g. 1,2,2"
                      " (its default before commit dfc4aba)")
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
  if args.xla_flags:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " +
                               args.xla_flags).strip()
  if args.device == "cpu":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
  else:
    # Grow on demand: by default JAX takes 75% of the GPU at its first
    # allocation, leaving torch the rest.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def jax_devices(args):
  """The devices of the JAX mesh: every CPU device (as before --device
  existed), or the first GPU; a one-line exit when there is none."""
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
    # Passive OpenMP waiting: with the default (spinning) policy, 2 torch
    # threads on a 2-core machine that runs anything else are 5-20x slower
    # than 1 thread (measured); PASSIVE removes that cliff.
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


def make_torch_runners(args, device, encoders):
  import torch  # pylint: disable=g-import-not-at-top
  kwargs = {
      "compile_mode": (None if args.torch_compile == "off"
                       else args.torch_compile),
      "optimizer_impl": args.torch_optimizer, "encoders": encoders,
      "device": device,
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

  strides = ([int(s) for s in args.image_strides.split(",")]
             if args.image_strides else None)
  config = get_config(strides, args.dtype)
  if args.dtype != "float32":
    _check_jax_dtype(config, args.dtype)
  encoders = encoder_kwargs(config)
  for m, k in encoders.items():
    print(f"{m} encoder: {k} input {INPUT_SHAPES[m]}")
  runners = {}
  for v in args.jax_variant.split(","):
    runners["jax" if v == "trainer" else v] = JaxRunner(v, config, devices)
  if tdevice is not None:
    import torch  # pylint: disable=g-import-not-at-top
    threads = ([int(t) for t in args.torch_threads.split(",")]
               if tdevice.type == "cpu" else "n/a")
    print(f"torch {torch.__version__} threads {threads}"
          f" compile={args.torch_compile} optimizer={args.torch_optimizer}"
          f" channels_last OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '')}")
    if not args.no_check:
      check_equivalence(get_config(strides))
    runners.update(make_torch_runners(args, tdevice, encoders))

  batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
  results = benchmark(runners, batch_sizes, args.seconds, args.repeats)
  names = list(runners)
  ratios = print_table(results, names)
  for n, r in ratios.items():
    if n != "jax":
      print(f"ratio_{n}_over_torch={r:.2f}")
  if "jax" in ratios:
    print(f"ratio_jax_over_torch={ratios['jax']:.2f}")


if __name__ == "__main__":
  main()
