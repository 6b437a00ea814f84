"""HiFi-GAN generator: log-mel frames -> waveform (Kong et al. 2020, jik876/hifi-gan).

conv_pre (k=7) -> per stage [leaky ReLU 0.1 -> transposed conv upsampling ->
multi-receptive-field fusion (mean of parallel residual blocks)] -> leaky ReLU
(torch's default slope 0.01, as the reference calls `F.leaky_relu(x)` there)
-> conv_post (k=7) -> tanh. Channels-last throughout.
"""

import keras
import tensorflow as tf

from tfspeech.models.hifigan.hifigan_config import HifiGanConfig
from tfspeech.models.hifigan.weight_norm import NormalizedConv1D, NormalizedConv1DTranspose

LRELU_SLOPE = 0.1
# torch.nn.functional.leaky_relu's default, used before conv_post in the reference.
FINAL_LRELU_SLOPE = 0.01
CONV_PRE_POST_KERNEL = 7


def _reference_normal_init():
  # utils.init_weights: N(0, 0.01) for every generator conv except conv_pre.
  return keras.initializers.RandomNormal(mean=0.0, stddev=0.01)


def _torch_default_init():
  # torch Conv default kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)); Keras's
  # fan_in for conv kernels is the same kernel_size * in_channels / groups.
  return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


def _layer_list(owner, prefix, count):
  return [getattr(owner, f"{prefix}{i}") for i in range(count)]


def _conv(filters, kernel_size, dilation, normalization, name, initializer):
  return NormalizedConv1D(
      filters, kernel_size, dilation_rate=dilation, padding="valid",
      time_padding=dilation * (kernel_size - 1) // 2, normalization=normalization,
      kernel_initializer=initializer, name=name)


# Sub-layers are attributes, not lists: Keras 3 (TF backend) hides layers held in
# lists from tf.train.Checkpoint, which training checkpoints rely on.


class ResBlock1(keras.layers.Layer):
  """Per dilation d: x += conv_k(lrelu(conv_{k,d}(lrelu(x)))). `[b, 1, t, c] -> [b, 1, t, c]`."""

  def __init__(self, channels, kernel_size, dilations, normalization="weight", **kwargs):
    super().__init__(**kwargs)
    self.num_dilations = len(dilations)
    for i, d in enumerate(dilations):
      setattr(self, f"conv1_{i}", _conv(channels, kernel_size, d, normalization, f"conv1_{i}",
                                        _reference_normal_init()))
      setattr(self, f"conv2_{i}", _conv(channels, kernel_size, 1, normalization, f"conv2_{i}",
                                        _reference_normal_init()))
    for conv in self.convs:
      conv.build((None, None, channels))
    self.built = True

  @property
  def dilated_convs(self):
    return _layer_list(self, "conv1_", self.num_dilations)

  @property
  def plain_convs(self):
    return _layer_list(self, "conv2_", self.num_dilations)

  @property
  def convs(self):
    """All convolutions in a fixed order (for weight folding)."""
    return self.dilated_convs + self.plain_convs

  def call(self, x):
    for dilated, plain in zip(self.dilated_convs, self.plain_convs):
      residual = dilated.call_image(tf.nn.leaky_relu(x, LRELU_SLOPE))
      x = x + plain.call_image(tf.nn.leaky_relu(residual, LRELU_SLOPE))
    return x


class ResBlock2(keras.layers.Layer):
  """Per dilation d: x += conv_{k,d}(lrelu(x)). `[b, 1, t, c] -> [b, 1, t, c]`."""

  def __init__(self, channels, kernel_size, dilations, normalization="weight", **kwargs):
    super().__init__(**kwargs)
    self.num_dilations = len(dilations)
    for i, d in enumerate(dilations):
      setattr(self, f"conv_{i}", _conv(channels, kernel_size, d, normalization, f"conv_{i}",
                                       _reference_normal_init()))
    for conv in self.convs:
      conv.build((None, None, channels))
    self.built = True

  @property
  def dilated_convs(self):
    return _layer_list(self, "conv_", self.num_dilations)

  @property
  def convs(self):
    return self.dilated_convs

  def call(self, x):
    for conv in self.dilated_convs:
      x = x + conv.call_image(tf.nn.leaky_relu(x, LRELU_SLOPE))
    return x


