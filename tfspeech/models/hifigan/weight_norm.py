"""Convolutions with torch-style weight normalization or spectral normalization.

Keras 3 has no weight-norm wrapper, and its `SpectralNormalization` wrapper
overwrites the kernel variable with the normalised kernel on every training
call (TF-Addons semantics), which is not what torch does. These layers keep the
torch parametrisation instead:

* weight norm (`torch.nn.utils.weight_norm`, dim=0): trainable direction `v`
  (the layer's `kernel` variable) and gain `g`, kernel = g * v / ||v||, the norm
  taken over every axis but the one torch calls dim 0. In Keras layout that
  axis is the *last* kernel axis for all three layer types: Conv1D
  [k, in, out] and Conv2D [kh, kw, in, out] have `out` last (torch [out, in,
  ...] dim 0 = out), and Conv1DTranspose [k, out, in] has `in` last (torch
  ConvTranspose1d weight [in, out, k] dim 0 = in). `g` starts at ||v|| so the
  initial kernel is `v`, as in torch.
* spectral norm (`torch.nn.utils.spectral_norm`): trainable `W`, kernel =
  W / sigma(W), sigma estimated by one power iteration per training call with
  non-trainable vectors u, v; inference calls reuse the stored u, v.

`folded_kernel()` returns the plain kernel these parametrisations produce, for
copying into an unnormalised layer (inference export).

Every layer also takes `time_padding`, torch's explicit symmetric zero padding
on the time axis (axis 1), because Keras "same" padding places the odd pixel
differently when strides > 1.

Build these layers eagerly (`layer.build(shape)` or a first eager call): the
weight-norm gain is initialised from the value of the freshly drawn kernel.
"""

import keras
import tensorflow as tf

from tfspeech.ops import convolution

NORMALIZATIONS = (None, "weight", "spectral")
# Power iterations at build time so that sigma is sensible even before the
# first training step (torch starts from random u, v and relies on training calls).
_INITIAL_POWER_ITERATIONS = 15
_EPS = 1e-12  # torch.nn.functional.normalize's default eps, used by spectral_norm


def _l2_normalize(x):
  return x / tf.maximum(tf.norm(x), _EPS)


