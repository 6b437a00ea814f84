"""Grad-TTS model tests: sizes, layouts and layer maths against the reference
(huawei-noah/Speech-Backbones Grad-TTS), padding independence, gradients, graph mode."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.models import grad_tts
from tfspeech.models.grad_tts import score_estimator, text_encoder
from tfspeech.testing import assert_no_python_ops, op_dtypes

N_FEATS = 80


# --- Parameter counts, transcribed from the reference modules' constructors. ---------------

def _conv(c_in, c_out, kernel_elems, bias=True):
  """Parameters of torch Conv1d/Conv2d/Linear with `kernel_elems` taps."""
  return c_in * c_out * kernel_elems + (c_out if bias else 0)


def reference_encoder_params(c):
  """model/text_encoder.py TextEncoder (+ the speaker table of model/tts.py)."""
  width = c.n_enc_channels
  hidden = width + (c.spk_emb_dim if c.n_spks > 1 else 0)
  layer_norm = lambda ch: 2 * ch
  emb = c.n_vocab * width
  prenet = (3 * (_conv(width, width, 5) + layer_norm(width)) + _conv(width, width, 1))
  attention = 4 * _conv(hidden, hidden, 1) + 2 * (2 * c.window_size + 1) * (hidden // c.n_heads)
  ffn = _conv(hidden, c.filter_channels, c.enc_kernel) + _conv(c.filter_channels, hidden,
                                                               c.enc_kernel)
  layers = c.n_enc_layers * (attention + ffn + 2 * layer_norm(hidden))
  proj_m = _conv(hidden, c.n_feats, 1)
  dp = (_conv(hidden, c.filter_channels_dp, c.enc_kernel) + layer_norm(c.filter_channels_dp)
        + _conv(c.filter_channels_dp, c.filter_channels_dp, c.enc_kernel)
        + layer_norm(c.filter_channels_dp) + _conv(c.filter_channels_dp, 1, 1))
  return emb + prenet + layers + proj_m + dp


def reference_decoder_params(c):
  """model/diffusion.py Diffusion -> GradLogPEstimator2d (groups=8, heads=4, dim_head=32)."""
  dim = c.dec_dim
  block = lambda d_in, d_out: _conv(d_in, d_out, 9) + 2 * d_out  # Conv2d 3x3 + GroupNorm
  resnet = lambda d_in, d_out: (_conv(dim, d_out, 1) + block(d_in, d_out) + block(d_out, d_out)
                                + (_conv(d_in, d_out, 1) if d_in != d_out else 0))
  hidden = c.attn_heads * c.attn_dim_head
  attention = lambda d: _conv(d, 3 * hidden, 1, bias=False) + _conv(hidden, d, 1) + 1  # + Rezero g
  total = _conv(dim, dim * 4, 1) + _conv(dim * 4, dim, 1)
  if c.n_spks > 1:
    total += _conv(c.spk_emb_dim, c.spk_emb_dim * 4, 1) + _conv(c.spk_emb_dim * 4, c.n_feats, 1)
  dims = [2 + (1 if c.n_spks > 1 else 0)] + [dim * m for m in c.dim_mults]
  in_out = list(zip(dims[:-1], dims[1:]))
  for i, (d_in, d_out) in enumerate(in_out):
    total += resnet(d_in, d_out) + resnet(d_out, d_out) + attention(d_out)
    if i < len(in_out) - 1:
      total += _conv(d_out, d_out, 9)  # Downsample
  total += 2 * resnet(dims[-1], dims[-1]) + attention(dims[-1])
  for d_in, d_out in reversed(in_out[1:]):
    total += resnet(d_out * 2, d_in) + resnet(d_in, d_in) + attention(d_in) + _conv(d_in, d_in, 16)
  return total + block(dim, dim) + _conv(dim, 1, 1)


def reference_params(c):
  speakers = c.n_spks * c.spk_emb_dim if c.n_spks > 1 else 0
  return speakers + reference_encoder_params(c) + reference_decoder_params(c)


def test_reference_vocab_includes_blank():
  # text/symbols.py: "_", "-", "!'(),.:;? ", 52 letters, 84 ARPAbet; train.py adds a blank.
  symbols = 1 + 1 + len("!'(),.:;? ") + 52 + 84
  assert grad_tts.ljspeech().n_vocab == symbols + 1 == 149
  assert grad_tts.ljspeech().out_size == 172  # fix_len_compatibility(2 * 22050 // 256)


def test_ljspeech_parameter_count_matches_reference():
  config = grad_tts.ljspeech()
  model = grad_tts.GradTTS(config)
  assert model.encoder.count_params() == reference_encoder_params(config) == 7_200_145
  assert model.decoder.count_params() == reference_decoder_params(config) == 7_634_887
  assert model.count_params() == reference_params(config)
  # The Grad-TTS paper / README size.
  assert abs(model.count_params() - 14.84e6) / 14.84e6 < 0.005


def test_multi_speaker_parameter_count_matches_reference():
  config = grad_tts.tiny(n_spks=3)
  model = grad_tts.GradTTS(config)
  assert model.count_params() == reference_params(config)


# --- Layer maths against NumPy transcriptions of the reference. -----------------------------

def _softmax(x, axis=-1):
  x = x - x.max(axis=axis, keepdims=True)
  e = np.exp(x)
  return e / e.sum(axis=axis, keepdims=True)


def _reference_relative_attention(q, k, v, emb_k, emb_v, mask, window):
  """MultiHeadAttention.attention of model/text_encoder.py on [b, h, t, d] arrays."""
  b, h, t, d = q.shape

  def relative_embeddings(emb):
    pad = max(t - (window + 1), 0)
    start = max((window + 1) - t, 0)
    emb = np.pad(emb, [[pad, pad], [0, 0]])
    return emb[start:start + 2 * t - 1]

  def rel_to_abs(x):
    x = np.pad(x, [[0, 0], [0, 0], [0, 0], [0, 1]]).reshape(b, h, t * 2 * t)
    x = np.pad(x, [[0, 0], [0, 0], [0, t - 1]]).reshape(b, h, t + 1, 2 * t - 1)
    return x[:, :, :t, t - 1:]

  def abs_to_rel(x):
    x = np.pad(x, [[0, 0], [0, 0], [0, 0], [0, t - 1]]).reshape(b, h, t * t + t * (t - 1))
    x = np.pad(x, [[0, 0], [0, 0], [t, 0]]).reshape(b, h, t, 2 * t)
    return x[:, :, :, 1:]

  scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(d)
  scores = scores + rel_to_abs(q @ relative_embeddings(emb_k).T) / math.sqrt(d)
  scores = np.where(mask == 0, -1e4, scores)
  p = _softmax(scores)
  return p @ v + abs_to_rel(p) @ relative_embeddings(emb_v)


@pytest.mark.parametrize("length", [3, 11])  # shorter and longer than window + 1
def test_relative_attention_matches_reference(length):
  channels, heads, window = 8, 2, 4
  layer = text_encoder.RelativeMultiHeadAttention(channels, heads, window, 0.0)
  layer.build(None)
  rng = np.random.default_rng(0)
  for weight in layer.weights:
    weight.assign(rng.normal(size=weight.shape).astype(np.float32))
  x = rng.normal(size=(2, length, channels)).astype(np.float32)
  lengths = np.array([length, length - 2])
  mask = (np.arange(length)[None] < lengths[:, None]).astype(np.float32)
  got = layer(x, mask[:, :, None]).numpy()

  def proj(dense, inputs):
    return inputs @ dense.kernel.numpy() + dense.bias.numpy()

  def heads_first(y):  # torch view(b, heads, k, t) of a [b, channels, t] tensor
    return y.reshape(2, length, heads, channels // heads).transpose(0, 2, 1, 3)

  q, k, v = (heads_first(proj(d, x)) for d in (layer.query, layer.key, layer.value))
  pair = mask[:, None, :, None] * mask[:, None, None, :]
  out = _reference_relative_attention(q, k, v, layer.relative_keys.numpy(),
                                      layer.relative_values.numpy(), pair, window)
  want = proj(layer.output_proj, out.transpose(0, 2, 1, 3).reshape(2, length, channels))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _torch_layout(x):  # [b, frames, n_feats, c] -> torch [b, c, n_feats, frames]
  return np.transpose(x, (0, 3, 2, 1))


def _keras_layout(x):
  return np.transpose(x, (0, 3, 2, 1))


def test_downsample_upsample_match_torch_padding():
  rng = np.random.default_rng(1)
  dim = 3
  x = rng.normal(size=(1, 8, 6, dim)).astype(np.float32)  # [b, frames, n_feats, c]
  down = score_estimator.Downsample(dim)
  up = score_estimator.Upsample(dim)
  down.build(None), up.build(None)
  for layer in (down, up):
    for weight in layer.weights:
      weight.assign(rng.normal(size=weight.shape).astype(np.float32))
  xt = _torch_layout(x)[0]  # [c, F, T]

  # torch Conv2d(dim, dim, 3, stride 2, padding 1), weight [out, in, kF, kT].
  w = np.transpose(down.conv.kernel.numpy(), (3, 2, 1, 0))
  padded = np.pad(xt, [[0, 0], [1, 1], [1, 1]])
  want = np.zeros((dim, 3, 4), np.float32)
  for i in range(3):
    for j in range(4):
      want[:, i, j] = np.einsum("ocab,cab->o", w, padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3])
  want += down.conv.bias.numpy()[:, None, None]
  np.testing.assert_allclose(down(x).numpy(), _keras_layout(want[None]), rtol=1e-4, atol=1e-4)

  # torch ConvTranspose2d(dim, dim, 4, stride 2, padding 1), weight [in, out, kF, kT].
  w = np.transpose(up.conv.kernel.numpy(), (3, 2, 1, 0))
  full = np.zeros((dim, 2 * 6 + 2, 2 * 8 + 2), np.float32)
  for i in range(6):
    for j in range(8):
      full[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += np.einsum("c,coab->oab", xt[:, i, j], w)
  want = full[:, 1:-1, 1:-1] + up.conv.bias.numpy()[:, None, None]
  np.testing.assert_allclose(up(x).numpy(), _keras_layout(want[None]), rtol=1e-4, atol=1e-4)


def test_linear_attention_matches_reference():
  rng = np.random.default_rng(2)
  dim, heads, dim_head = 4, 2, 3
  layer = score_estimator.ResidualLinearAttention(dim, heads, dim_head)
  layer.build(None)
  for weight in layer.weights:
    weight.assign(rng.normal(size=weight.shape).astype(np.float32))
  x = rng.normal(size=(2, 4, 6, dim)).astype(np.float32)
  got = layer(x, np.ones((2, 4, 1, 1), np.float32)).numpy()

  # LinearAttention.forward on torch layout [b, c, h=n_feats, w=frames], then Residual(Rezero).
  xt = _torch_layout(x)
  qkv = np.einsum("bchw,co->bohw", xt, layer.to_qkv.kernel.numpy())
  q, k, v = qkv.reshape(2, 3, heads, dim_head, 6 * 4).transpose(1, 0, 2, 3, 4)
  k = _softmax(k, axis=-1)
  context = np.einsum("bhdn,bhen->bhde", k, v)
  out = np.einsum("bhde,bhdn->bhen", context, q).reshape(2, heads * dim_head, 6, 4)
  out = np.einsum("bchw,co->bohw", out, layer.to_out.kernel.numpy())
  out += layer.to_out.bias.numpy()[None, :, None, None]
  want = xt + layer.gate.numpy()[0] * out
  np.testing.assert_allclose(got, _keras_layout(want), rtol=1e-4, atol=1e-4)

  # Padded frames: keys there get no weight, so the real frames' output is that of the
  # unpadded input, and padded frames pass x through.
  mask = (np.arange(4) < 3).astype(np.float32)[None, :, None, None]
  noisy_padding = x.copy()
  noisy_padding[:, 3:] = 50.0
  padded = layer(noisy_padding, np.broadcast_to(mask, (2, 4, 1, 1))).numpy()
  unpadded = layer(x[:, :3], np.ones((2, 3, 1, 1), np.float32)).numpy()
  np.testing.assert_allclose(padded[:, :3], unpadded, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(padded[:, 3:], noisy_padding[:, 3:])

  # A masked input (the U-Net's case) takes the folded path, rows @ (I + g M) + g b mask: the
  # same output, zero on padded frames.
  masked_input = x * mask
  folded = layer(masked_input, np.broadcast_to(mask, (2, 4, 1, 1)), input_masked=True).numpy()
  np.testing.assert_allclose(folded[:, :3], unpadded, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(folded[:, 3:], 0.0)


def test_masked_group_norm_counts_only_real_frames():
  rng = np.random.default_rng(3)
  layer = score_estimator.MaskedGroupNorm(2)
  layer.build((None, None, None, 4))
  layer.gamma.assign(rng.normal(size=4).astype(np.float32))
  layer.beta.assign(rng.normal(size=4).astype(np.float32))
  x = rng.normal(size=(1, 7, 4, 4)).astype(np.float32)

  def torch_group_norm(y):  # [b, frames, n_feats, c], over (frames, n_feats, c in group)
    g = y.reshape(1, y.shape[1], 4, 2, 2)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = g.var(axis=(1, 2, 4), keepdims=True)
    out = ((g - mean) / np.sqrt(var + 1e-5)).reshape(y.shape)
    return out * layer.gamma.numpy() + layer.beta.numpy()

  full = layer(x, np.ones((1, 7, 1, 1), np.float32)).numpy()
  np.testing.assert_allclose(full, torch_group_norm(x), rtol=1e-4, atol=1e-4)
  mask = (np.arange(7) < 5).astype(np.float32)[None, :, None, None]
  noisy_padding = x.copy()
  noisy_padding[:, 5:] = 100.0
  part = layer(noisy_padding, mask).numpy()[:, :5]
  np.testing.assert_allclose(part, torch_group_norm(x[:, :5]), rtol=1e-4, atol=1e-4)


def _plain_masked_group_norm(x, mask, gamma, beta, groups, epsilon=1e-5):
  """The masked GroupNorm written plainly (weighted moments per item and group), for autodiff."""
  batch, frames, bins, channels = x.shape
  grouped = tf.reshape(x, [batch, frames, bins, groups, channels // groups])
  weights = tf.broadcast_to(tf.reshape(mask, [batch, frames, 1, 1, 1]), grouped.shape)
  mean, variance = tf.nn.weighted_moments(grouped, axes=[1, 2, 4], frequency_weights=weights,
                                          keepdims=True)
  normalized = tf.reshape((grouped - mean) * tf.math.rsqrt(variance + epsilon), x.shape)
  return (normalized * gamma + beta) * mask


def _plain_mish(x):
  return x * tf.tanh(tf.math.softplus(x))


def test_mish_and_its_gradient_match_float64_everywhere():
  # Training's Mish gradient (and the fused GroupNorm's Mish) come from one exp with capped
  # arguments: finite and right far out on both sides, not only near 0.
  x = np.concatenate([np.linspace(-90, 90, 3601), [-3e38, -1e30, 0.0, 1e30, 3e38]])
  x = x.astype(np.float32)
  with tf.GradientTape() as tape:
    xt = tf.constant(x)
    tape.watch(xt)
    y = score_estimator.mish(xt)
  d = tape.gradient(y, xt).numpy().astype(np.float64)
  fused_y, fused_d = [v.numpy().astype(np.float64) for v in
                      tf.function(score_estimator._mish_terms, jit_compile=True)(xt)]
  x64 = x.astype(np.float64)
  t = np.tanh(np.logaddexp(0.0, x64))
  want_y = x64 * t
  want_d = t + x64 / (1.0 + np.exp(-x64)) * (1.0 - t * t)
  want_d[~np.isfinite(want_d)] = np.where(x64 > 0, 1.0, 0.0)[~np.isfinite(want_d)]
  for got in (d, fused_d):
    np.testing.assert_allclose(got, want_d, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(fused_y, want_y, rtol=1e-6, atol=1e-6)


def test_estimator_training_path_equals_inference_path():
  # training=True swaps each Block's GroupNorm + Mish for XLA loops with a written-out
  # gradient: the same score and the same weight gradients, on a padded batch.
  model = grad_tts.GradTTS(grad_tts.tiny())
  rng = np.random.default_rng(3)
  for v in model.variables:  # like a trained model's: no zero biases or unit gammas
    v.assign(v + rng.normal(scale=0.1, size=v.shape).astype(np.float32))
  estimator = model.decoder.estimator
  x = tf.constant(rng.normal(size=(2, 16, N_FEATS)).astype(np.float32))
  mask = tf.sequence_mask([16, 11], 16, dtype=tf.float32)
  t = tf.constant([0.3, 0.8])

  def score_and_grads(training):
    with tf.GradientTape() as tape:
      score = estimator(x, mask, 0.5 * x, t, training=training)
      loss = tf.reduce_sum(tf.square(score - x))
    return score, tape.gradient(loss, estimator.trainable_variables)

  want, want_grads = score_and_grads(False)
  got, got_grads = score_and_grads(True)
  np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4,
                             atol=1e-5 * np.abs(want.numpy()).max())
  for variable, g, w in zip(estimator.trainable_variables, got_grads, want_grads):
    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-3,
                               atol=1e-4 * np.abs(w.numpy()).max(), err_msg=variable.path)


@pytest.mark.parametrize("fused", [None, "mish", "mish_shift_residual"])
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("mixed_bfloat16", 3e-2)])
def test_masked_group_norm_gradient_matches_autodiff_of_the_plain_form(dtype, tolerance, fused):
  # The layer writes its gradient out (custom_gradient); here it meets autodiff of the plain
  # form in float32, with padded frames full of large values, per-item lengths, an offset
  # mean, and an upstream gradient that is non-zero on padded frames too. bfloat16 takes the
  # centred form (x - mean) * a + beta: x * a + b lost 5 dB of the U-Net's SNR there.
  # `normalized_mish` (training's XLA loops, Mish from one exp) meets the plain form + Mish,
  # and with ResnetBlock's time shift (then masked) and shortcut added in the same loop.
  rng = np.random.default_rng(5)
  layer = score_estimator.MaskedGroupNorm(2, dtype=dtype)
  layer.build((None, None, None, 6))
  layer.gamma.assign(rng.uniform(0.5, 1.5, size=6).astype(np.float32))
  layer.beta.assign(rng.normal(size=6).astype(np.float32))
  x = (3.0 + 2.0 * rng.normal(size=(2, 9, 4, 6))).astype(np.float32)
  mask = (np.arange(9)[None, :] < np.array([[9], [6]])).astype(np.float32)[:, :, None, None]
  x[1, 6:] = 80.0
  d_out = rng.normal(size=x.shape).astype(np.float32)
  x = tf.constant(x)
  shift = tf.constant(rng.normal(size=(2, 6)).astype(np.float32))
  residual = tf.constant(rng.normal(size=x.shape).astype(np.float32))
  extras = [shift, residual] if fused == "mish_shift_residual" else []

  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x] + extras)
    if fused:
      # (normalized_mish is a method, not a call: no autocast of x to the layer's dtype)
      got = layer.normalized_mish(tf.cast(x, layer.compute_dtype), mask,
                                  *[tf.cast(v, layer.compute_dtype) for v in extras])
    else:
      got = layer(x, mask)
    want = _plain_masked_group_norm(x, mask, layer.gamma, layer.beta, 2)
    if fused:
      want = _plain_mish(want)
    if extras:
      want = (want + shift[:, None, None, :]) * mask + residual
  assert got.dtype == layer.compute_dtype
  scale = np.abs(want.numpy()).max()
  np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), want.numpy(), rtol=0,
                             atol=tolerance * scale)
  if not extras:
    assert np.all(tf.cast(got, tf.float32).numpy()[1, 6:] == 0.0)
  sources = [x, layer.gamma, layer.beta] + extras
  got_grads = tape.gradient(got, sources, output_gradients=tf.cast(d_out, got.dtype))
  want_grads = tape.gradient(want, sources, output_gradients=d_out)
  for name, g, w in zip(["x", "gamma", "beta", "shift", "residual"], got_grads, want_grads):
    g = tf.cast(g, tf.float32).numpy()
    np.testing.assert_allclose(g, w.numpy(), rtol=tolerance,
                               atol=tolerance * np.abs(w.numpy()).max(), err_msg=name)
  assert np.all(tf.cast(got_grads[0], tf.float32).numpy()[1, 6:] == 0.0)


def test_wide_blocks_split_the_inference_convolution_by_output_channels(monkeypatch):
  # The ljspeech U-Net's lowest level (256 -> 256, 512 -> 128) convolves in output-channel
  # slices at inference (CONV_SPLIT_GROUPS): the same values as one convolution, four Conv2D
  # ops in the graph; narrower Blocks, training and bfloat16 keep the one convolution.
  rng = np.random.default_rng(5)
  wide, narrow = score_estimator.Block(512, 128, 8), score_estimator.Block(128, 128, 8)
  assert wide.split_output_groups() == score_estimator.CONV_SPLIT_GROUPS > 1
  assert narrow.split_output_groups() == 1
  assert wide.split_output_groups(tf.bfloat16) == 1
  x = tf.constant(rng.normal(size=(2, 12, 5, 512)).astype(np.float32))
  mask = tf.reshape(tf.sequence_mask([12, 7], 12, dtype=tf.float32), [2, 12, 1, 1])
  wide.build(None)
  for v in wide.variables:  # like a trained model's: biases and gammas not at their init
    v.assign(v + rng.normal(scale=0.1, size=v.shape).astype(np.float32))
  traced = tf.function(lambda x, mask: wide(x, mask))
  graph = traced.get_concrete_function(tf.TensorSpec([None, None, 5, 512]),
                                       tf.TensorSpec([None, None, 1, 1])).graph
  assert sum(op.type == "Conv2D" for op in graph.get_operations()) == 4
  split = traced(x, mask).numpy()
  monkeypatch.setattr(score_estimator, "CONV_SPLIT_GROUPS", 1)
  single = tf.function(lambda x, mask: wide(x, mask))(x, mask).numpy()
  np.testing.assert_allclose(split, single, rtol=1e-5, atol=1e-6 * np.abs(single).max())
  assert np.abs(single).max() > 0.1 and not np.any(split[1, 7:])


def test_sinusoidal_time_embedding_matches_reference():
  t = np.array([0.0, 0.3, 0.99], np.float32)
  half = 8
  freqs = np.exp(np.arange(half) * -(math.log(10000) / (half - 1)))
  angles = 1000 * t[:, None] * freqs[None]
  want = np.concatenate([np.sin(angles), np.cos(angles)], axis=-1)
  got = score_estimator.sinusoidal_time_embedding(t, 16, 1000.0).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


# --- The whole model (tiny preset). -----------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model():
  tf.keras.utils.set_random_seed(1)  # also seeds Keras initializers: same weights in any order
  return grad_tts.GradTTS(grad_tts.tiny())


TEXT = np.array([[5, 9, 12, 40, 3, 57, 8], [20, 31, 4, 0, 0, 0, 0], [60, 61, 62, 63, 64, 0, 0]],
                np.int32)
TEXT_LENGTHS = np.array([7, 3, 5], np.int32)


def test_synthesize_shapes_and_masking(tiny_model):
  out = tiny_model.synthesize(TEXT, TEXT_LENGTHS, n_timesteps=2, length_scale=2.0, seed=[3, 4])
  mu, log_durations, _, _ = tiny_model.encode(TEXT, TEXT_LENGTHS)
  # torch TextEncoder: mu [b, 80, text], logw [b, 1, text] <-> [b, text, 80], [b, text].
  assert mu.shape == (3, 7, N_FEATS) and log_durations.shape == (3, 7)
  padding = np.arange(7)[None] >= TEXT_LENGTHS[:, None]
  assert not np.any(mu.numpy()[padding]) and not np.any(log_durations.numpy()[padding])
  durations = np.ceil(np.exp(log_durations.numpy())) * 2.0 * (np.arange(7) < TEXT_LENGTHS[:, None])
  lengths = durations.sum(axis=1).astype(np.int32)
  np.testing.assert_array_equal(out.mel_lengths.numpy(), lengths)
  frames = lengths.max()
  # torch mu_y / decoder_outputs [b, 80, frames] <-> [b, frames, 80]; attn [b, 1, text, frames].
  assert out.mel_encoder.shape == (3, frames, N_FEATS)
  assert out.mel_decoded.shape == (3, frames, N_FEATS)
  assert out.alignment.shape == (3, 7, frames)
  path = out.alignment.numpy()
  for b in range(3):
    np.testing.assert_array_equal(path[b].sum(axis=0), np.arange(frames) < lengths[b])
    np.testing.assert_array_equal(path[b].sum(axis=1), durations[b])
    np.testing.assert_array_equal(out.mel_decoded.numpy()[b, lengths[b]:], 0.0)
    # Each frame's prior mean is its token's mu.
    tokens = path[b].argmax(axis=0)[:lengths[b]]
    np.testing.assert_allclose(out.mel_encoder.numpy()[b, :lengths[b]], mu.numpy()[b, tokens],
                               atol=1e-6)


def test_fractional_length_scale_expands_like_reference_generate_path(tiny_model):
  out = tiny_model.synthesize(TEXT, TEXT_LENGTHS, n_timesteps=1, length_scale=0.91, seed=[0, 0])
  log_durations = tiny_model.encode(TEXT, TEXT_LENGTHS)[1].numpy()
  text_mask = (np.arange(7) < TEXT_LENGTHS[:, None]).astype(np.float32)
  w_ceil = (np.ceil(np.exp(log_durations) * text_mask) * np.float32(0.91)).astype(np.float32)
  lengths = np.maximum(w_ceil.sum(axis=1), 1).astype(np.int64)  # torch .long() truncates
  np.testing.assert_array_equal(out.mel_lengths.numpy(), lengths)
  frames = lengths.max()
  # model/utils.py generate_path on float durations, masked by (text, frame) validity.
  cum = np.cumsum(w_ceil, axis=1)
  path = (np.arange(frames)[None, None, :] < cum[:, :, None]).astype(np.float32)
  path = path - np.pad(path, [[0, 0], [1, 0], [0, 0]])[:, :-1]
  path *= text_mask[:, :, None] * (np.arange(frames)[None, None, :] < lengths[:, None, None])
  np.testing.assert_array_equal(out.alignment.numpy(), path)


def test_padding_does_not_change_outputs(tiny_model):
  noise = tf.random.stateless_normal([3, 256, N_FEATS], [7, 7])  # ample for any init
  batch = tiny_model.synthesize(TEXT, TEXT_LENGTHS, n_timesteps=3, length_scale=3.0,
                                noise=noise)
  lengths = batch.mel_lengths.numpy()
  assert len(set(tiny_model.compatible_frames(lengths))) > 1, "test needs different paddings"
  for b in range(3):
    alone = tiny_model.synthesize(TEXT[b:b + 1, :TEXT_LENGTHS[b]], TEXT_LENGTHS[b:b + 1],
                                  n_timesteps=3, length_scale=3.0, noise=noise[b:b + 1])
    n = lengths[b]
    assert alone.mel_lengths.numpy()[0] == n
    # Only float rounding differs between padded shapes (3 U-Net steps; seen up to 1.1e-4).
    for name in ("mel_encoder", "mel_decoded"):
      np.testing.assert_allclose(getattr(alone, name).numpy()[0],
                                 getattr(batch, name).numpy()[b, :n], rtol=1e-4, atol=3e-4)
    np.testing.assert_array_equal(alone.alignment.numpy()[0],
                                  batch.alignment.numpy()[b, :TEXT_LENGTHS[b], :n])


def test_reverse_diffusion_euler_step_and_unrolled_loop(tiny_model):
  decoder = tiny_model.decoder
  rng = np.random.default_rng(4)
  z = rng.normal(size=(2, 8, N_FEATS)).astype(np.float32)
  mu = rng.normal(size=(2, 8, N_FEATS)).astype(np.float32)
  mask = (np.arange(8)[None] < np.array([[8], [5]])).astype(np.float32)
  # One reference Euler step of the probability-flow ODE: t = 0.5, h = 1.
  score = decoder.estimator(z * mask[..., None], mask, mu, tf.fill([2], 0.5)).numpy()
  beta = 0.05 + (20.0 - 0.05) * 0.5
  xt = z * mask[..., None]
  want = (xt - 0.5 * (mu - xt - score) * beta) * mask[..., None]
  got = decoder.reverse_diffusion(z, mask, mu, 1).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  looped = decoder.reverse_diffusion(z, mask, mu, tf.constant(3), stoc=True, seed=[1, 2])
  unrolled = decoder.reverse_diffusion(z, mask, mu, 3, stoc=True, seed=[1, 2], unroll=True)
  np.testing.assert_allclose(looped.numpy(), unrolled.numpy(), rtol=1e-5, atol=1e-5)


def test_forward_diffusion_matches_vp_sde_marginal(tiny_model):
  x0 = np.full((1, 4, N_FEATS), 2.0, np.float32)
  mu = np.full((1, 4, N_FEATS), -1.0, np.float32)
  noise = np.ones((1, 4, N_FEATS), np.float32)
  t = 0.3
  cumulative = 0.05 * t + 0.5 * (20.0 - 0.05) * t * t
  want = 2.0 * math.exp(-0.5 * cumulative) - (1 - math.exp(-0.5 * cumulative)) + math.sqrt(
      1 - math.exp(-cumulative))
  xt, _ = tiny_model.decoder.forward_diffusion(x0, np.ones((1, 4), np.float32), mu,
                                               tf.constant([t]), noise)
  np.testing.assert_allclose(xt.numpy(), want, rtol=1e-5)


def _training_batch():
  rng = np.random.default_rng(5)
  mel = rng.normal(size=(3, 45, N_FEATS)).astype(np.float32)
  return mel, np.array([45, 20, 37], np.int32)


def test_losses_match_reference_formulas(tiny_model):
  mel, mel_lengths = _training_batch()
  losses = tiny_model.compute_losses(TEXT, TEXT_LENGTHS, mel, mel_lengths, out_size=None,
                                     training=False, seed=[1, 1])
  mu, log_w, text_mask, _ = (t.numpy() if t is not None else None
                             for t in tiny_model.encode(TEXT, TEXT_LENGTHS))
  # model/tts.py compute_loss, with torch [b, 80, T] transposed to [b, T, 80].
  log_prior = (-0.5 * ((mel[:, None, :, :] - mu[:, :, None, :]) ** 2).sum(-1)
               - 0.5 * math.log(2 * math.pi) * N_FEATS)
  from tfspeech.ops.alignment import maximum_path
  path = maximum_path(log_prior.astype(np.float32), TEXT_LENGTHS, mel_lengths).numpy()
  logw_target = np.log(1e-8 + path.sum(-1)) * text_mask
  duration_loss = ((log_w - logw_target) ** 2).sum() / TEXT_LENGTHS.sum()
  mel_mask = (np.arange(45)[None] < mel_lengths[:, None]).astype(np.float32)
  mu_y = np.einsum("btm,btf->bmf", path, mu)
  prior_loss = ((0.5 * ((mel - mu_y) ** 2 + math.log(2 * math.pi))) * mel_mask[..., None]).sum()
  prior_loss /= mel_mask.sum() * N_FEATS
  np.testing.assert_allclose(losses["duration_loss"].numpy(), duration_loss, rtol=1e-4)
  np.testing.assert_allclose(losses["prior_loss"].numpy(), prior_loss, rtol=1e-4)
  assert np.isfinite(losses["diffusion_loss"].numpy()) and losses["diffusion_loss"] > 0


def test_prior_on_every_frame_while_the_decoder_trains_on_a_segment(tiny_model):
  """tiny's prior_on_segment=False: the prior loss is the whole utterance's (as with
  out_size=None) while the diffusion loss still comes from the 32-frame segment; the
  reference's prior_on_segment=True gives the segment's prior loss."""
  assert tiny_model.config.prior_on_segment is False and tiny_model.config.out_size == 32
  mel, mel_lengths = _training_batch()
  # Louder towards the end, so a segment's prior loss differs from the whole utterance's.
  mel = mel + np.linspace(0.0, 4.0, mel.shape[1], dtype=np.float32)[None, :, None]
  whole = tiny_model.compute_losses(TEXT, TEXT_LENGTHS, mel, mel_lengths, out_size=None,
                                    training=False, seed=[1, 1])
  segment = tiny_model.compute_losses(TEXT, TEXT_LENGTHS, mel, mel_lengths, training=False,
                                      seed=[1, 1])
  np.testing.assert_allclose(segment["prior_loss"].numpy(), whole["prior_loss"].numpy(),
                             rtol=1e-5)
  assert segment["diffusion_loss"].numpy() != whole["diffusion_loss"].numpy()
  reference = grad_tts.GradTTS(tiny_model.config.replace(prior_on_segment=True))
  reference.set_weights(tiny_model.get_weights())
  cut = reference.compute_losses(TEXT, TEXT_LENGTHS, mel, mel_lengths, training=False,
                                 seed=[1, 1])
  # Measured 0.078 apart (3.616 vs 3.538) with this mel.
  assert abs(cut["prior_loss"].numpy() - whole["prior_loss"].numpy()) > 0.03
  np.testing.assert_allclose(cut["diffusion_loss"].numpy(), segment["diffusion_loss"].numpy(),
                             rtol=1e-5)


def test_every_variable_gets_a_gradient():
  model = grad_tts.GradTTS(grad_tts.tiny())
  # Rezero gates and the prenet projection start at zero, which zeroes (not removes) the
  # gradients behind them; open them so that an all-zero gradient means a broken graph.
  for variable in model.trainable_variables:
    if "gate" in variable.path or "prenet/proj" in variable.path:
      variable.assign(tf.fill(variable.shape, 0.3))
  mel, mel_lengths = _training_batch()
  with tf.GradientTape() as tape:
    losses = model.compute_losses(TEXT, TEXT_LENGTHS, mel, mel_lengths)
    total = tf.add_n(list(losses.values()))
  grads = tape.gradient(total, model.trainable_variables)
  missing = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
  assert not missing, f"no gradient for {missing}"
  zero = [v.path for v, g in zip(model.trainable_variables, grads)
          if not np.any(tf.convert_to_tensor(g).numpy())]
  assert not zero, f"all-zero gradient for {zero}"


def test_segment_training_handles_short_and_long_mels(tiny_model):
  mel, mel_lengths = _training_batch()  # out_size 32: two longer, one shorter
  def losses(seed):
    return tiny_model.compute_losses(TEXT, TEXT_LENGTHS, mel[:, :40], np.minimum(mel_lengths, 40),
                                     training=False, seed=seed)
  first, again, other = losses([4, 4]), losses([4, 4]), losses([5, 4])
  for name, value in first.items():
    assert np.isfinite(value.numpy())
    np.testing.assert_allclose(value.numpy(), again[name].numpy(), rtol=1e-6)
  assert first["diffusion_loss"].numpy() != other["diffusion_loss"].numpy()


TEXT_SPEC = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)]
MEL_SPEC = tf.TensorSpec([None, None, N_FEATS], tf.float32)


def _has_loop(concrete_function):
  graph_def = concrete_function.graph.as_graph_def()
  nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
  return any(node.op in ("While", "StatelessWhile") for node in nodes)


def test_synthesize_in_graph_mode(tiny_model):
  @tf.function(input_signature=TEXT_SPEC + [MEL_SPEC, tf.TensorSpec([], tf.int32)])
  def synthesize(text, lengths, noise, n_timesteps):
    return tiny_model.synthesize(text, lengths, n_timesteps=n_timesteps, noise=noise)

  @tf.function(input_signature=TEXT_SPEC + [MEL_SPEC])
  def synthesize_unrolled(text, lengths, noise):
    return tiny_model.synthesize(text, lengths, n_timesteps=2, noise=noise, unroll=True)

  looped = synthesize.get_concrete_function()
  unrolled = synthesize_unrolled.get_concrete_function()
  assert_no_python_ops(looped)
  assert_no_python_ops(unrolled)
  assert _has_loop(looped)
  assert not _has_loop(unrolled), "unroll=True must give a loop-free graph for export"
  noise = tf.random.stateless_normal([3, 256, N_FEATS], [1, 3])
  decoded = synthesize(TEXT, TEXT_LENGTHS, noise, tf.constant(2)).mel_decoded
  eager = tiny_model.synthesize(TEXT, TEXT_LENGTHS, n_timesteps=2, noise=noise).mel_decoded
  np.testing.assert_allclose(decoded.numpy(), eager.numpy(), rtol=1e-4, atol=1e-4)


def test_bfloat16_unet_follows_float32(tiny_model, fast_graphs):
  from tfspeech.training import precision  # pylint: disable=import-outside-toplevel
  with precision.precision_policy("bfloat16"):  # what load_run(..., precision=) builds under
    fast = grad_tts.GradTTS(grad_tts.tiny())
  assert fast.encoder.compute_dtype == "float32"  # durations and MAS stay float32
  assert fast.decoder.estimator.compute_dtype == "bfloat16"
  for source, target in zip(tiny_model.variables, fast.variables):
    target.assign(source)

  def make(model):
    return tf.function(lambda text, lengths, noise: model.synthesize(
        text, lengths, n_timesteps=4, noise=noise, unroll=True),
        input_signature=TEXT_SPEC + [MEL_SPEC])
  fast_fn = make(fast)
  concrete = fast_fn.get_concrete_function()
  assert_no_python_ops(concrete)
  # The U-Net's convolutions in bfloat16, the text encoder's in float32; Mish in float32
  # (TF's bfloat16 Softplus ran 5x slower than float32's, see score_estimator.mish).
  assert op_dtypes(concrete, ("Conv2D",)) == {"bfloat16", "float32"}
  assert op_dtypes(concrete, ("Softplus",)) == {"float32"}
  noise = tf.random.stateless_normal([3, 256, N_FEATS], [1, 3])
  want = make(tiny_model)(TEXT, TEXT_LENGTHS, noise)
  got = fast_fn(TEXT, TEXT_LENGTHS, noise)
  assert got.mel_decoded.dtype == tf.float32
  np.testing.assert_array_equal(got.mel_lengths.numpy(), want.mel_lengths.numpy())
  np.testing.assert_array_equal(got.mel_encoder.numpy(), want.mel_encoder.numpy())
  exact, approx = want.mel_decoded.numpy(), got.mel_decoded.numpy()
  snr = 10 * np.log10(np.sum(exact ** 2) / np.sum((approx - exact) ** 2))
  assert 25 < snr < 80, snr  # float32 against itself would be exact (inf)


def test_training_step_in_graph_mode(tiny_model, fast_graphs):
  @tf.function(input_signature=TEXT_SPEC + [MEL_SPEC, tf.TensorSpec([None], tf.int32)])
  def train_loss(text, lengths, mel, mel_lengths):
    with tf.GradientTape() as tape:
      total = tf.add_n(list(tiny_model.compute_losses(text, lengths, mel, mel_lengths).values()))
    return total, tape.gradient(total, tiny_model.trainable_variables)

  assert_no_python_ops(train_loss.get_concrete_function())
  mel, mel_lengths = _training_batch()
  total, grads = train_loss(TEXT, TEXT_LENGTHS, mel, mel_lengths)
  assert np.isfinite(total.numpy())
  assert all(g is not None for g in grads)


def test_multi_speaker_model_needs_speaker():
  model = grad_tts.GradTTS(grad_tts.tiny(n_spks=3))
  out = model.synthesize(TEXT, TEXT_LENGTHS, n_timesteps=1, speaker=[0, 2, 1], seed=[0, 1])
  assert out.mel_decoded.shape[0] == 3
  mu_0 = model.encode(TEXT, TEXT_LENGTHS, speaker=[0, 2, 1])[0].numpy()
  mu_1 = model.encode(TEXT, TEXT_LENGTHS, speaker=[1, 2, 1])[0].numpy()
  assert not np.allclose(mu_0[0], mu_1[0])
  np.testing.assert_allclose(mu_0[1:], mu_1[1:], rtol=1e-5, atol=1e-6)
  mel, mel_lengths = _training_batch()
  losses = model.compute_losses(TEXT, TEXT_LENGTHS, mel, mel_lengths, speaker=[0, 1, 2])
  assert all(np.isfinite(v.numpy()) for v in losses.values())
  with pytest.raises(ValueError, match="speaker"):
    model.synthesize(TEXT, TEXT_LENGTHS)


def test_bad_inputs_raise_clear_errors(tiny_model):
  with pytest.raises(ValueError, match="n_feats"):
    grad_tts.tiny(n_feats=78)
  with pytest.raises(ValueError, match="out_size"):
    grad_tts.tiny(out_size=30)
  with pytest.raises(ValueError, match="text_ids"):
    tiny_model.synthesize(TEXT.astype(np.float32), TEXT_LENGTHS)
  with pytest.raises(ValueError, match="single-speaker"):
    tiny_model.synthesize(TEXT, TEXT_LENGTHS, speaker=[0, 0, 0])
  with pytest.raises(tf.errors.InvalidArgumentError, match="noise has fewer frames"):
    tiny_model.synthesize(TEXT, TEXT_LENGTHS, noise=tf.zeros([3, 1, N_FEATS]))
