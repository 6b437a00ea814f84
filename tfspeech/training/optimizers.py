"""Keras 3 optimizers and learning-rate schedules built from `OptimizerConfig`.

Each optimizer gets its own schedule object, evaluated at that optimizer's own
`iterations` (a skipped step does not advance it).
"""

import math

import keras
import tensorflow as tf

from tfspeech.training.config import OptimizerConfig


@keras.saving.register_keras_serializable(package="tfspeech")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warmup from 0 to `peak`, then cosine decay to `floor` over `decay_steps`."""

  def __init__(self, peak, warmup_steps, decay_steps, floor=0.0):
    self.peak, self.warmup_steps, self.decay_steps, self.floor = (
        float(peak), int(warmup_steps), int(decay_steps), float(floor))

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warm = tf.cast(max(self.warmup_steps, 1), tf.float32)
    warmup = self.peak * tf.minimum(step + 1.0, warm) / warm
    progress = tf.clip_by_value((step - self.warmup_steps) / float(self.decay_steps), 0.0, 1.0)
    cosine = self.floor + 0.5 * (self.peak - self.floor) * (1.0 + tf.cos(math.pi * progress))
    return tf.where(step < self.warmup_steps, warmup, cosine)

  def get_config(self):
    return {"peak": self.peak, "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps, "floor": self.floor}


@keras.saving.register_keras_serializable(package="tfspeech")
class Noam(keras.optimizers.schedules.LearningRateSchedule):
  """lr · warmup^0.5 · min(step · warmup^-1.5, step^-0.5): peaks at `lr` after warmup."""

  def __init__(self, peak, warmup_steps):
    self.peak, self.warmup_steps = float(peak), int(warmup_steps)

  def __call__(self, step):
    step = tf.cast(step, tf.float32) + 1.0
    warm = float(self.warmup_steps)
    return self.peak * warm ** 0.5 * tf.minimum(step * warm ** -1.5, tf.math.rsqrt(step))

  def get_config(self):
    return {"peak": self.peak, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="tfspeech")
class FlooredExponential(keras.optimizers.schedules.LearningRateSchedule):
  """lr · decay_rate^(step / decay_steps), never below `floor`."""

  def __init__(self, peak, decay_steps, decay_rate, floor=0.0):
    self.peak, self.decay_steps, self.decay_rate, self.floor = (
        float(peak), int(decay_steps), float(decay_rate), float(floor))

  def __call__(self, step):
    exponent = tf.cast(step, tf.float32) / float(self.decay_steps)
    return tf.maximum(self.peak * tf.pow(self.decay_rate, exponent), self.floor)

  def get_config(self):
    return {"peak": self.peak, "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate, "floor": self.floor}


def make_schedule(config: OptimizerConfig):
  """The learning rate (float or schedule) described by `config`."""
  if config.schedule == "constant":
    return config.learning_rate
  if config.schedule == "exponential":
    return FlooredExponential(config.learning_rate, config.decay_steps, config.decay_rate,
                              config.min_learning_rate)
  if config.schedule == "cosine":
    return WarmupCosine(config.learning_rate, config.warmup_steps, config.decay_steps,
                        config.min_learning_rate)
  if config.schedule == "noam":
    return Noam(config.learning_rate, config.warmup_steps)
  raise ValueError(f"unknown schedule {config.schedule!r}")


def _plain_variable(variable):
  """The plain (single-device) resource tf.Variable of `variable` (Keras or TF), else None."""
  # A Keras variable wraps a tf.Variable (as its `value`; a tf.Variable's `value` is a method).
  value = variable if isinstance(variable, tf.Variable) else getattr(variable, "value", None)
  if (isinstance(value, tf.distribute.DistributedValues) or not isinstance(value, tf.Variable)
      or getattr(value, "handle", None) is None):
    return None
  return value


class _FusedUpdates:
  """Keras's per-variable update loop replaced by `_fused_update` on all plain variables.

  Subclasses define `_fusable(variable)` and `_fused_update(pairs, learning_rate, dtype)`,
  which updates `(gradient, variable)` pairs of one dtype with the scalar work (casts, powers
  of the betas) done once: per variable it was most of the update's graph ops (FastPitch's
  LAMB: ~13 of ~17; Grad-TTS's Adam: 7 of 8, 2150 ops a step). Other variables (distributed,
  or what the subclass cannot fuse) keep Keras's own loop and `update_step`.
  """

  def _backend_update_step(self, grads, trainable_variables, learning_rate):
    fused, others = [], []
    for pair in zip(grads, trainable_variables):
      (fused if self._fusable(pair[1]) else others).append(pair)
    if others:
      super()._backend_update_step([g for g, _ in others], [v for _, v in others],
                                   learning_rate)
    by_dtype = {}
    for gradient, variable in fused:
      by_dtype.setdefault(variable.dtype, []).append((gradient, variable))
    for dtype, pairs in by_dtype.items():
      self._fused_update(pairs, tf.cast(learning_rate, dtype), dtype)

  def _fusable(self, variable):
    index = self._get_variable_index(variable)
    return all(_plain_variable(x) is not None for x in
               (variable, self._momentums[index], self._velocities[index]))

  def _plain_variables(self, variable):
    """The plain tf.Variables of fusable `variable` and its two moments."""
    index = self._get_variable_index(variable)
    return [_plain_variable(x)
            for x in (variable, self._momentums[index], self._velocities[index])]


class _FusedAdamUpdate(_FusedUpdates):
  """Adam's per-variable update as one `ResourceApplyAdam` op.

  Keras 3 writes the update as ~35 graph ops per variable (casts, two powers of the betas,
  reads, arithmetic, assigns): in a HiFi-GAN GAN step (two optimizers, ~600 variables) that
  was about half of the traced graph, which every run pays for at its first step, in Python
  tracing and in Grappler. The fused kernel computes the same update (m, v moments with the
  bias correction folded into the step size, `var -= lr_t * m / (sqrt(v) + epsilon)`), on
  the same slot variables, so checkpoints do not change. Distributed (mirrored) variables and
  AMSGrad keep Keras's own update.
  """

  def _fusable(self, variable):
    return not self.amsgrad and super()._fusable(variable)

  def _fused_update(self, pairs, learning_rate, dtype):
    step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
    epsilon = tf.cast(self.epsilon, dtype)
    for gradient, variable in pairs:
      variable, momentum, velocity = self._plain_variables(variable)
      tf.raw_ops.ResourceApplyAdam(
          var=variable.handle, m=momentum.handle, v=velocity.handle, beta1_power=beta_1_power,
          beta2_power=beta_2_power, lr=learning_rate, beta1=beta_1, beta2=beta_2,
          epsilon=epsilon, grad=tf.cast(gradient, dtype))


@keras.saving.register_keras_serializable(package="tfspeech")
class FusedAdam(_FusedAdamUpdate, keras.optimizers.Adam):
  """`keras.optimizers.Adam` updating each variable with one fused op (see above)."""


@keras.saving.register_keras_serializable(package="tfspeech")
class FusedAdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
  """`keras.optimizers.AdamW` (Keras applies the decoupled decay first) with the fused update."""


@tf.function(jit_compile=True, autograph=False)
def _lamb_moments(momentum, velocity, gradient, beta_1, beta_2, step, epsilon):
  """Updates LAMB's moments in place; returns Adam's bias-corrected direction
  `m_hat / (sqrt(v_hat) + epsilon)` (Keras 3's `Lamb.update_step`), the variable's shape."""
  momentum.assign_add((gradient - momentum) * (1.0 - beta_1))
  velocity.assign_add((tf.square(gradient) - velocity) * (1.0 - beta_2))
  return ((momentum / (1.0 - tf.pow(beta_1, step)))
          / (tf.sqrt(velocity / (1.0 - tf.pow(beta_2, step))) + epsilon))


@tf.function(jit_compile=True, autograph=False)
def _lamb_apply(variable, update, step_size, decay):
  """`variable <- variable - variable * decay - step_size * update` in one pass."""
  variable.assign(variable - variable * decay - step_size * update)


@keras.saving.register_keras_serializable(package="tfspeech")
class FusedLamb(_FusedUpdates, keras.optimizers.Lamb):
  """`keras.optimizers.Lamb` whose per-variable update, weight decay included, is two XLA
  computations (`_lamb_moments`, `_lamb_apply`) and two `L2Loss` norms, with the trust ratios
  of all variables computed together.

  Keras writes LAMB as 62 graph ops per variable (31 of them element-wise arithmetic, each a
  pass over the variable) plus six for the decay: in FastPitch's ljspeech step (batch 1, 180
  variables) they were a quarter of the op time (0.27 s) and the traced graph took 30 s to its
  first step, against 18-20 s fused. Both norms are TF's `L2Loss`, not part of the XLA
  computations: XLA:CPU's full reductions ran single-threaded at a fifth of L2Loss's rate
  (one computation with the norms inside: 3.3 ms on a [3, 384, 1536] kernel, 1.9 ms split).
  The norms become trust ratios on vectors, once per apply (see `_FusedUpdates`). Updating
  all 46M parameters of FastPitch ljspeech takes 49 ms (79 ms as one XLA computation per
  variable; `v += 1e-9 * g` over them, one read of two tensors and one write, takes 16 ms, and
  LAMB reads four and writes three). Same slot variables (checkpoints unchanged); distributed
  (mirrored) variables keep Keras's own update.
  """

  def _apply_weight_decay(self, variables):
    # `apply` decays every variable before any update; the fused update decays its own.
    super()._apply_weight_decay([v for v in variables if not self._fusable(v)])

  def _fused_update(self, pairs, learning_rate, dtype):
    rate = float(self.weight_decay or 0.0)
    decay = tf.constant([rate if rate and self._use_weight_decay(v) else 0.0 for _, v in pairs],
                        dtype) * learning_rate
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    step, epsilon = tf.cast(self.iterations + 1, dtype), tf.cast(self.epsilon, dtype)
    variables, updates = [], []
    for gradient, variable in pairs:
      variable, momentum, velocity = self._plain_variables(variable)
      updates.append(_lamb_moments(momentum, velocity, tf.cast(gradient, dtype), beta_1, beta_2,
                                   step, epsilon))
      variables.append(variable)
    # Keras takes the norm of the decayed variable: |w - w * decay| = |1 - decay| |w|.
    w_norm = tf.abs(1.0 - decay) * tf.sqrt(2.0 * tf.stack([tf.nn.l2_loss(v) for v in variables]))
    u_norm = tf.sqrt(2.0 * tf.stack([tf.nn.l2_loss(u) for u in updates]))
    ratio = tf.where(w_norm > 0.0, tf.where(u_norm > 0.0, w_norm / u_norm, 1.0), 1.0)
    for variable, update, step_size, variable_decay in zip(
        variables, updates, tf.unstack(ratio * learning_rate), tf.unstack(decay)):
      _lamb_apply(variable, update, step_size, variable_decay)


def make_optimizer(config: OptimizerConfig, name: str, mixed_precision: str = "none"):
  """Builds a Keras 3 optimizer; float16 mixed precision wraps it in `LossScaleOptimizer`.

  Clipping is *not* configured on the Keras optimizer: the trainer clips the
  all-reduced gradients itself (Keras clips per replica, before all-reduce).
  Must be called inside the distribution strategy's scope.
  """
  lr = make_schedule(config)
  if config.name == "adamw":
    opt = FusedAdamW(learning_rate=lr, weight_decay=config.weight_decay, beta_1=config.beta_1,
                     beta_2=config.beta_2, epsilon=config.epsilon, name=name)
  elif config.name == "adam":
    opt = FusedAdam(learning_rate=lr, beta_1=config.beta_1, beta_2=config.beta_2,
                    epsilon=config.epsilon, name=name)
  elif config.name == "lamb":
    opt = FusedLamb(learning_rate=lr, beta_1=config.beta_1, beta_2=config.beta_2,
                    epsilon=config.epsilon, weight_decay=config.weight_decay or None, name=name)
  elif config.name == "sgd":
    opt = keras.optimizers.SGD(learning_rate=lr, momentum=config.beta_1, name=name)
  else:
    raise ValueError(f"unknown optimizer {config.name!r}")
  if mixed_precision == "mixed_float16":
    opt = keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
  return opt


def current_learning_rate(optimizer) -> tf.Tensor:
  """The learning rate the next update of `optimizer` will use."""
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  return tf.convert_to_tensor(inner.learning_rate, tf.float32)
