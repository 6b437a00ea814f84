"""Grad-TTS U-Net score estimator (`GradLogPEstimator2d`), channels-last.

Layout: the reference runs 2-D convolutions on `[batch, channels, n_feats, frames]`; here a
feature map is `[batch, frames, n_feats, channels]` (NHWC with H = frames, W = mel bins), so a
mel spectrogram `[batch, frames, n_feats]` gains a trailing channel axis and needs no
transposition. Masks are `[batch, frames, 1, 1]` (1 = real frame). Each of the
`len(dim_mults) - 1` downsamplings halves frames and mel bins, so both must divide by
`2 ** (len(dim_mults) - 1)` (4 for the reference; see `fix_len_compatibility`).

Porting reference weights: Conv2d `[out, in, kF, kT]` -> Keras `[kT, kF, in, out]`
(`w.permute(3, 2, 1, 0)`), ConvTranspose2d `[in, out, kF, kT]` -> `[kT, kF, out, in]`
(`w.permute(3, 2, 1, 0)`), Linear `[out, in]` -> `[in, out]`.

Padding independence (a deliberate difference from the reference, which normalises and
attends over padded frames too): GroupNorm statistics and the linear attention's key softmax
use real frames only. For an utterance whose frame count is already a multiple of 4 the
result is the reference's; otherwise a text's output no longer depends on its batch.
"""

import math

import keras
import tensorflow as tf


# Added to the keys of padded frames before their softmax. Padded keys are 0 (the attention's
# input is masked), so exp(-1e4 - max) is exactly 0 in float32: they get no weight. Not 1e9:
# float16 exports (TFJS, TFLite) and mixed precision quantize the constant, and beyond
# float16's 65504 it becomes inf, where 0 * inf on real frames made NaN mels.
KEY_MASK_OFFSET = 1e4


def _mish_terms(x):
  """`(mish(x), mish'(x))` from one exp, for XLA loops (whose Softplus is slow: 10.4 ms on a
  `[16, 172, 80, 64]` map against 6.4 for an Exp). With e = exp(x) and w = e (e + 2),
  tanh(softplus(x)) = w / (w + 2) (no cancellation as x -> -inf) and mish'(x) =
  w / (w + 2) + 4 x e (1 + e) / (w + 2)^2; e is capped at exp(20), past which both are 1 in
  float32, so that w stays finite (x is clipped too in the derivative's term, which vanishes
  at both ends, so that it never multiplies 0 by inf)."""
  e = tf.exp(tf.minimum(x, 20.0))
  w = e * (e + 2.0)
  r = 1.0 / (w + 2.0)
  clipped = tf.clip_by_value(x, -60.0, 20.0)
  return x * (w * r), r * (w + 4.0 * clipped * e * (1.0 + e) * r)


@tf.function(jit_compile=True, autograph=False)
def _mish_input_gradient(x, d_y):
  """`d_y * mish'(x)`, float32, one fused XLA loop per shape."""
  return d_y * _mish_terms(x)[1]


@tf.custom_gradient
def _mish_float32(x):
  # Autodiff keeps Softplus's and Tanh's outputs for the gradient, so Grappler cannot fuse the
  # forward into one oneDNN Mish, and TF's Softplus kernel alone is six passes' worth of time
  # (17.5 ms against 2.9 ms for a Mul on a level-0 map at batch 16). Here the forward is the
  # fused Mish and the gradient is recomputed from x in one XLA loop: forward + backward of
  # that map 42-46 -> 19 ms. Used where Mish is not fused with a GroupNorm (the time MLPs;
  # Blocks in inference graphs, which never build the gradient).
  return keras.activations.mish(x), lambda d_y: _mish_input_gradient(x, d_y)


def mish(x):
  """x * tanh(softplus(x)) (Misra, 2019); in float32 for bfloat16/float16 inputs.

  TF's CPU Softplus and Sigmoid kernels run 5x and 3x slower in bfloat16 than in float32
  (`[16, 64, 80, 172]`: 187 against 35 ms), which in a mixed-precision U-Net train step cost
  more than its bfloat16 convolutions saved; float32 inputs are unchanged.
  """
  if x.dtype == tf.float32:
    return _mish_float32(x)
  return tf.cast(_mish_float32(tf.cast(x, tf.float32)), x.dtype)


