"""Samples/s of the jitted ``mma`` train step vs an identical PyTorch model.

    .venv/bin/pip install torch==2.13.0     # optional benchmark extra
    .venv/bin/python benchmarks/train_step.py [--quick]

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

``--xla_flags`` is put into ``XLA_FLAGS`` before jax is imported (for flag
experiments); ``--jax_variant`` selects prototypes of changes to the JAX step
that are not (yet) in ume_jax (see ``_VARIANTS``).
"""
import argparse
import math
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

MODALITIES = ("image", "audio")
INPUT_SHAPES = {"image": (28, 28, 1), "audio": (40, 40, 1)}
NUM_CLASSES = 10
TOTAL_STEPS = 100_000  # schedule length; long enough never to reach its end.


def _spec():
  from ume_jax.data import DatasetSpec  # pylint: disable=g-import-not-at-top
  return DatasetSpec(name="bench", modalities=MODALITIES,
                     input_shapes=dict(INPUT_SHAPES), num_classes=NUM_CLASSES,
                     multilabel=False, split_sizes={"train": 7000})


def encoder_kwargs(config):
  """{modality: ConvEncoder fields} of the configured ume_jax encoders, so
  the torch twin mirrors whatever ume_jax currently builds."""
  from ume_jax.models import registry  # pylint: disable=g-import-not-at-top
  out = {}
  for m in MODALITIES:
    enc = config.model.encoders[m]
    mod = registry.build_encoder(enc.name, dict(enc.get("kwargs", {}) or {}))
    if mod.dtype != "float32":
      raise NotImplementedError(f"{m}: dtype {mod.dtype}")
    out[m] = dict(channels=tuple(mod.channels), strides=tuple(mod.strides),
                  kernel_size=mod.kernel_size, feature_dim=mod.feature_dim)
  return out


def get_config(image_strides=None):
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  if image_strides:
    config.model.encoders.image.kwargs = {"strides": tuple(image_strides)}
  return config


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

  def __init__(self, variant="trainer", config=None):
    import jax  # pylint: disable=g-import-not-at-top
    from ume_jax import methods, sharding  # pylint: disable=g-import-not-at-top
    self.jax = jax
    self.config = config or get_config()
    self.spec = _spec()
    self.method = methods.fusion(self.config, self.spec, "mma", None)
    self.mesh = sharding.build_mesh(self.config.mesh)
    self.batch_sh = sharding.batch_sharding(self.mesh)
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
  jax = runner.jax
  from ume_jax import optim, sharding, steps, trainer  # pylint: disable=g-import-not-at-top
  tx = tx or optim.make_optimizer(opt_cfg or runner.config.finetune.optim,
                                  TOTAL_STEPS)
  init_fn, state_sh = trainer.plan_state(runner.method, tx, runner.mesh)
  state = init_fn(trainer.init_key(runner.config.seed))
  step_fn = jax.jit(
      steps.make_train_step(train_logits or runner.method.train_logits, tx,
                            multilabel=False, seed=runner.config.seed),
      in_shardings=(state_sh, runner.batch_sh),
      out_shardings=(state_sh, sharding.replicated(runner.mesh)),
      donate_argnums=(0,))
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
  from ume_jax import masking  # pylint: disable=g-import-not-at-top
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
  from ume_jax import masking  # pylint: disable=g-import-not-at-top
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
  from ume_jax import masking  # pylint: disable=g-import-not-at-top
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
  from ume_jax import masking  # pylint: disable=g-import-not-at-top
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
  """``torch_reference.TorchTrainer`` on cycled batches; ``run(n)``."""

  def __init__(self, threads=2, compile_mode=None, optimizer_impl="fused",
               channels_last=True, exact_padding=False, encoders=None):
    import torch  # pylint: disable=g-import-not-at-top
    from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
    self.torch = torch
    self.threads = threads
    self.trainer = torch_reference.TorchTrainer(
        INPUT_SHAPES, NUM_CLASSES, channels_last=channels_last,
        exact_padding=exact_padding, optimizer_impl=optimizer_impl,
        compile_mode=compile_mode, total_steps=TOTAL_STEPS,
        encoders=encoders)
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
    self.torch.set_num_threads(self.threads)
    out = None
    for i in range(n):
      out, _ = self.trainer.step(self.current[i % len(self.current)])
    return out


# ----------------------------------------------------------------------------
# Checks and timing.


def check_equivalence(jax_runner):
  """Same weights in both models: logits shapes/values, loss and grad norm
  agree (exact XLA SAME padding on the torch side); initial losses ~ln 10."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from ume_jax import trainer  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top

  method = jax_runner.method
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

  (jl, jlogits), jg = jax.value_and_grad(jloss, has_aux=True)(params)
  jgn = float(optax.tree.norm(jg))

  results = {}
  for exact in (True, False):
    model = torch_reference.LateFusion(
        INPUT_SHAPES, NUM_CLASSES, exact_padding=exact,
        encoders=encoder_kwargs(jax_runner.config))
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


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true",
                      help="batches 32,128; 0.7 s x 3 repeats")
  parser.add_argument("--batch_sizes", default="32,64,128,256")
  parser.add_argument("--seconds", type=float, default=3.0,
                      help="target seconds per timed repeat")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--torch_compile", default="off",
                      choices=("off", "default", "max-autotune-no-cudagraphs"),
                      help="torch.compile the forward+loss (UNTESTED: not"
                      " tried yet on this machine; the table uses eager)")
  parser.add_argument("--torch_optimizer", default="fused",
                      choices=("fused", "foreach", "loop"))
  parser.add_argument("--torch_threads", default="2,1",
                      help="one torch runner per thread count; ratios use"
                      " the fastest per batch size")
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
  if args.quick:
    args.batch_sizes, args.seconds, args.repeats = "32,128", 0.7, 3

  if args.xla_flags:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " +
                               args.xla_flags).strip()
  import jax  # pylint: disable=g-import-not-at-top
  print(f"jax {jax.__version__} devices {jax.devices()}"
        f" XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")

  config = get_config([int(s) for s in args.image_strides.split(",")]
                      if args.image_strides else None)
  encoders = encoder_kwargs(config)
  for m, k in encoders.items():
    print(f"{m} encoder: {k} input {INPUT_SHAPES[m]}")
  runners = {}
  for v in args.jax_variant.split(","):
    runners["jax" if v == "trainer" else v] = JaxRunner(v, config)
  if not args.no_torch:
    # Passive OpenMP waiting: with the default (spinning) policy, 2 torch
    # threads on a 2-core machine that runs anything else are 5-20x slower
    # than 1 thread (measured); PASSIVE removes that cliff.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch  # pylint: disable=g-import-not-at-top
    threads = [int(t) for t in args.torch_threads.split(",")]
    print(f"torch {torch.__version__} threads {threads}"
          f" compile={args.torch_compile} optimizer={args.torch_optimizer}"
          f" channels_last OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    if not args.no_check:
      check_equivalence(next(iter(runners.values())))
    for t in threads:
      runners[f"torch_{t}t"] = TorchRunner(
          threads=t, compile_mode=None if args.torch_compile == "off" else
          args.torch_compile, optimizer_impl=args.torch_optimizer,
          encoders=encoders)

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
