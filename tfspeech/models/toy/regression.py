"""The "toy" task: a causal Conv1D regressor on variable-length synthetic sequences."""

import dataclasses

import keras
import tensorflow as tf

from tfspeech import config as cfg
from tfspeech.models import registry
from tfspeech.models.toy import data
from tfspeech.training import summaries
from tfspeech.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class ToyConfig:
  """Toy sequence regressor.

  Attributes:
    in_channels: input features per frame.
    out_channels: target features per frame.
    hidden: channels of each hidden causal convolution.
    num_layers: hidden causal convolutions.
    kernel_size: convolution width (frames).
    noise_std: std of Gaussian noise added to training inputs (drawn from the
      trainer's checkpointed RNG) (safe).
    min_length, max_length: range of sequence lengths (frames) in the data.
    num_examples: examples in the synthetic train set (eval uses 16 more).
  """
  in_channels: int = 4
  out_channels: int = 2
  hidden: int = 16
  num_layers: int = 2
  kernel_size: int = 3
  noise_std: float = cfg.safe_field(0.01)
  min_length: int = 4
  max_length: int = 12
  num_examples: int = 64

  def __post_init__(self):
    if not 0 < self.min_length <= self.max_length:
      raise ValueError(f"need 0 < min_length <= max_length, got {self.min_length}, "
                       f"{self.max_length}")


def build_regressor(config: ToyConfig) -> keras.Model:
  inputs = keras.Input((None, config.in_channels), name="inputs")
  x = inputs
  for i in range(config.num_layers):
    x = keras.layers.Conv1D(config.hidden, config.kernel_size, padding="causal",
                            activation="tanh", name=f"conv_{i}")(x)
  outputs = keras.layers.Dense(config.out_channels, name="proj", dtype="float32")(x)
  return keras.Model(inputs, outputs, name="regressor")


@registry.register("toy")
class ToyTask(registry.Task):
  """Masked-MSE regression: one optimizer ("main"), eval, image/audio summaries."""
  config_class = ToyConfig
  presets = {"tiny": ToyConfig(hidden=8, num_layers=1),
             "small": ToyConfig(hidden=32, num_layers=3)}
  sample_rate = 8000
  mixed_precisions = ("mixed_bfloat16", "mixed_float16")  # tests/training/test_nan_guard.py

  @classmethod
  def default_train_config(cls, preset):
    del preset
    return TrainConfig(batch_size=8, max_steps=200, learning_rate=1e-2, log_every=10,
                       checkpoint_every=50, eval_every=50, eval_batches=2,
                       summary_every=50)

  def build(self):
    return {"net": build_regressor(self.config)}

  def dataset(self, data_dir, split, train_config):
    del data_dir  # Synthetic data.
    c = self.config
    training = split == "train"
    return data.sequence_dataset(
        seed=train_config.seed, num_examples=c.num_examples if training else 16,
        batch_size=train_config.batch_size, training=training, in_channels=c.in_channels,
        out_channels=c.out_channels, min_length=c.min_length, max_length=c.max_length,
        first_index=0 if training else c.num_examples)

  def _loss(self, batch, ctx, inputs, training):
    mask = tf.sequence_mask(batch["lengths"], tf.shape(inputs)[1], tf.float32)[..., None]
    prediction = self.modules["net"](inputs, training=training)
    return ctx.masked_mean(tf.square(prediction - batch["targets"]), mask)

  def train_step(self, batch, ctx):
    inputs = batch["inputs"]
    inputs += self.config.noise_std * ctx.rng.normal(tf.shape(inputs))
    with tf.GradientTape() as tape:
      loss = self._loss(batch, ctx, inputs, training=True)
    ctx.apply("main", loss, tape)
    return {"loss": loss}

  def eval_step(self, batch, ctx):
    return {"loss": self._loss(batch, ctx, batch["inputs"], training=False)}

  def summaries(self, batch):
    prediction = self.modules["net"](batch["inputs"][:1], training=False)
    return {"images/prediction": summaries.mel_image(prediction[0]),
            "images/target": summaries.mel_image(batch["targets"][0]),
            "audio/prediction": tf.tanh(prediction[:, :, 0])}