def sinusoidal_time_embedding(t, dim, scale):
  """Transformer-style embedding of diffusion times.

  Args:
    t: `[batch]` float times in [0, 1].
    dim: even embedding width.
    scale: multiplier of t (the reference's `pe_scale`).

  Returns:
    `[batch, dim]`: `sin(scale * t * f_k)` for k < dim/2, then the cosines, with
    `f_k = 10000 ** (-k / (dim/2 - 1))`.
  """
  half = dim // 2
  frequencies = tf.exp(tf.range(half, dtype=tf.float32) * (-math.log(10000.0) / (half - 1)))
  angles = scale * tf.cast(t, tf.float32)[:, None] * frequencies[None, :]
  return tf.concat([tf.sin(angles), tf.cos(angles)], axis=-1)


class _GroupSums:
  """Per-(item, channel) sums over real frames and all mel bins of `[batch, frames, bins,
  channels]` maps (mask `[batch, frames, 1, 1]`), and their per-group means.

  The sums are a `[batch, 1, frames] x [batch, frames, bins * channels]` matmul with the mask:
  no masked copy of x, and no 5-D reduction over axes (1, 2, 4) of the grouped tensor, Eigen's
  slow strided case, which was 40% of an ljspeech U-Net call (238 of 576 ms at 412 frames on a
  2-core Xeon).
  """

  def __init__(self, x, mask, groups):
    self.channels = x.shape[-1]
    self.groups, self.per_group = groups, self.channels // groups
    self.shape = tf.shape(x)
    self.frame_mask = tf.reshape(mask, [self.shape[0], 1, self.shape[1]])
    count = tf.reduce_sum(self.frame_mask, axis=[1, 2]) * tf.cast(
        self.shape[2] * self.per_group, x.dtype)
    self.count = tf.maximum(count, 1.0)[:, None]  # [batch, 1]

  def channel_sums(self, values):  # [batch, frames, bins, channels] -> [batch, channels]
    shape = self.shape
    rows = tf.reshape(values, [shape[0], shape[1], -1])
    return tf.reduce_sum(tf.reshape(tf.matmul(self.frame_mask, rows),
                                    [shape[0], shape[2], self.channels]), axis=1)

  def group_means(self, sums):  # [batch, channels] sums -> [batch, groups] means
    return tf.reduce_sum(tf.reshape(sums, [-1, self.groups, self.per_group]), axis=-1) / self.count

  def per_channel(self, values):  # [batch, groups] -> [batch, channels]
    # A Tile by constants, not a BroadcastTo to a runtime shape: fewer ops for the exporters.
    return tf.reshape(tf.tile(values[:, :, None], [1, 1, self.per_group]), [-1, self.channels])


def _as_map(values):  # [batch, channels] -> [batch, 1, 1, channels]
  return values[:, None, None, :]


# Training's fused GroupNorm + Mish: three XLA loops (forward, two in the gradient) around the
# statistics' matmuls, each one pass over the map where TF ran five to nine (two for the
# normalisation, Mish's Softplus alone costing six). Float32 inside whatever x's dtype.
def _f32(value):
  return tf.cast(value, tf.float32)


def _normalized(x, mask, mean, scale, beta):
  """`(x - mean, n = ((x - mean) * scale + beta) * mask)` in float32, inside the XLA loops."""
  centred = _f32(x) - _f32(mean)
  return centred, (centred * _f32(scale) + _f32(beta)) * _f32(mask)


@tf.function(jit_compile=True, autograph=False)
def _normalized_mish(x, mask, mean, scale, beta, shift=None, residual=None):
  """`(mish(n) + shift) * mask + residual`, `n = ((x - mean) * scale + beta) * mask`; x
  `[b, t, f, c]`, mean/scale/shift `[b, 1, 1, c]`, residual x's shape (both optional)."""
  y = _mish_terms(_normalized(x, mask, mean, scale, beta)[1])[0]
  if shift is not None:
    y = (y + _f32(shift)) * _f32(mask)
  if residual is not None:
    y += _f32(residual)
  return tf.cast(y, x.dtype)


@tf.function(jit_compile=True, autograph=False)
def _normalized_mish_backward(d_y, x, mask, mean, scale, beta):
  """`(d_n, d_n * (x - mean))`, d_n the gradient at n (zero on padded frames)."""
  centred, n = _normalized(x, mask, mean, scale, beta)
  d_n = _f32(d_y) * _mish_terms(n)[1] * _f32(mask)
  return tf.cast(d_n, x.dtype), tf.cast(d_n * centred, x.dtype)


