"""DC-TTS building blocks (Kyubyong/dc_tts modules.py): convolutions and highway convolutions.

Channels last: every tensor is `[batch, time, channels]`. A convolution is "causal" (padded on
the left only: frame t sees frames <= t; the audio encoder and decoder) or centred (the text
encoder and SSRN). Centred layers take a `[batch, time, 1]` mask and zero their input past
each length first, so a padded item computes exactly what it computes alone (zero padding
past the end is what the unpadded item sees too).

Dropout is stateless: a layer draws it from `fold_in(seed, salt)` with a salt fixed at
construction, so training randomness comes from the trainer's checkpointed RNG.
"""

import math

import keras
import tensorflow as tf

from tfspeech.ops import convolution


def fold_seed(seed, salt):
  """A new int32 `[2]` stateless seed derived from `seed` and the int `salt`."""
  return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int32), salt)


def stateless_dropout(x, rate, seed):
  """Inverted dropout drawn from `seed`; the identity when `seed` is None or `rate` is 0."""
  if seed is None or not rate:
    return x
  return tf.nn.experimental.stateless_dropout(x, rate, seed)


class ChannelNorm(keras.layers.Layer):
  """Layer normalisation over the channels of each frame (Kyubyong's `normalize`), with a
  learned scale and offset; plain mean / variance ops (TFLite builtins)."""

  def __init__(self, epsilon=1e-5, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon

  def build(self, input_shape):
    channels = input_shape[-1]
    self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
    self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")
    self.built = True

  def call(self, x):
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + self.epsilon) * self.gamma + self.beta


def _bias_init(fan_in):
  """PyTorch's bias init, uniform(+-1 / sqrt(fan_in)), not zeros.

  Why: an all-zero frame (the audio encoder's first input, silence normalised to 0, padding)
  stays exactly constant through zero-bias layers, and the gradient of a normalisation at a
  constant frame is scaled by rsqrt(epsilon) (316): stacked, the audio encoder's bias
  gradients reached 1e18 and overflowed the trainer's gradient norm. Random biases make the
  first normalised frame non-constant, so only one layer amplifies.
  """
  bound = 1.0 / math.sqrt(max(fan_in, 1))
  return keras.initializers.RandomUniform(-bound, bound)


def _norm_layer(kind, name):
  if kind == "layer":
    return ChannelNorm(name=name)
  if kind == "batch":
    return keras.layers.BatchNormalization(axis=-1, name=name)
  return None


def _apply_norm(norm, x, training):
  if norm is None:
    return x
  if isinstance(norm, keras.layers.BatchNormalization):
    return norm(x, training=training)
  return norm(x)