class HifiGanGenerator(keras.Model):
  """HiFi-GAN generator.

  Call: `generator(mel)` with `mel` of shape `[batch, frames, num_mels]` (log
  mels, `tfspeech.audio.mel.MelConfig.hifigan()` convention) returns audio
  `[batch, frames * config.hop_length]` in [-1, 1]. Every conv is
  zero-padded ("same" length), so padding frames at the end of a batch item only
  changes its output within the receptive field of the padding.

  Args:
    config: a `HifiGanConfig`.
    weight_norm: True for the training parametrisation (torch `weight_norm`
      on every conv); False for plain kernels (inference / export). Use
      `remove_weight_norm()` to turn a trained model into the latter.
  """

  def __init__(self, config, weight_norm=True, **kwargs):
    kwargs.setdefault("name", "hifigan_generator")
    super().__init__(**kwargs)
    if not isinstance(config, HifiGanConfig):
      raise TypeError(f"HifiGanGenerator: config must be a HifiGanConfig, got {type(config)}")
    self.config = config
    self.weight_norm = bool(weight_norm)
    normalization = "weight" if weight_norm else None
    resblock_type = ResBlock1 if config.resblock == "1" else ResBlock2
    channels = config.upsample_initial_channel

    self.conv_pre = _conv(channels, CONV_PRE_POST_KERNEL, 1, normalization, "conv_pre",
                          _torch_default_init())
    self.conv_pre.build((None, None, config.num_mels))
    for stage, (rate, kernel) in enumerate(zip(config.upsample_rates,
                                               config.upsample_kernel_sizes)):
      upsampler = NormalizedConv1DTranspose(
          channels // 2, kernel, strides=rate, padding="valid", normalization=normalization,
          kernel_initializer=_reference_normal_init(), name=f"upsample_{stage}")
      upsampler.build((None, None, channels))
      channels //= 2
      setattr(self, f"upsample_{stage}", upsampler)
      for j, (k, d) in enumerate(zip(config.resblock_kernel_sizes,
                                     config.resblock_dilation_sizes)):
        setattr(self, f"resblock_{stage}_{j}",
                resblock_type(channels, k, d, normalization=normalization,
                              name=f"resblock_{stage}_{j}"))
    self.conv_post = _conv(1, CONV_PRE_POST_KERNEL, 1, normalization, "conv_post",
                           _reference_normal_init())
    self.conv_post.build((None, None, channels))
    self.built = True

  @property
  def upsamplers(self):
    """The transposed-conv upsampling layers, one per stage."""
    return _layer_list(self, "upsample_", len(self.config.upsample_rates))

  @property
  def resblocks(self):
    """`resblocks[stage][j]`: the MRF residual blocks of each stage."""
    return [_layer_list(self, f"resblock_{stage}_", len(self.config.resblock_kernel_sizes))
            for stage in range(len(self.config.upsample_rates))]

  def conv_layers(self):
    """Every conv layer in a fixed order; identical structure for any `weight_norm`."""
    layers = [self.conv_pre]
    for upsampler, blocks in zip(self.upsamplers, self.resblocks):
      layers.append(upsampler)
      for block in blocks:
        layers.extend(block.convs)
    layers.append(self.conv_post)
    return layers

  def _upsample(self, stage, x):
    # torch ConvTranspose1d(padding=(k-u)//2) drops that many samples at each end
    # of the (frames - 1) * u + k outputs, leaving exactly u * frames.
    crop = (self.config.upsample_kernel_sizes[stage] - self.config.upsample_rates[stage]) // 2
    return self.upsamplers[stage].call_image_cropped(x, crop)

  def call(self, mel):
    """`[batch, frames, num_mels]` log mels -> `[batch, frames * hop_length]` audio."""
    mel = tf.convert_to_tensor(mel)
    if mel.shape.rank != 3 or (mel.shape[-1] is not None and mel.shape[-1] != self.config.num_mels):
      raise ValueError(f"{self.name}: mel must have shape [batch, frames, {self.config.num_mels}], "
                       f"got {mel.shape}")
    # Activations stay a height-1 image [batch, 1, time, channels] from here to the end
    # (see NormalizedConv1D.call_image).
    x = self.conv_pre.call_image(tf.expand_dims(tf.cast(mel, self.compute_dtype), 1))
    for stage, blocks in enumerate(self.resblocks):
      x = self._upsample(stage, tf.nn.leaky_relu(x, LRELU_SLOPE))
      # A chain of adds, not ADD_N, which LiteRT's XNNPACK delegate does not take.
      total = blocks[0](x)
      for block in blocks[1:]:
        total = total + block(x)
      x = total * (1.0 / len(blocks))
    x = tf.tanh(self.conv_post.call_image(tf.nn.leaky_relu(x, FINAL_LRELU_SLOPE)))
    return tf.reshape(x, [tf.shape(x)[0], -1])

  def remove_weight_norm(self):
    """Returns an equivalent generator with plain kernels (weight norm folded in).

    Unlike torch's in-place `remove_weight_norm`, this leaves `self` untouched
    (training can continue) and returns a new `HifiGanGenerator(weight_norm=False)`
    whose outputs equal this one's; that is the model to export.
    """
    plain = HifiGanGenerator(self.config, weight_norm=False, name=self.name + "_inference")
    for source, target in zip(self.conv_layers(), plain.conv_layers()):
      target._kernel.assign(source.folded_kernel())
      target.bias.assign(source.bias)
    return plain