@tf.function(jit_compile=True, autograph=False)
def _normalized_input_gradient(d_n, x, mask, mean, scale, x_factor, offset):
  """`(d_n * scale + (x - mean) * x_factor - offset) * mask`, per-channel factors `[b, 1, 1, c]`."""
  d_x = (_f32(d_n) * _f32(scale) + (_f32(x) - _f32(mean)) * _f32(x_factor)
         - _f32(offset)) * _f32(mask)
  return tf.cast(d_x, x.dtype)


class MaskedGroupNorm(keras.layers.Layer):
  """GroupNorm over (frames, mel bins, channels in group), counting real frames only.

  Maps `[batch, frames, n_feats, channels]` (with mask `[batch, frames, 1, 1]`) to the same
  shape, zero on padded frames; per-channel scale and offset as `torch.nn.GroupNorm` (eps
  1e-5), and its numerics: two-pass statistics (the mean, then the mean squared deviation),
  applied as `x * a + b` with `a = rstd * gamma`, `b = beta - mean * a` per (item, channel) in
  float32, as `(x - mean) * a + beta` in bfloat16 or float16. `normalized_mish` is the same
  followed by Mish, fused for training.
  """

  def __init__(self, groups, epsilon=1e-5, **kwargs):
    super().__init__(**kwargs)
    self.groups = groups
    self.epsilon = epsilon

  def build(self, input_shape):
    channels = input_shape[-1]
    self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
    self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

  def _statistics(self, sums, x):
    """-> (mean `[batch, groups]`, per channel, rstd `[batch, groups]`, per channel)."""
    mean = sums.group_means(sums.channel_sums(x))
    mean_c = sums.per_channel(mean)
    deviation = tf.math.squared_difference(x, _as_map(mean_c))
    rstd = tf.math.rsqrt(sums.group_means(sums.channel_sums(deviation)) + self.epsilon)
    return mean, mean_c, rstd, sums.per_channel(rstd)

  def _input_factors(self, sums, gamma, rstd, rstd_c, d_sum, d_centred_sum):
    """The GroupNorm gradient's per-channel terms from per-channel sums of d_out and of
    d_out * (x - mean) over real positions. With x^ = (x - mean) * rstd and N real positions
    per group: dx = mask * (scale * d_out - rstd * mean_N(gamma d_out)
    - rstd * x^ * mean_N(gamma d_out x^)) = mask * (scale * d_out + (x - mean) * x_factor
    - offset). Returns (x_factor, offset `[batch, channels]`, d_gamma, d_beta)."""
    d_xhat_sum = rstd_c * d_centred_sum
    mean_d = sums.group_means(gamma * d_sum)  # mean_N(gamma d_out), [batch, groups]
    mean_d_xhat = sums.group_means(gamma * d_xhat_sum)  # mean_N(gamma d_out x^)
    x_factor = sums.per_channel(-rstd * rstd * mean_d_xhat)
    offset = sums.per_channel(rstd * mean_d)
    return x_factor, offset, tf.reduce_sum(d_xhat_sum, axis=0), tf.reduce_sum(d_sum, axis=0)

  def call(self, x, mask):
    # The mask goes into the per-(item, frame, channel) factors of `x * a + b`, so normalising
    # and masking are two passes over x; the gradient is written out (`grad`) in as few
    # passes. A level-0 Block (GroupNorm + Mish), forward and backward at batch 16: 77-86 ms
    # before, 67 ms by autodiff of a forward like this one, 63 ms with `grad`.
    mask = tf.cast(mask, x.dtype)
    sums = _GroupSums(x, mask, self.groups)

    def masked(values):  # [batch, channels] -> [batch, frames, 1, channels], 0 on padded frames
      return _as_map(values) * mask

    # In bfloat16 (mixed precision), x * a and mean * a round apart by 2^-8 of their size and
    # cancel: the ljspeech U-Net's bfloat16 mels were 5 dB further from float32's (22 against
    # 27 dB SNR). There x is centred first, (x - mean) * a + beta, one pass more.
    centre = x.dtype != tf.float32

    @tf.custom_gradient
    def normalize(x, gamma, beta):
      mean, mean_c, rstd, rstd_c = self._statistics(sums, x)
      mean_x = _as_map(mean_c)
      scale = rstd_c * gamma  # [batch, channels]
      if centre:
        out = (x - mean_x) * masked(scale) + beta * mask
      else:
        out = x * masked(scale) + masked(beta - mean_c * scale)

      def grad(d_out):
        # d_out is zero-weighted on padded frames by channel_sums.
        d_sum = sums.channel_sums(d_out)
        if centre:
          d_centred_sum = sums.channel_sums(d_out * (x - mean_x))
        else:
          d_centred_sum = sums.channel_sums(d_out * x) - mean_c * d_sum
        x_factor, offset, d_gamma, d_beta = self._input_factors(
            sums, gamma, rstd, rstd_c, d_sum, d_centred_sum)
        if centre:
          d_x = (d_out * masked(scale) + (x - mean_x) * masked(x_factor) - masked(offset))
        else:
          d_x = (d_out * masked(scale) + x * masked(x_factor)
                 + masked(-offset - mean_c * x_factor))
        return d_x, d_gamma, d_beta

      return out, grad

    return normalize(x, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta))

  def normalized_mish(self, x, mask, shift=None, residual=None):
    """`mish(self(x, mask))` for training: three XLA loops and the statistics' matmuls.

    The same values as `mish(self(x, mask))` to float32 rounding (XLA's own exp), in fewer
    passes over x: ljspeech level-0 map at batch 16 (`[16, 172, 80, 64]`), GroupNorm + Mish
    forward 17.8 -> 12 ms, forward and backward 39-40 -> 29-30 ms (45 with autodiff's Mish);
    the ljspeech train step at batch 16 3.73-3.75 -> 3.34-3.35 s. XLA compiles once per
    input shape, which in training is fixed (`out_size` segments); inference keeps `call`,
    whose shapes vary.

    Args:
      x: `[batch, frames, n_feats, channels]`.
      mask: `[batch, frames, 1, 1]`.
      shift: optional `[batch, channels]`, added after Mish, then masked (ResnetBlock's time
        embedding, in the same loop).
      residual: optional map like x, added last (ResnetBlock's shortcut).
    """
    mask = tf.cast(mask, x.dtype)
    sums = _GroupSums(x, mask, self.groups)
    has_shift, has_residual = shift is not None, residual is not None

    @tf.custom_gradient
    def normalize_mish(x, gamma, beta, *extras):
      mean, mean_c, rstd, rstd_c = self._statistics(sums, x)
      scale = _as_map(rstd_c * gamma)
      mean_x = _as_map(mean_c)
      out = _normalized_mish(x, mask, mean_x, scale, beta,
                             _as_map(extras[0]) if has_shift else None,
                             extras[-1] if has_residual else None)

      def grad(d_out):
        d_n, d_centred = _normalized_mish_backward(d_out, x, mask, mean_x, scale, beta)
        x_factor, offset, d_gamma, d_beta = self._input_factors(
            sums, gamma, rstd, rstd_c, sums.channel_sums(d_n), sums.channel_sums(d_centred))
        d_x = _normalized_input_gradient(d_n, x, mask, mean_x, scale, _as_map(x_factor),
                                         _as_map(offset))
        return ([d_x, d_gamma, d_beta] + ([sums.channel_sums(d_out)] if has_shift else [])
                + ([d_out] if has_residual else []))

      return out, grad

    extras = [tf.cast(v, x.dtype) for v in (shift, residual) if v is not None]
    # Cast, not autocast: a method, so called outside the layer's autocast scope.
    return normalize_mish(x, tf.cast(self.gamma, x.dtype), tf.cast(self.beta, x.dtype), *extras)


