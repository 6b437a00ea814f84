"""`StepContext`: what a task's `train_step` uses to reduce losses and apply gradients.

One context is created per trace of the per-replica step. `apply` is the only
place gradients reach an optimizer, so every update goes through the same
pipeline:

  gradients of the loss (times the loss scale under float16)
    → all-reduce (SUM) across replicas
    → unscale
    → global norm; finite check on norm and loss (identical on every replica)
    → clip by global norm (optional)
    → tf.cond(finite, optimizer.apply, skip)   # no optimizer state change on skip

Because each `apply` completes before the next op that reads those variables
(automatic control dependencies in `tf.function`), a GAN can update the
discriminator and then compute the generator loss through the *updated*
discriminator within one traced step.
"""

from typing import Optional

import keras
import tensorflow as tf


class StepContext:
  """Per-step helpers handed to `Task.train_step` / `Task.eval_step`.

  Attributes:
    step: int64 scalar tensor, the global step *before* this update.
    rng: the trainer's `tf.random.Generator` (checkpointed; differs per replica).
    training: True in `train_step`, False in `eval_step`.
    num_replicas: replicas in sync.
  """

  def __init__(self, *, step, rng, optimizers, optimizer_variables, clip_norms,
               num_replicas: int, training: bool):
    self.step = step
    self.rng = rng
    self.training = training
    self.num_replicas = num_replicas
    self._optimizers = optimizers
    self._optimizer_variables = optimizer_variables
    self._clip_norms = clip_norms
    self.applied: dict[str, dict] = {}

  # ----------------------------------------------------------- reductions
  def global_sum(self, value):
    """Sums `value` over replicas (identity with one replica)."""
    value = tf.convert_to_tensor(value)
    context = tf.distribute.get_replica_context()
    if context is None or self.num_replicas == 1:
      return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)

  def mean(self, values):
    """This replica's share of the mean of `values` over the *global* batch.

    `values` may have any shape (typically `[batch]` per-example losses); the
    result summed over replicas is the mean of every element of the global
    batch, so it is what `apply` expects and what gets logged.
    """
    values = tf.cast(values, tf.float32)
    count = tf.cast(tf.size(values), tf.float32)
    return tf.reduce_sum(values) / tf.maximum(self.global_sum(count), 1.0)

  def masked_mean(self, values, mask):
    """Like `mean` but over the elements where `mask` is 1 (e.g. valid frames).

    Args:
      values: `[batch, ...]` float tensor.
      mask: 0/1 tensor broadcastable to `values` (e.g. `[batch, frames, 1]`).
    """
    values = tf.cast(values, tf.float32)
    mask = tf.broadcast_to(tf.cast(mask, tf.float32), tf.shape(values))
    return tf.reduce_sum(values * mask) / tf.maximum(self.global_sum(tf.reduce_sum(mask)), 1.0)

  # ----------------------------------------------------------- updates
  def apply(self, optimizer_name: str, loss, tape: tf.GradientTape,
            variables: Optional[list] = None):
    """Differentiates `loss` and applies the update of one optimizer, NaN-guarded.

    Args:
      optimizer_name: a key of `Task.optimizers()`.
      loss: this replica's scalar loss contribution (from `mean`/`masked_mean`).
      tape: the tape that recorded `loss` (consumed unless persistent).
      variables: defaults to the variables of the optimizer's modules; pass a
        subset only if some of them do not affect this loss.

    Returns:
      The global gradient norm (before clipping), a float32 scalar.

    Raises:
      ValueError: at trace time, for an unknown optimizer, a second apply of
        the same optimizer in one step, or variables the loss does not reach.
    """
    if not self.training:
      raise ValueError("ctx.apply() is not available in eval_step")
    if optimizer_name not in self._optimizers:
      raise ValueError(f"unknown optimizer {optimizer_name!r}; the task declares "
                       f"{sorted(self._optimizers)}")
    if optimizer_name in self.applied:
      raise ValueError(f"optimizer {optimizer_name!r} applied twice in one step")
    optimizer = self._optimizers[optimizer_name]
    if variables is None:
      variables = self._optimizer_variables[optimizer_name]
    loss = tf.convert_to_tensor(loss)
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    if scaled:
      # output_gradients multiplies the upstream gradient: the same as
      # differentiating loss * scale, without re-recording on the tape.
      scale = tf.convert_to_tensor(optimizer.dynamic_scale)
      grads = tape.gradient(loss, variables, output_gradients=tf.cast(scale, loss.dtype))
    else:
      grads = tape.gradient(loss, variables)
    missing = [v.path if hasattr(v, "path") else v.name
               for v, g in zip(variables, grads) if g is None]
    if missing:
      raise ValueError(f"optimizer {optimizer_name!r}: the loss has no gradient with respect "
                       f"to {missing}; pass `variables=` to ctx.apply() to exclude them")
    grads = [tf.convert_to_tensor(g) for g in grads]  # IndexedSlices → dense.
    if self.num_replicas > 1:
      grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    if scaled:
      grads = [g / tf.cast(scale, g.dtype) for g in grads]
    total_loss = self.global_sum(tf.cast(loss, tf.float32))
    grad_norm = tf.linalg.global_norm(grads)
    finite = tf.logical_and(tf.math.is_finite(grad_norm), tf.math.is_finite(total_loss))
    clip_norm = self._clip_norms.get(optimizer_name)
    if clip_norm is not None:
      safe_norm = tf.where(finite, grad_norm, 1.0)
      grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=safe_norm)
    # Every replica already holds the all-reduced gradient; the Keras optimizer
    # all-reduces (sums) again, so hand each replica 1/N of it. Exact for
    # power-of-two replica counts.
    if self.num_replicas > 1:
      grads = [g / float(self.num_replicas) for g in grads]
    if scaled:
      # LossScaleOptimizer checks finiteness itself and must see the overflow
      # to lower its scale; poison the gradients when the loss is non-finite.
      poison = tf.where(finite, 1.0, float("nan"))
      grads = [g * tf.cast(scale * poison, g.dtype) for g in grads]
      optimizer.apply(grads, variables)
    else:
      _apply_if(finite, optimizer, grads, variables)
    self.applied[optimizer_name] = {"grad_norm": grad_norm,
                                    "skipped": tf.logical_not(finite)}
    return grad_norm


def _apply_if(finite, optimizer, grads, variables):
  """`optimizer.apply(grads, variables)` only when `finite`, under any strategy.

  Keras optimizers call `merge_call` when the strategy needs one (e.g.
  MirroredStrategy without XLA), and a `merge_call` may not sit inside a
  replica-context `tf.cond`; so the condition is then evaluated in
  cross-replica context, as Keras' LossScaleOptimizer does.
  """
  def update():
    optimizer.apply(grads, variables)

  if tf.__internal__.distribute.strategy_supports_no_merge_call():
    tf.cond(finite, update, lambda: None)
    return

  def cross_replica(distribution, finite, grads):
    finite = distribution.experimental_local_results(finite)[0]

    def update_all():
      distribution.extended.call_for_each_replica(
          lambda g: optimizer.apply(g, variables), args=(grads,))
    tf.cond(finite, update_all, lambda: None)

  tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, grads))
