"""One training run of one method: sharded init, resume, loop, checkpoints.

Used for every stage: each uni-modal pre-training and each multi-modal method
is a call to ``train`` with its own directory. Restarted, a run resumes from
the latest checkpoint in that directory (model, optimizer and input iterator
state), and draws the same masks it would have drawn uninterrupted.
"""
import dataclasses
import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import optax

from ume_jax import methods
from ume_jax.config import rules
from ume_jax.infra import checkpoint
from ume_jax.infra import mesh as mesh_lib
from ume_jax.infra import preemption
from ume_jax.infra.logs import MetricWriter, Progress, announce
from ume_jax.methods import Method
from ume_jax.train import frozen_prefix, optim, provenance, seeds, validation
from ume_jax.train import step as step_lib
from ume_jax.train.state import TrainState


# The keys of a training-stage section (pretrain, scratch, finetune).
STAGE_KEYS = {
    "num_epochs": rules.number(0),
    "num_steps": rules.integer(0),      # > 0: overrides num_epochs
    "batch_size": rules.integer(1),
    "optim": optim.CONFIG_KEYS,
    "pretrained_dir": rules.text,       # finetune: where pretrain/ lives
}


class TrainingError(RuntimeError):
  """Training diverged or cannot start."""


def plan_state(method: Method, tx: optax.GradientTransformation, mesh
               ) -> tuple[Callable, Any]:
  """Shardings of the train state, and a jitted init creating it sharded.

  Shapes come from ``jax.eval_shape`` (nothing allocated); parameters are
  then created directly on their devices by a jitted init whose output
  shardings are these, never materialised whole on one device.
  """
  params_abstract = methods.abstract_params(method, mesh)
  param_sh = jax.tree.map(lambda x: x.sharding, params_abstract)
  opt_shape = jax.eval_shape(tx.init, params_abstract)
  replicated = mesh_lib.replicated(mesh)
  opt_sh = mesh_lib.like_params_shardings(opt_shape, param_sh,
                                          params_abstract, mesh)
  state_sh = TrainState(step=replicated, params=param_sh, opt_state=opt_sh)
  announce(mesh_lib.describe_sharding(method.name, params_abstract, param_sh))

  def init(key):
    params = nn.meta.unbox(method.boxed_params(key))
    return TrainState(step=jax.numpy.zeros((), jax.numpy.int32), params=params,
                      opt_state=tx.init(params))

  return jax.jit(init, out_shardings=state_sh), state_sh


def optim_config(method: Method, stage_cfg) -> Any:
  """The stage's optimizer config, with the parameters ``method`` never
  trains (``Method.frozen_paths``: umt's teachers) frozen."""
  return optim.with_frozen(stage_cfg.optim, method.frozen_paths)


def jit_train_step(method: Method, tx: optax.GradientTransformation,
                   stage_cfg, state_sh, batch_sh, mesh, *, multilabel: bool,
                   seed: int, prefix: frozen_prefix.Prefix | None = None
                   ) -> Callable:
  """The stage's train step, jitted with its shardings, state donated;
  with ``prefix``, on batches whose cached modalities are prefix rows."""
  train_logits = method.train_logits
  if prefix is not None:
    train_logits = functools.partial(method.prefix.train_logits,
                                     prefix=prefix)
  return jax.jit(
      step_lib.make_train_step(train_logits, tx, multilabel=multilabel,
                            seed=seed, example_weights=method.example_weights,
                            frozen=optim.frozen_mask(
                                state_sh.params,
                                optim_config(method, stage_cfg)),
                            train_terms=method.train_terms),
      in_shardings=(state_sh, batch_sh),
      out_shardings=(state_sh, mesh_lib.replicated(mesh)),
      donate_argnums=(0,))


def total_steps(stage_cfg, train_size: int) -> int:
  if stage_cfg.get("num_steps"):
    return int(stage_cfg.num_steps)
  steps_per_epoch = train_size // stage_cfg.batch_size
  if steps_per_epoch == 0:
    raise TrainingError(
        f"batch_size {stage_cfg.batch_size} is larger than the training split"
        f" ({train_size} examples).")
  return int(math.ceil(stage_cfg.num_epochs * steps_per_epoch))