# Inference runs a Block's float32 3x3 convolution as this many convolutions, each making a
# slice of the output channels, where dim_in * dim_out >= CONV_SPLIT_MIN_CHANNEL_PRODUCT (the
# ljspeech U-Net's lowest level: 256 -> 256 and, after the skip concatenation, 512 -> 128).
# On a 2-core Intel Xeon (AVX512, AMX) oneDNN ran those on a batch-1 map [1, 103, 20, c] at
# 230-330 GFLOP/s (its 383-433 GFLOP/s peak), and 512 -> 128 at 170: 2.43 GFLOP in 14.2 ms,
# 5.8 ms as four 512 -> 32 convolutions; 256 -> 256 8.2 -> 5.9 ms. Neutral at batch 16
# ([16, 28, 20, c]: 24.0 vs 24.2 ms); slower at the level above (256 -> 64 on [1, 206, 40]:
# 5.5 vs 6.2 ms), hence the threshold. The values are the single convolution's exactly.
# Training keeps one convolution (split, its batch-16 step was 1-6% slower). Measured on that
# host only: on a 2-core AMD EPYC the same convolutions ran at 85-97% of its peak as one.
CONV_SPLIT_GROUPS = 4
CONV_SPLIT_MIN_CHANNEL_PRODUCT = 256 * 256