class _NormalizedKernelMixin:
  """Reparametrises `kernel` of a Keras conv layer; see the module docstring."""

  def __init__(self, *args, normalization="weight", time_padding=0, **kwargs):
    if normalization not in NORMALIZATIONS:
      raise ValueError(f"{type(self).__name__}: normalization must be one of {NORMALIZATIONS}, "
                       f"got {normalization!r}")
    if time_padding < 0:
      raise ValueError(f"{type(self).__name__}: time_padding must be >= 0, got {time_padding}")
    super().__init__(*args, **kwargs)
    self.normalization = normalization
    self.time_padding = int(time_padding)

  def build(self, input_shape):
    super().build(input_shape)  # creates self._kernel: v (weight norm) or W (spectral norm)
    if self.normalization == "weight":
      kernel = self._kernel
      self.kernel_g = self.add_weight(
          name="kernel_g",
          shape=(kernel.shape[-1],),
          initializer=lambda shape, dtype=None: self._direction_norm(kernel),
          trainable=True,
      )
    elif self.normalization == "spectral":
      rows, cols = self._matrix_shape()
      self.spectral_u = self.add_weight(
          name="spectral_u", shape=(cols,), trainable=False,
          initializer=lambda shape, dtype=None: _l2_normalize(tf.random.normal(shape)))
      self.spectral_v = self.add_weight(
          name="spectral_v", shape=(rows,), trainable=False,
          initializer=lambda shape, dtype=None: _l2_normalize(tf.random.normal(shape)))
      for _ in range(_INITIAL_POWER_ITERATIONS):
        self._power_iteration()

  def _direction_norm(self, v):
    axes = list(range(len(v.shape) - 1))
    return tf.sqrt(tf.reduce_sum(tf.square(v), axis=axes))

  def _matrix_shape(self):
    # Kernel as a [rows, cols] matrix with the torch dim-0 axis as columns; the
    # transpose of torch's [out, rest] matrix, which has the same singular values.
    shape = self._kernel.shape
    cols = shape[-1]
    rows = 1
    for size in shape[:-1]:
      rows *= size
    return rows, cols

  def _power_iteration(self):
    """One step of torch's power iteration; updates and returns (u, v), gradient-free."""
    w = tf.stop_gradient(tf.reshape(tf.convert_to_tensor(self._kernel), self._matrix_shape()))
    v = _l2_normalize(tf.linalg.matvec(w, self.spectral_u))
    u = _l2_normalize(tf.linalg.matvec(w, v, transpose_a=True))
    self.spectral_u.assign(u)
    self.spectral_v.assign(v)
    return u, v

  def _spectral_kernel(self, u, v):
    w = tf.convert_to_tensor(self._kernel)
    sigma = tf.tensordot(tf.linalg.matvec(tf.reshape(w, self._matrix_shape()), v, transpose_a=True),
                         u, axes=1)
    return w / sigma

  @property
  def kernel(self):
    if not self.built:
      raise AttributeError(f"{self.name}: build the layer before accessing `kernel`")
    if self.normalization == "weight":
      v = tf.convert_to_tensor(self._kernel)
      return v * (self.kernel_g / self._direction_norm(v))
    if self.normalization == "spectral":
      return self._spectral_kernel(tf.convert_to_tensor(self.spectral_u),
                                   tf.convert_to_tensor(self.spectral_v))
    return self._kernel

  @kernel.setter
  def kernel(self, variable):
    # Conv1DTranspose.build assigns `self.kernel`; Conv1D.build assigns `self._kernel`.
    self._kernel = variable

  def folded_kernel(self):
    """The kernel of the equivalent unnormalised layer (inference-mode spectral norm)."""
    return tf.convert_to_tensor(self.kernel)

  def convolution_op(self, inputs, kernel):
    # Keras 3 sends grouped convolutions through a nested XLA-compiled
    # tf.function, because TF's CPU kernels have no grouped-conv gradient
    # without oneDNN. That XLA path made a HiFi-GAN training step ~2x slower to
    # build and ~3x slower to run on CPU. Instead: one native grouped conv on GPU
    # (cuDNN has forward and backward), one conv per group elsewhere.
    groups = getattr(self, "groups", 1)
    if groups == 1:
      return super().convolution_op(inputs, kernel)
    if tf.config.list_logical_devices("GPU"):
      return tf.nn.convolution(inputs, kernel, self.strides, self.padding.upper(),
                               dilations=self.dilation_rate)
    outputs = [super(_NormalizedKernelMixin, self).convolution_op(x, k) for x, k in
               zip(tf.split(inputs, groups, axis=-1), tf.split(kernel, groups, axis=-1))]
    return tf.concat(outputs, axis=-1)

  def call(self, inputs, training=None):
    """Applies the convolution; `training` (a Python bool) updates spectral-norm u, v."""
    if self.time_padding:
      paddings = [[0, 0]] * len(inputs.shape)
      paddings[1] = [self.time_padding, self.time_padding]
      inputs = tf.pad(inputs, paddings)
    if self.normalization == "spectral" and training:
      kernel = self._spectral_kernel(*self._power_iteration())
    else:
      kernel = self.kernel
    return self._convolve(inputs, kernel)

  def _convolve(self, inputs, kernel):
    # Not Conv1D.call, which calls ops.conv directly and would skip convolution_op.
    outputs = self.convolution_op(inputs, kernel)
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    return outputs

  def compute_output_shape(self, input_shape):
    if self.time_padding and input_shape[1] is not None:
      input_shape = list(input_shape)
      input_shape[1] += 2 * self.time_padding
    return super().compute_output_shape(input_shape)

  # BaseConv saves `self.kernel` (here the computed kernel) as its first
  # variable; save and load the actual variables instead.
  def save_own_variables(self, store):
    keras.layers.Layer.save_own_variables(self, store)

  def load_own_variables(self, store):
    keras.layers.Layer.load_own_variables(self, store)

  def get_config(self):
    config = super().get_config()
    config.update(normalization=self.normalization, time_padding=self.time_padding)
    return config


