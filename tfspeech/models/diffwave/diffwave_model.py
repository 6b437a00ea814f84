"""The DiffWave network (lmnt-com/diffwave model.py), channels-last Keras 3.

  audio `[batch, samples]`, diffusion step `[batch]` or `[]` (float: fractional steps
  interpolate the embedding table), conditioner `[batch, samples, n_mels]` (the upsampled
  mel) -> predicted noise `[batch, samples]`.

Layers as the reference: input 1x1 conv + ReLU; a sinusoidal step table (128 wide) -> Dense
512 -> SiLU -> Dense 512 -> SiLU; a mel upsampler of two transposed 2-D convolutions (kernel
32 x 3 over time x mel, stride 16 x 1, leaky ReLU 0.4, torch's padding (8, 1) cropped
explicitly); residual blocks (dilated conv k=3 over x + step projection, plus a 1x1
conditioner projection, sigmoid(first half) * tanh(second half), 1x1 output conv split into
residual and skip, residual (x + r) / sqrt(2)); skips summed / sqrt(layers) -> 1x1 conv ->
ReLU -> 1x1 conv to one channel, its kernel zero-initialised.

Initialisers follow torch's: Kaiming-normal kernels for the 1-D convs (the reference's
`Conv1d`), and torch's default U(+-1/sqrt(fan_in)) for Dense/transposed-conv kernels and
every bias.

Batches of different lengths (`mask`): the only layers that mix time positions are the
dilated convs and the upsampler, and they see zeros past each item's length (as an item
alone sees the convs' zero padding), so an item's output inside its length does not depend
on the rest of the batch.
"""

import math
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfspeech.models.diffwave.diffwave_config import DiffWaveConfig

EMBEDDING_WIDTH = 128
EMBEDDING_PROJECTION = 512
UPSAMPLER_MEL_KERNEL = 3
LEAKY_SLOPE = 0.4


def _torch_uniform(fan_in):
  limit = 1.0 / math.sqrt(fan_in)
  return keras.initializers.RandomUniform(-limit, limit)


def _conv1d(filters, kernel_size, fan_in, name, dilation=1, kernel_initializer="he_normal"):
  return keras.layers.Conv1D(
      filters, kernel_size, padding="same", dilation_rate=dilation, name=name,
      kernel_initializer=kernel_initializer, bias_initializer=_torch_uniform(fan_in))


def _dense(units, fan_in, name):
  return keras.layers.Dense(units, name=name, kernel_initializer=_torch_uniform(fan_in),
                            bias_initializer=_torch_uniform(fan_in))


def step_table(steps: int) -> np.ndarray:
  """`[steps, 128]`: sin and cos of t * 10 ** (4 d / 63), d < 64 (the reference's table).

  Computed in float64 and rounded once. The reference builds it in torch float32, where
  10 ** x is one ulp off numpy's for some d; at t * 10^4 that moves an angle by up to
  0.06 rad, so its high-frequency columns are library-dependent. The PyTorch transcription
  (benchmarks/torch_reference/diffwave.py) copies this table when it copies the weights.
  """
  t = np.arange(steps, dtype=np.float64)[:, None]
  dims = np.arange(64, dtype=np.float64)[None]
  table = t * 10.0 ** (dims * 4.0 / 63.0)
  return np.concatenate([np.sin(table), np.cos(table)], axis=1).astype(np.float32)


def with_width(x, width: int):
  """`[batch, time, width]` `x` with its width static, by a reshape: exported graphs need
  static channels (else Keras runs a conv as a nested XLA function and TFLite has no
  builtin for it); `set_shape` does not survive freezing, and `tf.ensure_shape` has no TFJS
  kernel (tfjs reads its shape as an input, TF stores an attribute)."""
  shape = tf.shape(x)
  return tf.reshape(x, tf.stack([shape[0], shape[1], width]))


def silu(x):
  """x sigmoid(x), written out: `tf.nn.silu` is a custom gradient capturing its `beta`
  tensor, which a frozen graph cannot be saved with (the TFLite and TFJS exports save one)."""
  return x * tf.sigmoid(x)