class Block(keras.layers.Layer):
  """3x3 Conv2D -> masked GroupNorm -> Mish, input and output masked (mish(0) = 0)."""

  def __init__(self, dim_in, dim_out, groups, **kwargs):
    super().__init__(**kwargs)
    self.dim_in = dim_in
    self.conv = keras.layers.Conv2D(dim_out, 3, padding="same", name="conv")
    self.norm = MaskedGroupNorm(groups, name="norm")
    self.dim_out = dim_out

  def build(self, input_shape):
    self.conv.build((None, None, None, self.dim_in))
    self.norm.build((None, None, None, self.dim_out))

  def call(self, x, mask, training=False, shift=None, residual=None, input_masked=False):
    """`[batch, frames, n_feats, dim_in]` -> dim_out, zero on padded frames.

    training: XLA loops (`MaskedGroupNorm.normalized_mish`), which also give
      `(out + shift) * mask + residual` for an optional shift `[batch, dim_out]` and residual.
    input_masked: x is zero on padded frames already (no mask pass).
    """
    x = x if input_masked else x * mask
    if training:
      return self.norm.normalized_mish(self.conv(x), mask, shift, residual)
    h = self._inference_conv(x)
    if shift is not None or residual is not None:
      raise ValueError(f"{self.name}: shift and residual are for the training path only.")
    # Masked before Mish (by the norm), not after (the same values: mish(0) = 0): with the
    # mask's Mul after it, Grappler's arithmetic optimizer reorders the Mul chain and the
    # remapper no longer fuses Softplus, Tanh and Mul into one oneDNN Mish (ljspeech level-0
    # map: 4.6 -> 1.3 ms).
    return mish(self.norm(h, mask))

  def split_output_groups(self, dtype=tf.float32):
    """How many output-channel slices inference computes the convolution in (see
    `CONV_SPLIT_GROUPS`): 1 = one convolution."""
    wide = self.dim_in * self.dim_out >= CONV_SPLIT_MIN_CHANNEL_PRODUCT
    if dtype != tf.float32 or not wide or self.dim_out % CONV_SPLIT_GROUPS:
      return 1
    return CONV_SPLIT_GROUPS

  def _inference_conv(self, x):
    groups = self.split_output_groups(x.dtype)
    if groups == 1:
      return self.conv(x)
    kernels = tf.split(self.conv.kernel, groups, axis=3)  # float32, as x (split_output_groups)
    biases = tf.split(self.conv.bias, groups)
    return tf.concat([tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias)
                      for kernel, bias in zip(kernels, biases)], axis=-1)


class ResnetBlock(keras.layers.Layer):
  """Two Blocks with the time embedding added in between, plus a (1x1 conv) shortcut."""

  def __init__(self, dim_in, dim_out, time_dim, groups, **kwargs):
    super().__init__(**kwargs)
    self.dim_in, self.dim_out, self.time_dim = dim_in, dim_out, time_dim
    self.time_proj = keras.layers.Dense(dim_out, name="time_proj")
    self.block_1 = Block(dim_in, dim_out, groups, name="block_1")
    self.block_2 = Block(dim_out, dim_out, groups, name="block_2")
    self.shortcut = (keras.layers.Conv2D(dim_out, 1, name="shortcut")
                     if dim_in != dim_out else None)

  def build(self, input_shape):
    self.time_proj.build((None, self.time_dim))
    self.block_1.build(None)
    self.block_2.build(None)
    if self.shortcut is not None:
      self.shortcut.build((None, None, None, self.dim_in))

  def call(self, x, mask, time_embedding, training=False, input_masked=False):
    """x `[batch, frames, n_feats, dim_in]`, time_embedding `[batch, time_dim]` -> dim_out.

    input_masked: x is zero on padded frames already (no mask pass). The output is zero on
    padded frames when the shortcut is the identity (`output_masked`).
    """
    shift = self.time_proj(mish(time_embedding))  # [batch, dim_out]
    x = x if input_masked else x * mask
    shortcut = x if self.shortcut is None else self.shortcut(x)
    if training:
      # The time embedding, block_2's input mask and the shortcut go into the Blocks' XLA
      # loops: three passes fewer forward, and their gradients with them.
      h = self.block_1(x, mask, training=True, shift=shift, input_masked=True)
      return self.block_2(h, mask, training=True, residual=shortcut, input_masked=True)
    # block_1's output is zero on padded frames, so (h + shift) * mask, block_2's input, is
    # h + shift * mask: one pass over the map, not two.
    h = self.block_1(x, mask, input_masked=True)
    h = self.block_2(h + shift[:, None, None, :] * mask, mask, input_masked=True)
    return h + shortcut

  @property
  def output_masked(self):
    return self.shortcut is None


