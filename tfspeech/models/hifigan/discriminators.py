"""HiFi-GAN multi-period (MPD) and multi-scale (MSD) discriminators, channels-last.

Both take a batch of waveforms `[batch, samples]` and return
`(logits, feature_maps)`: `logits` is a list with one `[batch, n]` tensor per
sub-discriminator (flattened conv_post output), `feature_maps` a list with,
per sub-discriminator, the list of activations after every conv (after its
leaky ReLU) followed by the conv_post output, as in the reference. Real and
generated audio are separate calls (the reference runs them one after the
other too), or one call on their concatenation.
"""

import keras
import tensorflow as tf

from tfspeech.models.hifigan.generator import LRELU_SLOPE
from tfspeech.models.hifigan.weight_norm import NormalizedConv1D, NormalizedConv2D

MPD_PERIODS = (2, 3, 5, 7, 11)
MPD_CHANNELS = (32, 128, 512, 1024, 1024)
MPD_KERNEL = 5
MPD_STRIDE = 3
MSD_CHANNELS = (128, 128, 256, 512, 1024, 1024, 1024)
MSD_GROUPS = (1, 4, 16, 16, 16, 16, 1)
MSD_KERNELS = (15, 41, 41, 41, 41, 41, 5)
MSD_STRIDES = (1, 2, 2, 4, 4, 1, 1)
MSD_SCALES = 3
# AvgPool1d(4, 2, padding=2) between scales; torch averages the zero padding in
# (count_include_pad=True).
MSD_POOL_SIZE, MSD_POOL_STRIDE, MSD_POOL_PADDING = 4, 2, 2


def _torch_default_init():
  # torch conv default init U(+-1/sqrt(fan_in)) (the reference leaves D's init alone).
  return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def _check_audio(name, audio):
  audio = tf.convert_to_tensor(audio)
  if audio.shape.rank != 2:
    raise ValueError(f"{name}: audio must have shape [batch, samples], got {audio.shape}")
  return audio


class PeriodDiscriminator(keras.layers.Layer):
  """One MPD sub-discriminator: folds the waveform by `period` and applies (k, 1) Conv2Ds.

  `[batch, samples]` -> logits `[batch, frames' * period]`, feature maps
  `[batch, frames_i, period, channels_i]` where frames = ceil(samples / period).
  """

  def __init__(self, period, channels=MPD_CHANNELS, kernel_size=MPD_KERNEL, stride=MPD_STRIDE,
               **kwargs):
    super().__init__(**kwargs)
    if period < 1:
      raise ValueError(f"PeriodDiscriminator: period must be >= 1, got {period}")
    self.period = int(period)
    in_channels = 1
    self.num_convs = len(channels)
    for i, filters in enumerate(channels):
      # The last conv keeps the time resolution (stride 1), as in the reference.
      strides = (stride, 1) if i < len(channels) - 1 else (1, 1)
      conv = NormalizedConv2D(filters, (kernel_size, 1), strides=strides, padding="valid",
                              time_padding=(kernel_size - 1) // 2, normalization="weight",
                              kernel_initializer=_torch_default_init(), name=f"conv_{i}")
      conv.build((None, None, self.period, in_channels))
      setattr(self, f"conv_{i}", conv)  # not a list: see generator.py
      in_channels = filters
    self.conv_post = NormalizedConv2D(1, (3, 1), padding="valid", time_padding=1,
                                      normalization="weight",
                                      kernel_initializer=_torch_default_init(), name="conv_post")
    self.conv_post.build((None, None, self.period, in_channels))
    self.built = True

  @property
  def convs(self):
    return [getattr(self, f"conv_{i}") for i in range(self.num_convs)]

  def fold(self, audio):
    """`[batch, samples]` -> `[batch, ceil(samples / period), period, 1]`.

    Lengths that are not a multiple of the period are first extended by
    reflecting the end of the signal (reference: F.pad(..., "reflect")), which
    needs samples > the pad width (< period).
    """
    samples = tf.shape(audio)[1]
    pad = tf.math.floormod(-samples, self.period)
    audio = tf.pad(audio, [[0, 0], [0, pad]], mode="REFLECT")
    return tf.reshape(audio, [tf.shape(audio)[0], -1, self.period, 1])

  def call(self, audio, training=None):
    x = self.fold(audio)
    feature_maps = []
    for conv in self.convs:
      x = tf.nn.leaky_relu(conv(x, training=training), LRELU_SLOPE)
      feature_maps.append(x)
    x = self.conv_post(x, training=training)
    feature_maps.append(x)
    return tf.reshape(x, [tf.shape(x)[0], -1]), feature_maps


