"""The "toy_gan" task: a conditional LSGAN with two optimizers, stepped like HiFi-GAN."""

import dataclasses

import keras
import tensorflow as tf

from tfspeech import config as cfg
from tfspeech.models import registry
from tfspeech.models.toy import data
from tfspeech.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class ToyGanConfig:
  """Toy conditional GAN.

  Attributes:
    cond_dim: conditioning features (the "mel" of the toy).
    signal_dim: samples of the generated "waveform".
    hidden: width of the hidden layers of both networks.
    recon_weight: weight of the L1 reconstruction loss in the generator loss
      (HiFi-GAN's mel loss weight plays this role) (safe).
    discriminator_lr_scale: discriminator learning rate relative to the
      generator's (shows per-optimizer settings).
    num_examples: examples in the synthetic train set.
  """
  cond_dim: int = 4
  signal_dim: int = 16
  hidden: int = 16
  recon_weight: float = cfg.safe_field(10.0)
  discriminator_lr_scale: float = 1.0
  num_examples: int = 64


def _mlp(widths, out, name, out_activation=None):
  layers = [keras.layers.Dense(w, activation="leaky_relu", name=f"dense_{i}")
            for i, w in enumerate(widths)]
  layers.append(keras.layers.Dense(out, activation=out_activation, name="out", dtype="float32"))
  return keras.Sequential(layers, name=name)


@registry.register("toy_gan")
class ToyGanTask(registry.Task):
  """Generator "generator" and discriminator "discriminator", each with its own optimizer."""
  config_class = ToyGanConfig
  presets = {"tiny": ToyGanConfig(hidden=8), "small": ToyGanConfig(hidden=32)}

  @classmethod
  def default_train_config(cls, preset):
    del preset
    return TrainConfig(batch_size=8, max_steps=200, learning_rate=2e-3, beta_1=0.8,
                       beta_2=0.99, weight_decay=0.01, lr_schedule="exponential",
                       decay_steps=8, decay_rate=0.999, log_every=10, checkpoint_every=50,
                       eval_every=0, summary_every=0)

  def build(self):
    c = self.config
    generator = _mlp([c.hidden, c.hidden], c.signal_dim, "generator", "tanh")
    generator.build((None, c.cond_dim))
    discriminator = _mlp([c.hidden], 1, "discriminator")
    discriminator.build((None, c.signal_dim + c.cond_dim))
    return {"generator": generator, "discriminator": discriminator}

  def optimizers(self, train_config):
    base = train_config.optimizer_config()
    disc = dataclasses.replace(
        base, learning_rate=base.learning_rate * self.config.discriminator_lr_scale)
    return {"generator": registry.OptimizerSpec(("generator",), base),
            "discriminator": registry.OptimizerSpec(("discriminator",), disc)}

  def dataset(self, data_dir, split, train_config):
    del data_dir
    if split != "train":
      return None
    return data.gan_dataset(seed=train_config.seed, num_examples=self.config.num_examples,
                            batch_size=train_config.batch_size, training=True,
                            cond_dim=self.config.cond_dim, signal_dim=self.config.signal_dim)

  def _score(self, signal, cond):
    return self.modules["discriminator"](tf.concat([signal, cond], axis=-1), training=True)

  def train_step(self, batch, ctx):
    generator = self.modules["generator"]
    cond, real = batch["cond"], batch["signal"]
    with tf.GradientTape() as g_tape:
      fake = generator(cond, training=True)
    # Discriminator step on the detached fake.
    with tf.GradientTape() as d_tape:
      d_real = self._score(real, cond)
      d_fake = self._score(tf.stop_gradient(fake), cond)
      d_loss = ctx.mean(tf.square(d_real - 1.0) + tf.square(d_fake))
    ctx.apply("discriminator", d_loss, d_tape)
    # Generator step through the *updated* discriminator: re-entering g_tape
    # continues the recording that started at the generator forward pass.
    with g_tape:
      adversarial = ctx.mean(tf.square(self._score(fake, cond) - 1.0))
      reconstruction = ctx.mean(tf.abs(fake - real))
      g_loss = adversarial + self.config.recon_weight * reconstruction
    ctx.apply("generator", g_loss, g_tape)
    return {"discriminator": d_loss, "generator": g_loss, "adversarial": adversarial,
            "reconstruction": reconstruction}
