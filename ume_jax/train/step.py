"""The pure train step; ``trainer.py`` jits it with shardings.

A step's randomness is ``keys.augmentation_key(seed, step)``: resuming from
a checkpoint replays exactly the masks an uninterrupted run would have drawn.
"""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from ume_jax.eval import metrics
from ume_jax.missing import keys
from ume_jax.train.state import TrainState

TrainLogitsFn = Callable[[Any, dict, jax.Array], jnp.ndarray]


def _split(frozen: Any, params: Any) -> Any:
  """The trainable part of ``params``: frozen leaves become None."""
  return jax.tree.map(lambda f, x: None if f else x, frozen, params)


def _merge(frozen: Any, params: Any, trainable: Any) -> Any:
  return jax.tree.map(lambda f, x, t: x if f else t, frozen, params,
                      trainable)


def make_train_step(train_logits: TrainLogitsFn,
                    tx: optax.GradientTransformation, *, multilabel: bool,
                    seed: int, example_weights=None, frozen: Any = None,
                    train_terms=None):
  """(state, batch) -> (state, scalar metrics).

  ``example_weights(batch)`` (B,), if given, weights each example's loss.
  ``train_terms(params, batch, key) -> (logits, {name: loss})``, if given,
  replaces ``train_logits``: the loss is the task loss plus those terms,
  each logged as ``<name>_loss`` beside ``task_loss``.
  ``frozen`` (a tree of bools like the parameters), if given, marks
  parameters that get no gradient: they are closed over rather than
  differentiated, so XLA computes no backward pass below the lowest
  trainable layer; their (zero) gradients are filled in for ``tx``.
  """

  def train_step(state: TrainState, batch: dict):
    key = keys.augmentation_key(seed, state.step)

    weights = None if example_weights is None else example_weights(batch)

    mask = frozen if frozen is not None else jax.tree.map(
        lambda _: False, state.params)

    def loss_fn(trainable):
      params = _merge(mask, state.params, trainable)
      if train_terms is None:
        logits, terms = train_logits(params, batch, key), {}
      else:
        logits, terms = train_terms(params, batch, key)
      task = metrics.loss(logits, batch["label"], multilabel, weights)
      return task + sum(terms.values()), (logits, task, terms)

    (loss, (logits, task, terms)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(_split(mask, state.params))
    grads = jax.tree.map(lambda f, x, g: jnp.zeros_like(x) if f else g, mask,
                         state.params, grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    # Frozen leaves are passed through, not updated by zero: they stay
    # bit-identical (x + 0 turns -0.0 into 0.0).
    params = _merge(mask, state.params,
                    optax.apply_updates(state.params, updates))
    valid = jnp.ones(logits.shape[:1], jnp.bool_)
    counts = metrics.batch_counts(logits, batch["label"], valid, multilabel)
    grad_norm = optax.tree.norm(grads)
    # Checked by the trainer before every checkpoint: a non-finite step
    # must never be saved over the last good state.
    out = {"loss": loss, "grad_norm": grad_norm,
           "finite": jnp.isfinite(loss) & jnp.isfinite(grad_norm)}
    if terms:
      out["task_loss"] = task
      out.update({f"{name}_loss": v for name, v in terms.items()})
    if not multilabel:
      out["accuracy"] = counts["correct"] / counts["count"]
    new_state = TrainState(step=state.step + 1, params=params,
                           opt_state=opt_state)
    return new_state, out

  return train_step