class ScaleDiscriminator(keras.layers.Layer):
  """One MSD sub-discriminator: strided, grouped Conv1Ds on a waveform.

  `[batch, samples]` -> logits `[batch, frames']`, feature maps `[batch, frames_i, channels_i]`.
  """

  def __init__(self, channels=MSD_CHANNELS, groups=MSD_GROUPS, normalization="weight", **kwargs):
    super().__init__(**kwargs)
    in_channels = 1
    self.num_convs = len(channels)
    for i, (filters, group, kernel, stride) in enumerate(
        zip(channels, groups, MSD_KERNELS, MSD_STRIDES)):
      # Grouped convs: see NormalizedConv1D.convolution_op.
      conv = NormalizedConv1D(filters, kernel, strides=stride, groups=group, padding="valid",
                              time_padding=(kernel - 1) // 2, normalization=normalization,
                              kernel_initializer=_torch_default_init(), name=f"conv_{i}")
      conv.build((None, None, in_channels))
      setattr(self, f"conv_{i}", conv)
      in_channels = filters
    self.conv_post = NormalizedConv1D(1, 3, padding="valid", time_padding=1,
                                      normalization=normalization,
                                      kernel_initializer=_torch_default_init(), name="conv_post")
    self.conv_post.build((None, None, in_channels))
    self.built = True

  @property
  def convs(self):
    return [getattr(self, f"conv_{i}") for i in range(self.num_convs)]

  def call(self, audio, training=None):
    x = audio[..., tf.newaxis]
    feature_maps = []
    for conv in self.convs:
      x = tf.nn.leaky_relu(conv(x, training=training), LRELU_SLOPE)
      feature_maps.append(x)
    x = self.conv_post(x, training=training)
    feature_maps.append(x)
    return x[..., 0], feature_maps


class MultiPeriodDiscriminator(keras.Model):
  """HiFi-GAN MPD: one `PeriodDiscriminator` per period (weight norm everywhere).

  Call: `mpd(audio [batch, samples], training=None)` -> `(logits, feature_maps)`
  (see the module docstring). Reflect padding needs samples > max(periods).
  """

  def __init__(self, periods=MPD_PERIODS, channels=MPD_CHANNELS, **kwargs):
    kwargs.setdefault("name", "multi_period_discriminator")
    super().__init__(**kwargs)
    self.periods = tuple(periods)
    for p in self.periods:
      setattr(self, f"period_{p}", PeriodDiscriminator(p, channels, name=f"period_{p}"))
    self.built = True

  @property
  def discriminators(self):
    return [getattr(self, f"period_{p}") for p in self.periods]

  def call(self, audio, training=None):
    audio = _check_audio(self.name, audio)
    outputs = [d(audio, training=training) for d in self.discriminators]
    return [logits for logits, _ in outputs], [maps for _, maps in outputs]


class MultiScaleDiscriminator(keras.Model):
  """HiFi-GAN MSD: `ScaleDiscriminator`s on the raw, x2 and x4 average-pooled waveform.

  The first scale uses spectral norm, the others weight norm (reference).
  Call: `msd(audio [batch, samples], training=None)` -> `(logits, feature_maps)`.
  """

  def __init__(self, channels=MSD_CHANNELS, groups=MSD_GROUPS, num_scales=MSD_SCALES, **kwargs):
    kwargs.setdefault("name", "multi_scale_discriminator")
    super().__init__(**kwargs)
    self.num_scales = num_scales
    for i in range(num_scales):
      setattr(self, f"scale_{i}", ScaleDiscriminator(
          channels, groups, normalization="spectral" if i == 0 else "weight", name=f"scale_{i}"))
    self.built = True

  @property
  def discriminators(self):
    return [getattr(self, f"scale_{i}") for i in range(self.num_scales)]

  @staticmethod
  def downsample(audio):
    """Reference AvgPool1d(4, 2, padding=2): `[batch, n]` -> `[batch, n // 2 + 1]`."""
    padded = tf.pad(audio, [[0, 0], [MSD_POOL_PADDING, MSD_POOL_PADDING]])[..., tf.newaxis]
    pooled = tf.nn.avg_pool1d(padded, MSD_POOL_SIZE, MSD_POOL_STRIDE, "VALID")
    return pooled[..., 0]

  def call(self, audio, training=None):
    audio = _check_audio(self.name, audio)
    all_logits, all_maps = [], []
    for i, discriminator in enumerate(self.discriminators):
      if i:
        audio = self.downsample(audio)
      logits, maps = discriminator(audio, training=training)
      all_logits.append(logits)
      all_maps.append(maps)
    return all_logits, all_maps


def build_discriminators(config):
  """`(MultiPeriodDiscriminator, MultiScaleDiscriminator)` sized per a `HifiGanConfig`."""
  return (MultiPeriodDiscriminator(config.mpd_periods, config.mpd_channels),
          MultiScaleDiscriminator(config.msd_channels, config.msd_groups))