class DiffusionEmbedding(keras.layers.Layer):
  """Diffusion step `[batch]` or `[]` (int or float) -> `[batch or 1, 512]`; fractional steps
  lerp between the table's rows (the reference's `_lerp_embedding`)."""

  def __init__(self, steps: int, **kwargs):
    super().__init__(**kwargs)
    self.steps = steps
    self.table = tf.constant(step_table(steps))
    self.projection1 = _dense(EMBEDDING_PROJECTION, EMBEDDING_WIDTH, "projection1")
    self.projection2 = _dense(EMBEDDING_PROJECTION, EMBEDDING_PROJECTION, "projection2")

  def build(self, input_shape=None):
    self.projection1.build((None, EMBEDDING_WIDTH))
    self.projection2.build((None, EMBEDDING_PROJECTION))
    self.built = True

  def call(self, step):
    step = tf.reshape(tf.cast(step, tf.float32), [-1])
    low = tf.floor(step)
    high = tf.math.ceil(step)
    low_rows = tf.gather(self.table, tf.cast(low, tf.int32))
    high_rows = tf.gather(self.table, tf.cast(high, tf.int32))
    x = low_rows + (high_rows - low_rows) * tf.expand_dims(step - low, -1)
    x = silu(self.projection1(x))
    return silu(self.projection2(x))


class SpectrogramUpsampler(keras.layers.Layer):
  """Mel `[batch, frames, n_mels]` -> `[batch, frames * stride**2, n_mels]`."""

  def __init__(self, stride: int, **kwargs):
    super().__init__(**kwargs)
    self.stride = stride
    kernel = (2 * stride, UPSAMPLER_MEL_KERNEL)
    fan_in = kernel[0] * kernel[1]  # torch: out_channels (1) * kernel for a transposed conv
    self.convs = [keras.layers.Conv2DTranspose(
        1, kernel, strides=(stride, 1), padding="valid", name=f"conv{i + 1}",
        kernel_initializer=_torch_uniform(fan_in), bias_initializer=_torch_uniform(fan_in))
                  for i in range(2)]

  def build(self, input_shape=None):
    for conv in self.convs:
      conv.build((None, None, None, 1))
    self.built = True

  def call(self, mel, frame_mask=None):
    """`frame_mask`: `[batch, frames]` float (1 inside lengths) or None."""
    x = mel[..., None]
    mask = frame_mask
    for conv in self.convs:
      if mask is not None:
        x = x * mask[:, :, None, None]
      length = tf.shape(x)[1] * self.stride
      # Output (F - 1) * s + 2 s = F s + s; torch's padding (s/2 in time, 1 in mel) crops to F s.
      x = conv(x)[:, self.stride // 2:self.stride // 2 + length, 1:-1]
      x = tf.nn.leaky_relu(x, LEAKY_SLOPE)
      if mask is not None:
        mask = tf.repeat(mask, self.stride, axis=1)
    return x[..., 0]


def _conv(x, kernel, bias=None, dilation=1):
  """A conv over time on `[batch, 1, time, in]` with a Keras Conv1D `kernel` `[width, in,
  out]` -> `[batch, 1, time, out]` ("same" padding).

  `tf.nn.conv2d` with `dilations` directly: Keras' dilated Conv1D runs SpaceToBatchND + Conv2D
  + BatchToSpaceND (two copies of the activations per layer per step), and a 3-D conv1d
  adds ExpandDims/Squeeze around every conv, which keeps oneDNN from fusing the bias (and
  ReLU) into it. TFLite has a builtin for the dilated conv, TFJS runs it.
  """
  # Casts: under a mixed-precision policy the variables stay float32.
  kernel = tf.expand_dims(tf.cast(kernel, x.dtype), 0)
  y = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=[1, 1, dilation, 1])
  return y if bias is None else tf.nn.bias_add(y, tf.cast(bias, x.dtype))


