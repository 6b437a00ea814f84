"""HiFi-GAN training losses (jik876/hifi-gan models.py and train.py).

Generator: sum over sub-discriminators of mean((1 - D(G(s)))^2) [LSGAN] +
2 x feature matching (mean |D_l(x) - D_l(G(s))| summed over layers) + 45 x
mean |mel(x) - mel(G(s))|. Discriminator: sum over sub-discriminators of
mean((1 - D(x))^2) + mean(D(G(s))^2). The reference's mel loss uses the input
mel settings with fmax_for_loss = None, i.e. `MelConfig.hifigan(fmax=None)`.
"""

import tensorflow as tf

from tfspeech.audio.mel import MelConfig, MelSpectrogram

FEATURE_MATCHING_WEIGHT = 2.0
MEL_LOSS_WEIGHT = 45.0


def _float32(x):
  # Discriminators trained under a mixed-precision policy give bfloat16/float16 logits and
  # maps; their means are taken in float32 (a bfloat16 sum of many terms loses most digits).
  return tf.cast(x, tf.float32)


def discriminator_loss(real_logits, fake_logits):
  """Least-squares discriminator loss.

  Args:
    real_logits: list of `[batch, n_i]` logits of real audio, one per sub-discriminator.
    fake_logits: the same for generated audio.

  Returns:
    `(loss, real_losses, fake_losses)`: the scalar sum, and the per
    sub-discriminator scalars mean((1 - real)^2) and mean(fake^2).
  """
  real_losses = [tf.reduce_mean(tf.square(1.0 - _float32(real))) for real in real_logits]
  fake_losses = [tf.reduce_mean(tf.square(_float32(fake))) for fake in fake_logits]
  return tf.add_n(real_losses) + tf.add_n(fake_losses), real_losses, fake_losses


def generator_loss(fake_logits):
  """Least-squares generator loss: `(sum, per sub-discriminator mean((1 - fake)^2))`."""
  losses = [tf.reduce_mean(tf.square(1.0 - _float32(fake))) for fake in fake_logits]
  return tf.add_n(losses), losses


def feature_matching_loss(real_feature_maps, fake_feature_maps):
  """2 x the sum over sub-discriminators and layers of mean |real - fake| (scalar)."""
  terms = [tf.reduce_mean(tf.abs(_float32(real) - _float32(fake)))
           for real_maps, fake_maps in zip(real_feature_maps, fake_feature_maps)
           for real, fake in zip(real_maps, fake_maps)]
  return FEATURE_MATCHING_WEIGHT * tf.add_n(terms)


def mel_l1_loss(real_mel, fake_mel):
  """45 x mean |real_mel - fake_mel| over `[batch, frames, mels]` log mels (scalar)."""
  return MEL_LOSS_WEIGHT * tf.reduce_mean(tf.abs(real_mel - fake_mel))


class MelReconstructionLoss(tf.Module):
  """45 x L1 distance of the log mels of real and generated audio.

  Args:
    mel_config: the `MelConfig` of the loss; default `MelConfig.hifigan(fmax=None)`
      (the reference's fmax_for_loss = None).
  """

  def __init__(self, mel_config=None, name=None):
    super().__init__(name=name)
    self.mel_spectrogram = MelSpectrogram(
        MelConfig.hifigan(fmax=None) if mel_config is None else mel_config)

  def __call__(self, real_audio, fake_audio):
    """`[batch, samples]` real and generated audio (same length) -> scalar loss."""
    return mel_l1_loss(self.mel_spectrogram(real_audio), self.mel_spectrogram(fake_audio))


def generator_losses(mpd, msd, mel_loss, real_audio, fake_audio, training=True):
  """The reference's total generator loss and its parts.

  Args:
    mpd: a `MultiPeriodDiscriminator`.
    msd: a `MultiScaleDiscriminator`.
    mel_loss: a `MelReconstructionLoss`.
    real_audio: `[batch, samples]` ground-truth audio.
    fake_audio: `[batch, samples]` generator output (gradients flow into it).
    training: passed to the discriminators (spectral-norm power iteration).

  Returns:
    dict of scalars: total, adversarial, feature_matching, mel.
  """
  adversarial, feature_matching = [], []
  for discriminator in (mpd, msd):
    _, real_maps = discriminator(real_audio, training=training)
    fake_logits, fake_maps = discriminator(fake_audio, training=training)
    adversarial.append(generator_loss(fake_logits)[0])
    feature_matching.append(feature_matching_loss(real_maps, fake_maps))
  parts = {"adversarial": tf.add_n(adversarial),
           "feature_matching": tf.add_n(feature_matching),
           "mel": mel_loss(real_audio, fake_audio)}
  parts["total"] = parts["adversarial"] + parts["feature_matching"] + parts["mel"]
  return parts


def discriminator_losses(mpd, msd, real_audio, fake_audio, training=True):
  """The reference's total discriminator loss (MPD + MSD); `fake_audio` is detached.

  Returns:
    dict of scalars: total, mpd, msd.
  """
  fake_audio = tf.stop_gradient(fake_audio)
  parts = {}
  for key, discriminator in (("mpd", mpd), ("msd", msd)):
    real_logits, _ = discriminator(real_audio, training=training)
    fake_logits, _ = discriminator(fake_audio, training=training)
    parts[key] = discriminator_loss(real_logits, fake_logits)[0]
  parts["total"] = parts["mpd"] + parts["msd"]
  return parts