class Conv(keras.layers.Layer):
  """One convolution as Kyubyong's `conv1d`: conv → norm → activation → dropout.

  `config.conv_type` picks the kernel: "plain" `[k, in, out]`; "separable" a depthwise
  `[k, in]` kernel then a pointwise `[in, out]` one (kernel size 1 stays plain: a depthwise
  1-tap kernel is only a per-channel scale); "grouped" `conv_groups` independent `[k, in/g,
  out/g]` kernels (channel counts that do not divide, such as the mel and magnitude
  projections, stay plain).

  Args:
    in_channels, filters: channels in and out.
    kernel_size, dilation: the taps and their spacing.
    causal: pad on the left only.
    activation: None or "relu".
    normalize: apply `config.norm` after the convolution.
    dropout: apply `config.dropout` (training only).
    config: the `DCTTSConfig`.
    salt: this layer's dropout salt.
  """

  def __init__(self, in_channels, filters, kernel_size=1, dilation=1, causal=False,
               activation=None, normalize=True, dropout=True, config=None, salt=0, **kwargs):
    super().__init__(**kwargs)
    self.in_channels, self.filters = in_channels, filters
    self.kernel_size, self.dilation, self.causal = kernel_size, dilation, causal
    self.activation = activation
    self.rate = config.dropout if dropout else 0.0
    self.salt = salt
    kind = config.conv_type
    if kind == "separable" and kernel_size == 1:
      kind = "plain"
    if kind == "grouped" and (in_channels % config.conv_groups or filters % config.conv_groups):
      kind = "plain"
    self.kind = kind
    self.groups = config.conv_groups if kind == "grouped" else 1
    self.norm = _norm_layer(config.norm, "norm") if normalize else None

  def build(self, input_shape=None):
    del input_shape
    k, cin, cout = self.kernel_size, self.in_channels, self.filters
    init = keras.initializers.GlorotUniform()
    if self.kind == "separable":
      self.depthwise = self.add_weight(shape=(k, cin), initializer=init, name="depthwise")
      self.kernel = self.add_weight(shape=(1, cin, cout), initializer=init, name="kernel")
    else:
      self.kernel = self.add_weight(shape=(k, cin // self.groups, cout), initializer=init,
                                    name="kernel")
    fan_in = cin if self.kind == "separable" else k * cin // self.groups
    self.bias = self.add_weight(shape=(cout,), initializer=_bias_init(fan_in), name="bias")
    if self.norm is not None:
      self.norm.build((None, None, cout))
    self.built = True

  def _convolve(self, x):
    if self.kind == "separable":
      # A depthwise 2-D convolution over a height-1 image (TFLite: DEPTHWISE_CONV_2D).
      depthwise = tf.expand_dims(tf.expand_dims(self.depthwise, 0), -1)
      x = tf.nn.depthwise_conv2d(tf.expand_dims(x, 1), depthwise, [1, 1, 1, 1], "VALID",
                                 dilations=[1, self.dilation])[:, 0]
      return convolution.conv1d(x, self.kernel, self.bias)
    if self.groups == 1:
      return convolution.conv1d(x, self.kernel, self.bias, dilation=self.dilation)
    # Split and concatenate (TF's CPU kernels and TFLite have no grouped convolution).
    inputs = tf.split(x, self.groups, axis=-1)
    kernels = tf.split(self.kernel, self.groups, axis=-1)
    return tf.concat([convolution.conv1d(part, kernel, dilation=self.dilation)
                      for part, kernel in zip(inputs, kernels)], axis=-1) + self.bias

  def call(self, x, frame_mask=None, training=False, seed=None):
    """`[batch, time, in]` → `[batch, time, filters]` (mask: `[batch, time, 1]` or None)."""
    if frame_mask is not None:
      x = x * frame_mask
    width = (self.kernel_size - 1) * self.dilation
    left = width if self.causal else width // 2
    if width:
      x = tf.pad(x, [[0, 0], [left, width - left], [0, 0]])
    y = self._convolve(x)  # bias included
    y = _apply_norm(self.norm, y, training)
    if self.activation == "relu":
      y = tf.nn.relu(y)
    if training and seed is not None:
      y = stateless_dropout(y, self.rate, fold_seed(seed, self.salt))
    return y


class HighwayConv(keras.layers.Layer):
  """Kyubyong's `hc`: H = conv(x) split into H1, H2 (each normalised), gate = sigmoid(H1),
  out = gate * H2 + (1 - gate) * x, then dropout. Keeps the channel count."""

  def __init__(self, channels, kernel_size=3, dilation=1, causal=False, config=None, salt=0,
               **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.rate, self.salt = config.dropout, salt
    self.conv = Conv(channels, 2 * channels, kernel_size, dilation, causal, normalize=False,
                     dropout=False, config=config, name="conv")
    self.norm_gate = _norm_layer(config.norm, "norm_gate")
    self.norm_value = _norm_layer(config.norm, "norm_value")

  def build(self, input_shape=None):
    del input_shape
    self.conv.build()
    for norm in (self.norm_gate, self.norm_value):
      if norm is not None:
        norm.build((None, None, self.channels))
    self.built = True

  def call(self, x, frame_mask=None, training=False, seed=None):
    """`[batch, time, channels]` → the same shape."""
    if frame_mask is not None:
      x = x * frame_mask
    gate, value = tf.split(self.conv(x), 2, axis=-1)
    gate = tf.sigmoid(_apply_norm(self.norm_gate, gate, training))
    value = _apply_norm(self.norm_value, value, training)
    y = gate * value + (1.0 - gate) * x
    if training and seed is not None:
      y = stateless_dropout(y, self.rate, fold_seed(seed, self.salt))
    return y


class Upsample(keras.layers.Layer):
  """A transposed convolution with kernel 2 and stride 2 (the paper's SSRN "D" layer), then
  norm and dropout: `[batch, T, in]` → `[batch, 2T, out]`.

  Kernel 2 = stride 2 means the two output frames of an input frame do not overlap, so the
  layer is one `[in, 2 out]` matrix and a reshape (TFLite: FULLY_CONNECTED + RESHAPE).
  """

  def __init__(self, in_channels, filters, config=None, salt=0, **kwargs):
    super().__init__(**kwargs)
    self.in_channels, self.filters = in_channels, filters
    self.rate, self.salt = config.dropout, salt
    self.norm = _norm_layer(config.norm, "norm")

  def build(self, input_shape=None):
    del input_shape
    self.kernel = self.add_weight(shape=(self.in_channels, 2 * self.filters),
                                  initializer=keras.initializers.GlorotUniform(), name="kernel")
    self.bias = self.add_weight(shape=(self.filters,), initializer=_bias_init(self.in_channels),
                                name="bias")
    if self.norm is not None:
      self.norm.build((None, None, self.filters))
    self.built = True

  def call(self, x, frame_mask=None, training=False, seed=None):
    if frame_mask is not None:
      x = x * frame_mask
    batch, frames = tf.shape(x)[0], tf.shape(x)[1]
    y = tf.reshape(tf.einsum("btc,cd->btd", x, self.kernel),
                   tf.stack([batch, 2 * frames, self.filters])) + self.bias
    y = _apply_norm(self.norm, y, training)
    if training and seed is not None:
      y = stateless_dropout(y, self.rate, fold_seed(seed, self.salt))
    return y


class Stack(keras.layers.Layer):
  """Layers applied in order, each with the mask, training flag and seed (salts differ)."""

  def __init__(self, layers, **kwargs):
    super().__init__(**kwargs)
    self.stack = list(layers)

  def build(self, input_shape=None):
    del input_shape
    for layer in self.stack:
      layer.build()
    self.built = True

  def call(self, x, frame_mask=None, training=False, seed=None):
    for layer in self.stack:
      x = layer(x, frame_mask=frame_mask, training=training, seed=seed)
    return x