class ResidualLinearAttention(keras.layers.Layer):
  """x + g * LinearAttention(x), g a scalar starting at 0 (the reference's Residual(Rezero(.))).

  Linear attention (Shen et al.): keys are softmax-normalised over all real (frame, mel bin)
  positions, `context = k^T v` per head, output `q context`; queries are not normalised.
  """

  def __init__(self, dim, heads, dim_head, **kwargs):
    super().__init__(**kwargs)
    self.dim, self.heads, self.dim_head = dim, heads, dim_head
    self.to_qkv = keras.layers.Dense(3 * heads * dim_head, use_bias=False, name="to_qkv")
    self.to_out = keras.layers.Dense(dim, name="to_out")

  def build(self, input_shape):
    self.to_qkv.build((None, None, None, self.dim))
    self.to_out.build((None, None, None, self.heads * self.dim_head))
    self.gate = self.add_weight(shape=(1,), initializer="zeros", name="gate")

  def call(self, x, mask, input_masked=False):
    """x `[batch, frames, n_feats, dim]`, mask `[batch, frames, 1, 1]` -> x's shape.

    input_masked: x is zero on padded frames (then so is the output); otherwise padded frames
      pass x through.
    """
    shape = tf.shape(x)
    batch, frames, bins = shape[0], shape[1], shape[2]
    heads, dim_head, inner = self.heads, self.dim_head, self.heads * self.dim_head
    positions = frames * bins
    rows = tf.reshape(x, [batch, positions, self.dim])
    kernel = self.to_qkv.kernel

    # k comes out transposed, `[batch, heads * c, positions]` (the reference's own layout),
    # from one matmul on a column block of to_qkv's kernel (channel order (qkv, head, c), as
    # its rearrange 'b (qkv heads c) h w'), the transpose done inside the matmul: no
    # transposed copy of any activation. Column blocks of the kernel, not a slice of one
    # product: the TFJS wasm backend's StridedSlice took 80% of a Grad-TTS call on that slice.
    # No einsum: TFJS has none.
    key = tf.linalg.matmul(kernel[:, inner:2 * inner], rows, transpose_a=True, transpose_b=True)

    # Padded frames get -KEY_MASK_OFFSET added (not tf.where on a broadcast mask: broadcasting
    # the mask over mel bins costs a Tile in TFJS); softmax over all (frame, bin) positions.
    key = tf.reshape(key, [batch, inner, frames, bins])
    key += (tf.reshape(mask, [batch, 1, frames, 1]) - 1.0) * KEY_MASK_OFFSET
    key = tf.nn.softmax(tf.reshape(key, [batch, inner, positions]))

    # The values are linear in x too: context_h = k_h v_h^T = (k_h @ rows) @ W_v,h, so the keys
    # pool the rows once (`[batch, heads * d, dim]`) and no value map is ever made (ljspeech
    # level-0 attention at 412 frames 8.1-8.4 -> 6.7-7.3 ms; forward + backward at batch 16
    # 158-163 -> 140-145 ms).
    pooled = tf.reshape(tf.linalg.matmul(key, rows), [batch, heads, dim_head, self.dim])
    value_kernel = tf.transpose(tf.reshape(kernel[:, 2 * inner:], [self.dim, heads, dim_head]),
                                [1, 0, 2])  # [heads, dim, e]
    context = tf.linalg.matmul(pooled, value_kernel)  # [batch, heads, d, e]

    # The queries are not normalised, so to_out(context^T q) is linear in x: per item it is
    # rows @ M with M = sum over heads of W_q,h context_h W_out,h, a [dim, dim] matrix. One
    # matmul of the rows replaces the query projection, the per-head products with the
    # queries and to_out (ljspeech level-0 attention at 412 frames 12.7 -> 8.0 ms; its forward
    # + backward at batch 16 240 -> 159 ms).
    query_kernel = tf.reshape(tf.transpose(kernel[:, :inner]), [heads, dim_head, self.dim])
    folded = tf.reshape(tf.linalg.matmul(context, query_kernel, transpose_a=True),
                        [batch, inner, self.dim])  # rows (head, e), as to_out's kernel
    mixing = tf.linalg.matmul(folded, self.to_out.kernel, transpose_a=True)  # [batch, dim, dim]
    if input_masked:
      # rows is x, zero on padded frames, so x + g (rows @ M + b) mask = rows @ (I + g M) +
      # g b mask: the residual, the gate and the mask go into the matmul and one broadcast add,
      # where the map took four passes after it (ljspeech level-0 attention at 412 frames: that
      # tail 0.47 -> 0.22 ms of op time). The output is zero on padded frames.
      # The identity as a constant, not tf.eye (a MatrixDiagV3 op, which TFJS lacks).
      identity = tf.constant([[float(i == j) for j in range(self.dim)] for i in range(self.dim)],
                             mixing.dtype)
      residual_mixing = identity + self.gate * mixing
      out = tf.reshape(tf.linalg.matmul(rows, residual_mixing), [batch, frames, bins, self.dim])
      return out + self.gate * self.to_out.bias * mask
    out = tf.reshape(tf.linalg.matmul(rows, mixing) + self.to_out.bias,
                     [batch, frames, bins, self.dim])
    return x + self.gate * out * mask


