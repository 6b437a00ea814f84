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


def make_optimizer(config: OptimizerConfig, name: str, mixed_precision: str = "none"):
  """Builds a Keras 3 optimizer; float16 mixed precision wraps it in `LossScaleOptimizer`.

  Clipping is *not* configured on the Keras optimizer: the trainer clips the
  all-reduced gradients itself (Keras clips per replica, before all-reduce).
  Must be called inside the distribution strategy's scope.
  """
  lr = make_schedule(config)
  if config.name == "adamw":
    opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay,
                                 beta_1=config.beta_1, beta_2=config.beta_2,
                                 epsilon=config.epsilon, name=name)
  elif config.name == "adam":
    opt = keras.optimizers.Adam(learning_rate=lr, beta_1=config.beta_1,
                                beta_2=config.beta_2, epsilon=config.epsilon, name=name)
  elif config.name == "lamb":
    opt = keras.optimizers.Lamb(learning_rate=lr, beta_1=config.beta_1, beta_2=config.beta_2,
                                epsilon=config.epsilon, weight_decay=config.weight_decay or None,
                                name=name)
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