class NormalizedConv1D(_NormalizedKernelMixin, keras.layers.Conv1D):
  """`keras.layers.Conv1D` (valid padding) with weight/spectral norm and torch-style padding.

  Input `[batch, time, in_channels]` -> `[batch, time', filters]`.
  """

  def _convolve(self, inputs, kernel):
    if getattr(self, "groups", 1) != 1:
      return super()._convolve(inputs, kernel)
    # One Conv2D, dilated natively and with the bias fused (see tfspeech.ops.convolution).
    return convolution.conv1d(inputs, kernel, self.bias if self.use_bias else None,
                              stride=self.strides[0], dilation=self.dilation_rate[0],
                              padding=self.padding.upper())


  def call_image(self, inputs):
    """The same convolution on a height-1 image: `[batch, 1, time, in]` -> `[batch, 1, time',
    filters]`, inference-mode kernel.

    A generator that keeps its activations 4-D end to end converts to TFLite as one chain of
    CONV_2D ops (no EXPAND_DIMS / STRIDED_SLICE around each, which split LiteRT's XNNPACK
    delegate into a partition per layer), and TF skips a copy per layer. torch's symmetric
    `time_padding` equals "SAME" padding when it is `dilation * (kernel - 1) / 2` (odd
    kernels, stride 1): then no PAD op either.
    """
    if getattr(self, "groups", 1) != 1:
      raise ValueError(f"{self.name}: call_image takes ungrouped convolutions only")
    width, stride, dilation = self.kernel_size[0], self.strides[0], self.dilation_rate[0]
    padding = self.padding.upper()
    if self.time_padding:
      if stride == 1 and 2 * self.time_padding == dilation * (width - 1):
        padding = "SAME"
      else:
        inputs = tf.pad(inputs, [[0, 0], [0, 0], [self.time_padding] * 2, [0, 0]])
    return convolution.conv1d_image(inputs, self.kernel, self.bias if self.use_bias else None,
                                    stride=stride, dilation=dilation, padding=padding)


class NormalizedConv2D(_NormalizedKernelMixin, keras.layers.Conv2D):
  """`keras.layers.Conv2D` (valid padding) with weight/spectral norm; pads axis 1 only.

  Input `[batch, height, width, in_channels]` -> `[batch, height', width', filters]`.
  """


class NormalizedConv1DTranspose(_NormalizedKernelMixin, keras.layers.Conv1DTranspose):
  """`keras.layers.Conv1DTranspose` (valid padding) with weight/spectral norm.

  Input `[batch, time, in_channels]` -> `[batch, (time - 1) * stride + kernel, filters]`;
  `time_padding` must stay 0 (crop the output instead).
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if self.time_padding or self.normalization == "spectral":
      raise ValueError(f"{self.name}: transposed convolutions support neither time_padding (crop "
                       "the output instead) nor spectral norm")

  def _convolve(self, inputs, kernel):
    del kernel  # Conv1DTranspose.call reads the (weight-normalised) `kernel` property itself.
    return keras.layers.Conv1DTranspose.call(self, inputs)

  def call_image_cropped(self, inputs, crop: int):
    """`[batch, 1, frames, in]` -> `[batch, 1, stride * frames, filters]`: the transposed
    convolution's output without its first `crop` samples (torch's `padding=crop`).

    When `crop` is `(kernel - stride) / 2` this is TF's "SAME" padding, so the output has the
    exact length and no slice follows (the TFLite/TFJS export turns that form into a
    stride-1 convolution and a reshape: `tfspeech.export.frozen_graph`); otherwise a slice
    cuts the "VALID" output.
    """
    width, stride = self.kernel_size[0], self.strides[0]
    batch, frames = tf.shape(inputs)[0], tf.shape(inputs)[2]
    kernel = tf.cast(self.kernel, inputs.dtype)[None]  # [1, k, filters, in]
    if 2 * crop == width - stride:
      outputs = tf.nn.conv2d_transpose(inputs, kernel, [batch, 1, stride * frames, self.filters],
                                       [1, 1, stride, 1], "SAME")
    else:
      full = tf.nn.conv2d_transpose(
          inputs, kernel, [batch, 1, (frames - 1) * stride + width, self.filters],
          [1, 1, stride, 1], "VALID")
      outputs = full[:, :, crop:crop + stride * frames]
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, inputs.dtype))
    return outputs