class Downsample(keras.layers.Layer):
  """3x3 stride-2 conv padded by 1 on each side, as torch `Conv2d(dim, dim, 3, 2, 1)`.

  Keras' "same" would pad only after the last position; explicit symmetric padding keeps the
  reference's sampling grid (output i sees inputs 2i-1 .. 2i+1).
  """

  def __init__(self, dim, **kwargs):
    super().__init__(**kwargs)
    self.dim = dim
    self.conv = keras.layers.Conv2D(dim, 3, strides=2, padding="valid", name="conv")

  def build(self, input_shape):
    self.conv.build((None, None, None, self.dim))

  def call(self, x):
    return self.conv(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]))


class Upsample(keras.layers.Layer):
  """4x4 stride-2 transposed conv, as torch `ConvTranspose2d(dim, dim, 4, 2, 1)`.

  TF's "same" transposed conv crops one position on each side, which is the reference's
  padding of 1, so frames and mel bins exactly double.
  """

  def __init__(self, dim, **kwargs):
    super().__init__(**kwargs)
    self.dim = dim
    self.conv = keras.layers.Conv2DTranspose(dim, 4, strides=2, padding="same", name="conv")

  def build(self, input_shape):
    self.conv.build((None, None, None, self.dim))

  def call(self, x):
    return self.conv(x)