@preemption.training()
def train(method: Method, stage_cfg, *, dataset, mesh, directory: str,
          seed: int, init_params: Callable[[Any], Any] | None = None,
          checkpoint_cfg=None, log_every_steps: int = 50,
          provenance_record: tuple[dict, dict] | None = None,
          validate: Callable[[Any], dict] | None = None,
          validation_cfg=None,
          prefix_cache: frozen_prefix.Settings | None = None) -> Any:
  """Trains ``method`` into ``directory``; returns its final parameters.

  ``init_params(params)`` may replace freshly initialised parameters (e.g.
  with uni-modal checkpoints); it runs only when no checkpoint exists here.
  ``provenance_record`` (fingerprint, resolved config), if given, is checked
  against the directory's record before resuming (``provenance.py``).
  ``validate(params) -> {name: value, "score": value}``, with
  ``validation_cfg`` (``validation.CONFIG_KEYS``), scores the run on
  validation as it trains and keeps its best checkpoint (``validation.py``).
  ``prefix_cache`` (None: off) runs frozen encoder prefixes once per
  example, cached (``frozen_prefix.py``).
  Ctrl-C within it is a preemption notice (``preemption.training``).
  """
  num_steps = total_steps(stage_cfg, dataset.spec.split_sizes["train"])
  tx = optim.make_optimizer(optim_config(method, stage_cfg), num_steps)
  init_fn, state_sh = plan_state(method, tx, mesh)
  ckpt_cfg = checkpoint_cfg or {}
  if provenance_record is not None:
    provenance.check_or_record(
        directory, *provenance_record,
        has_checkpoint=bool(checkpoint.saved_steps(directory)))
  ckpt = checkpoint.Checkpointer(
      directory, method.fingerprint,
      max_to_keep=int(ckpt_cfg.get("max_to_keep", 2)),
      asynchronous=bool(ckpt_cfg.get("asynchronous", True)))
  batch_sh = mesh_lib.batch_sharding(mesh)
  data_iter = dataset.train_iterator(stage_cfg.batch_size, batch_sh,
                                   seed=seeds.data_order_seed(seed))

  abstract = mesh_lib.abstract_like(
      jax.eval_shape(init_fn, seeds.init_key(seed)), state_sh)
  # A checkpoint of another process count resumes at its global batch.
  restored = ckpt.restore_latest(
      abstract, remap_iter_state=data_iter.state_from_processes)
  if restored is not None:
    latest, state, iter_state = restored
    data_iter.set_state(iter_state)
    announce(f"{method.name}: resumed from step {latest} of {num_steps} in"
             f" {directory}")
  else:
    state = init_fn(seeds.init_key(seed))
    if init_params is not None:
      state = state.replace(params=init_params(state.params))

  start = int(jax.device_get(state.step))
  prefix = None
  if prefix_cache is not None and start < num_steps:
    prefix = frozen_prefix.prepare(method, state.params,
                                   optim_config(method, stage_cfg), dataset,
                                   mesh, prefix_cache)
  if prefix is not None:
    provenance.check_frozen_prefix(directory, prefix.record())
    data_iter = _prefix_iterator(data_iter, prefix, dataset, stage_cfg,
                                 batch_sh, seed)
  step_fn = jit_train_step(method, tx, stage_cfg, state_sh, batch_sh, mesh,
                           multilabel=dataset.spec.multilabel, seed=seed,
                           prefix=prefix)
  every = int(ckpt_cfg.get("every_steps", 0)) or num_steps
  # Steps past the checkpoint are replayed: their old rows go.
  writer = MetricWriter(directory, resume_step=start)
  progress = Progress(method.name, num_steps, start)
  validator = _Validator.start(directory, method, validate, validation_cfg,
                               num_steps)
  if validator is not None and validator.tracker.stopped_at is not None:
    announce(f"{method.name}: stopped early at step"
             f" {validator.tracker.stopped_at} (validation); not trained"
             " further")
    num_steps = start   # the loop below does nothing
  unchecked = []   # (step, device bool "finite") since the last check
  try:
    for step in range(start + 1, num_steps + 1):
      state, scalars = step_fn(state, next(data_iter))
      unchecked.append((step, scalars.pop("finite")))
      save = step % every == 0 or step == num_steps
      preempted = preemption.reached(step)
      if save or preempted or step % log_every_steps == 0:
        _check_finite(unchecked, method.name, ckpt)
        unchecked = []
      stop, logged = False, {}
      if validator is not None and validator.due(step):
        _check_finite(unchecked, method.name, ckpt)
        unchecked = []
        logged, stop = validator.run(step, state, data_iter)
      if step % log_every_steps == 0 or step == num_steps:
        scalars = {k: float(v) for k, v in jax.device_get(scalars).items()}
        scalars["steps_per_s"] = progress.report(step, scalars)
        scalars["learning_rate"] = optim.learning_rate(stage_cfg.optim,
                                                       num_steps, step)
        logged = {**scalars, **logged}
      if logged:   # one row per step: training and validation scalars
        writer.write(step, logged)
      if save or preempted or stop:
        ckpt.save(step, state, data_iter.get_state())
      if stop:
        announce(f"{method.name}: no better validation score in"
                 f" {validator.tracker.patience} validations; stopped at"
                 f" step {step} (best: step {validator.tracker.step})")
        break
      if preempted:
        ckpt.wait()
        raise preemption.Preempted(method.name, step, directory)
  finally:
    ckpt.close()
    writer.close()
    data_iter.close()
    if validator is not None:
      validator.close()
  return state.params