class ResidualBlock(keras.layers.Layer):
  """One gated residual block: (x `[b, n, C]`, step embedding `[b or 1, 512]`, conditioner)."""

  def __init__(self, channels: int, dilation: int, n_mels: Optional[int], **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.dilation = dilation
    self.n_mels = n_mels
    self.dilated_conv = _conv1d(2 * channels, 3, 3 * channels, "dilated_conv", dilation)
    self.diffusion_projection = _dense(channels, EMBEDDING_PROJECTION, "diffusion_projection")
    self.conditioner_projection = (
        _conv1d(2 * channels, 1, n_mels, "conditioner_projection") if n_mels else None)
    self.output_projection = _conv1d(2 * channels, 1, channels, "output_projection")

  def build(self, input_shape=None):
    self.dilated_conv.build((None, None, self.channels))
    self.diffusion_projection.build((None, EMBEDDING_PROJECTION))
    if self.conditioner_projection is not None:
      self.conditioner_projection.build((None, None, self.n_mels))
    self.output_projection.build((None, None, self.channels))
    self.built = True

  def scaled(self, u, scale, embedding, conditioner=None, mask=None):
    """The block on `u = x * scale` (all `[b, 1, n, ...]`): (`(u + residual * scale) ...`
    as the next block's `u` at scale `scale * sqrt(2)`, skip `[b, 1, n, C]`).

    Why a scale: the reference's `(x + residual) / sqrt(2)` is an add and a multiply over
    the activations per block; carrying `x * sqrt(2) ** i` instead moves the factors onto
    the (small) kernels, the same arithmetic up to float rounding. Gate and filter halves
    (and residual and skip) are separate convs over slices of the kernels: no Split copies
    of the activations. `conditioner`: `[b, 1, n, n_mels]`; `mask`: `[b, 1, n, 1]`.
    """
    c = self.channels
    e = tf.cast(self.diffusion_projection(embedding), u.dtype) * scale  # [b or 1, C]
    y = u + tf.expand_dims(tf.expand_dims(e, 1), 1)
    if mask is not None:
      y = y * mask  # the zeros an item alone is padded with
    kernel = self.dilated_conv.kernel / scale
    halves = []
    for part in (slice(0, c), slice(c, 2 * c)):
      # Sums of conv outputs are AddN: the TFJS converter fuses Conv2D (+ BiasAdd) + Add
      # into one FusedConv2D with a rank-4 addend, which its wasm backend refuses.
      z = _conv(y, kernel[:, :, part], self.dilated_conv.bias[part], self.dilation)
      if self.conditioner_projection is not None:
        projection = self.conditioner_projection
        z = tf.add_n([z, _conv(conditioner, projection.kernel[:, :, part],
                               projection.bias[part])])
      halves.append(z)
    h = tf.sigmoid(halves[0]) * tf.tanh(halves[1])
    kernel, bias = self.output_projection.kernel, self.output_projection.bias
    # (x + r) / sqrt(2) at the next scale (scale * sqrt(2)) is u + r * scale.
    u = tf.add_n([u, _conv(h, kernel[:, :, :c] * scale, bias[:c] * scale)])
    return u, _conv(h, kernel[:, :, c:], bias[c:])

  def call(self, x, embedding, conditioner=None, mask=None):
    """`x` `[b, n, C]`, conditioner `[b, n, n_mels]`, mask `[b, n]` -> (next x, skip), each
    `[b, n, C]` (the reference's block; `DiffWave.denoise` chains `scaled`)."""
    u, skip = self.scaled(
        tf.expand_dims(x, 1), 1.0, embedding,
        None if conditioner is None else tf.expand_dims(conditioner, 1),
        None if mask is None else tf.expand_dims(tf.expand_dims(mask, 1), -1))
    return tf.squeeze(u, 1) / math.sqrt(2.0), tf.squeeze(skip, 1)


class DiffWave(keras.Model):
  """The noise predictor; see the module docstring.

  `upsample(mel, mel_lengths)` once per utterance, then `denoise(audio, step, conditioner,
  mask)` per diffusion step (the reference upsamples inside every call); `call` does both.
  """

  def __init__(self, config: DiffWaveConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    c = config.residual_channels
    n_mels = None if config.unconditional else config.n_mels
    self.input_projection = _conv1d(c, 1, 1, "input_projection")
    self.diffusion_embedding = DiffusionEmbedding(config.diffusion_steps,
                                                  name="diffusion_embedding")
    self.spectrogram_upsampler = (None if config.unconditional else
                                  SpectrogramUpsampler(config.upsample_stride,
                                                       name="spectrogram_upsampler"))
    self.residual_layers = [
        ResidualBlock(c, 2 ** (i % config.dilation_cycle_length), n_mels,
                      name=f"residual_layer{i}") for i in range(config.residual_layers)]
    self.skip_projection = _conv1d(c, 1, c, "skip_projection")
    # The reference zero-initialises this kernel: the untrained model predicts zero noise.
    self.output_projection = _conv1d(1, 1, c, "output_projection", kernel_initializer="zeros")

  def build(self, input_shape=None):
    c = self.config.residual_channels
    self.input_projection.build((None, None, 1))
    self.diffusion_embedding.build()
    if self.spectrogram_upsampler is not None:
      self.spectrogram_upsampler.build()
    for layer in self.residual_layers:
      layer.build()
    self.skip_projection.build((None, None, c))
    self.output_projection.build((None, None, c))
    self.built = True

  def upsample(self, mel, mel_lengths=None):
    """`[batch, frames, n_mels]` -> conditioner `[batch, frames * hop, n_mels]` (None if
    unconditional). With `mel_lengths`, frames past each length are treated as absent."""
    if self.spectrogram_upsampler is None:
      return None
    mel = with_width(tf.cast(mel, tf.float32), self.config.n_mels)
    frame_mask = None
    if mel_lengths is not None:
      frame_mask = tf.sequence_mask(mel_lengths, tf.shape(mel)[1], tf.float32)
    # The transposed convs lose the static mel width (see `with_width`).
    return with_width(self.spectrogram_upsampler(mel, frame_mask), self.config.n_mels)

  def denoise(self, audio, step, conditioner=None, mask=None):
    """Predicted noise `[batch, samples]` of `audio` at diffusion `step` (`[batch]` or `[]`).

    `mask`: `[batch, samples]` float (1 inside each length) for batches of mixed lengths.
    """
    # New axes by expand_dims here and in the blocks: this runs inside the exported While
    # body, where a `[..., None]` slice of a dynamic shape has no TFLite builtin. The stack
    # runs on `[batch, 1, samples, channels]` (see `_conv`).
    audio = tf.expand_dims(tf.expand_dims(audio, 1), -1)
    if conditioner is not None:
      conditioner = tf.expand_dims(tf.cast(conditioner, audio.dtype), 1)
    if mask is not None:
      mask = tf.expand_dims(tf.expand_dims(mask, 1), -1)
    x = tf.nn.relu(_conv(audio, self.input_projection.kernel, self.input_projection.bias))
    embedding = self.diffusion_embedding(step)  # [batch or 1, 512]
    skip = None
    for i, layer in enumerate(self.residual_layers):
      # x is carried as x * sqrt(2) ** i (`ResidualBlock.scaled`).
      x, skip_connection = layer.scaled(x, math.sqrt(2.0) ** i, embedding, conditioner, mask)
      # AddN: see `ResidualBlock.scaled`.
      skip = skip_connection if skip is None else tf.add_n([skip, skip_connection])
    # skip / sqrt(layers) folded into the kernel.
    kernel = self.skip_projection.kernel / math.sqrt(len(self.residual_layers))
    x = tf.nn.relu(_conv(skip, kernel, self.skip_projection.bias))
    x = _conv(x, self.output_projection.kernel, self.output_projection.bias)
    return tf.squeeze(x, [1, 3])

  def call(self, inputs, training=None):
    """(audio `[b, n]`, step `[b]`, mel `[b, n / hop, n_mels]` or None) -> noise `[b, n]`."""
    del training
    audio, step, mel = inputs
    return self.denoise(audio, step, self.upsample(mel) if mel is not None else None)


def build_model(config: DiffWaveConfig, name: str = "diffwave") -> DiffWave:
  """A `DiffWave` with every variable created."""
  model = DiffWave(config, name=name)
  model.build()
  return model