class GradLogPEstimator2d(keras.layers.Layer):
  """U-Net predicting the score of x_t given the aligned encoder output mu and time t.

  Down path per resolution: ResnetBlock, ResnetBlock, linear attention, Downsample (not on the
  last). Middle: ResnetBlock, attention, ResnetBlock. Up path (one fewer resolution): concat
  skip, ResnetBlock, ResnetBlock, attention, Upsample. Then a Block and a 1x1 conv to 1 channel.
  """

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    c = self.config = config
    dim = c.dec_dim
    self.time_mlp_1 = keras.layers.Dense(dim * 4, name="time_mlp_1")
    self.time_mlp_2 = keras.layers.Dense(dim, name="time_mlp_2")
    if c.n_spks > 1:
      self.speaker_mlp_1 = keras.layers.Dense(c.spk_emb_dim * 4, name="speaker_mlp_1")
      self.speaker_mlp_2 = keras.layers.Dense(c.n_feats, name="speaker_mlp_2")
    dims = [3 if c.n_spks > 1 else 2] + [dim * m for m in c.dim_mults]
    in_out = list(zip(dims[:-1], dims[1:]))
    resnet = lambda d_in, d_out, name: ResnetBlock(d_in, d_out, dim, c.groups, name=name)
    attention = lambda d, name: ResidualLinearAttention(d, c.attn_heads, c.attn_dim_head,
                                                        name=name)
    self.downs = []
    for i, (d_in, d_out) in enumerate(in_out):
      last = i == len(in_out) - 1
      self.downs.append([resnet(d_in, d_out, f"down_{i}_resnet_1"),
                         resnet(d_out, d_out, f"down_{i}_resnet_2"),
                         attention(d_out, f"down_{i}_attention"),
                         None if last else Downsample(d_out, name=f"down_{i}_downsample")])
    mid = dims[-1]
    self.mid_resnet_1 = resnet(mid, mid, "mid_resnet_1")
    self.mid_attention = attention(mid, "mid_attention")
    self.mid_resnet_2 = resnet(mid, mid, "mid_resnet_2")
    self.ups = []
    for i, (d_in, d_out) in enumerate(reversed(in_out[1:])):
      self.ups.append([resnet(d_out * 2, d_in, f"up_{i}_resnet_1"),
                       resnet(d_in, d_in, f"up_{i}_resnet_2"),
                       attention(d_in, f"up_{i}_attention"),
                       Upsample(d_in, name=f"up_{i}_upsample")])
    self.final_block = Block(dim, dim, c.groups, name="final_block")
    self.final_conv = keras.layers.Conv2D(1, 1, name="final_conv")

  def build(self, input_shape=None):
    c = self.config
    self.time_mlp_1.build((None, c.dec_dim))
    self.time_mlp_2.build((None, c.dec_dim * 4))
    if c.n_spks > 1:
      self.speaker_mlp_1.build((None, c.spk_emb_dim))
      self.speaker_mlp_2.build((None, c.spk_emb_dim * 4))
    for stage in self.downs + self.ups + [[self.mid_resnet_1, self.mid_attention,
                                           self.mid_resnet_2, self.final_block]]:
      for layer in stage:
        if layer is not None:
          layer.build(None)
    self.final_conv.build((None, None, None, c.dec_dim))

  def call(self, x, mask, mu, t, speaker_embedding=None, training=False):
    """Estimates the score (scaled as in the reference) of noisy mels.

    Args:
      x: `[batch, frames, n_feats]` noisy mel x_t; frames a multiple of `frames_multiple`.
      mask: `[batch, frames]` float, 1 on real frames.
      mu: `[batch, frames, n_feats]` aligned encoder output.
      t: `[batch]` diffusion times in (0, 1).
      speaker_embedding: `[batch, spk_emb_dim]` when `n_spks > 1`.
      training: the training graph's fused GroupNorm + Mish (the same values; XLA compiles
        it per shape, so not for inference's varying lengths).

    Returns:
      `[batch, frames, n_feats]`, zero on padded frames.
    """
    c = self.config
    time = sinusoidal_time_embedding(t, c.dec_dim, c.pe_scale)
    time = self.time_mlp_2(mish(self.time_mlp_1(time)))
    channels = [mu, x]
    if c.n_spks > 1:
      speaker = self.speaker_mlp_2(mish(self.speaker_mlp_1(speaker_embedding)))
      channels.append(tf.broadcast_to(speaker[:, None, :], tf.shape(x)))
    h = tf.stack(channels, axis=-1)  # [batch, frames, n_feats, 2 or 3]
    mask = mask[:, :, None, None]

    # `masked`: h is known to be zero on padded frames, so the next layer skips its mask pass
    # (ResnetBlocks with an identity shortcut and the attention keep it; convolutions don't).
    skips, masks, masked = [], [mask], False

    def resnet(block, h, level_mask, masked):
      h = block(h, level_mask, time, training=training, input_masked=masked)
      return h, block.output_masked

    for resnet_1, resnet_2, attention, downsample in self.downs:
      level_mask = masks[-1]
      h, masked = resnet(resnet_1, h, level_mask, masked)
      h, masked = resnet(resnet_2, h, level_mask, masked)
      h = attention(h, level_mask, input_masked=masked)
      skips.append((h, masked))
      if downsample is not None:
        h = downsample(h if masked else h * level_mask)
        masks.append(level_mask[:, ::2])
        masked = False

    h, masked = resnet(self.mid_resnet_1, h, masks[-1], masked)
    h = self.mid_attention(h, masks[-1], input_masked=masked)
    h, masked = resnet(self.mid_resnet_2, h, masks[-1], masked)

    for resnet_1, resnet_2, attention, upsample in self.ups:
      level_mask = masks.pop()
      skip, skip_masked = skips.pop()
      h, masked = tf.concat([h, skip], axis=-1), masked and skip_masked
      h, masked = resnet(resnet_1, h, level_mask, masked)
      h, masked = resnet(resnet_2, h, level_mask, masked)
      h = attention(h, level_mask, input_masked=masked)
      h = upsample(h if masked else h * level_mask)
      masked = False

    h = self.final_block(h, mask, training=training)  # zero on padded frames (Block's output)
    return (self.final_conv(h) * mask)[..., 0]