def _prefix_iterator(data_iter, prefix, dataset, stage_cfg, batch_sh, seed):
  """``data_iter``'s stream from where it is, its cached modalities read
  from ``prefix`` rows (the same examples in the same order)."""
  position = data_iter.get_state()
  data_iter.close()
  cached = dataset.train_iterator(stage_cfg.batch_size, batch_sh,
                                  seed=seeds.data_order_seed(seed),
                                  transform=prefix.gather)
  cached.set_state(position)
  return cached


@dataclasses.dataclass
class _Validator:
  """A run's validation schedule, best-checkpoint saver and tracker."""

  validate: Callable[[Any], dict]
  every: int
  num_steps: int
  tracker: validation.Tracker
  best: checkpoint.Checkpointer

  @classmethod
  def start(cls, directory, method, validate, cfg, num_steps):
    if validate is None or not cfg or int(cfg.get("every_steps", 0)) <= 0:
      return None
    best = checkpoint.Checkpointer(validation.best_dir(directory),
                                   method.fingerprint, max_to_keep=1,
                                   asynchronous=False)
    tracker = validation.Tracker.load(directory, int(cfg.get("patience", 0)),
                                      best.latest_step())
    return cls(validate, int(cfg.get("every_steps")), num_steps, tracker, best)

  def due(self, step: int) -> bool:
    return step % self.every == 0 or step == self.num_steps

  def run(self, step, state, data_iter) -> tuple[dict, bool]:
    """Validates at ``step`` and saves a new best: (the scalars to log,
    whether to stop early)."""
    scores = {k: float(v) for k, v in self.validate(state.params).items()}
    if self.tracker.update(step, scores):
      self.best.save(step, state, data_iter.get_state())
      self.best.wait()
    stop = self.tracker.should_stop()
    if stop:
      self.tracker.stopped_at = step
    self.tracker.write()
    return {f"val/{k}": v for k, v in scores.items()}, stop

  def close(self):
    self.best.close()


def _check_finite(unchecked: list, name: str, ckpt) -> None:
  """Raises naming the first step whose loss or gradient was not finite."""
  if not unchecked:
    return
  flags = jax.device_get([f for _, f in unchecked])
  bad = [step for (step, _), ok in zip(unchecked, flags) if not ok]
  if bad:
    ckpt.wait()
    kept = ckpt.latest_step()
    raise TrainingError(
        f"{name}: the loss or its gradient became non-finite at step"
        f" {bad[0]}; stopped without saving it. "
        + (f"The last good checkpoint (step {kept}) is kept in"
           f" {ckpt.directory}. " if kept is not None else "")
        + "Lower the learning rate, set optim.grad_clip_norm, or check the"
        " input data for NaN/inf.")
