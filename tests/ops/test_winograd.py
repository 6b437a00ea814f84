"""tfspeech.ops.winograd: F(4, 3) against a direct float64 convolution (values, gradients,
phase layout, packed batches, graph)."""

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.ops import winograd


def _direct(x, kernel, bias=None):
  """'same' width-3 cross-correlation in float64 NumPy: y[t] = sum_k x[t + k - 1] @ w[k]."""
  padded = np.pad(np.asarray(x, np.float64), [(0, 0), (1, 1), (0, 0)])
  length = x.shape[1]
  y = sum(padded[:, k:k + length] @ np.asarray(kernel, np.float64)[k] for k in range(3))
  return y if bias is None else y + np.asarray(bias, np.float64)


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 7, 8, 9, 13, 64])
def test_conv1d_equals_the_direct_convolution_at_every_length(length):
  rng = np.random.default_rng(length)
  x = rng.normal(size=(3, length, 5)).astype(np.float32)
  kernel = rng.normal(size=(3, 5, 7)).astype(np.float32)
  bias = rng.normal(size=7).astype(np.float32)
  want = _direct(x, kernel, bias)
  got = winograd.conv1d(tf.constant(x), tf.constant(kernel), tf.constant(bias)).numpy()
  assert got.shape == (3, length, 7)
  # F(4, 3)'s transforms cost a few bits: ~1e-6 of the output's size in float32.
  np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())
  np.testing.assert_allclose(tf.nn.conv1d(x, kernel, 1, "SAME").numpy() + bias, want,
                             rtol=0, atol=2e-5 * np.abs(want).max())


def test_wide_channels_stay_within_the_float32_bound():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 50, 384)).astype(np.float32)
  kernel = (rng.normal(size=(3, 384, 96)) / np.sqrt(3 * 384)).astype(np.float32)
  want = _direct(x, kernel)
  got = winograd.conv1d(tf.constant(x), tf.constant(kernel)).numpy()
  error = np.abs(got - want).max() / np.abs(want).max()
  assert error < 1e-5, error
  # Not exact: a transform that dropped a term would be off by far more than round-off.
  assert error > 0


def test_gradients_equal_the_direct_convolutions():
  rng = np.random.default_rng(1)
  x = tf.constant(rng.normal(size=(2, 11, 4)), tf.float32)
  kernel = tf.Variable(rng.normal(size=(3, 4, 6)).astype(np.float32))
  bias = tf.Variable(rng.normal(size=6).astype(np.float32))
  upstream = tf.constant(rng.normal(size=(2, 11, 6)), tf.float32)

  def grads(fn):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(fn() * upstream)
    return tape.gradient(loss, [x, kernel, bias])

  got = grads(lambda: winograd.conv1d(x, kernel, bias))
  want = grads(lambda: tf.nn.conv1d(x, kernel, 1, "SAME") + bias)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0, atol=2e-5 * np.abs(w).max())


def test_phase_layout_round_trips_and_chains_without_leaving_it():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(2, 10, 3)).astype(np.float32)
  phases = winograd.to_phases(tf.constant(x))
  assert phases.shape == (4, 2, 3, 3)  # 10 steps -> 3 tiles of 4
  np.testing.assert_array_equal(phases[1, :, 2].numpy(), x[:, 9])  # step 9 = 4 * 2 + 1
  np.testing.assert_array_equal(phases[2:, :, 2].numpy(), 0.0)  # steps 10, 11: padding
  np.testing.assert_array_equal(winograd.from_phases(phases, 10).numpy(), x)
  # Two convolutions in the phase layout with the padding steps re-zeroed between them
  # (as a masked network does) equal two direct ones.
  k1, k2 = rng.normal(size=(3, 3, 5)), rng.normal(size=(3, 5, 2))
  mask = winograd.to_phases(tf.ones([2, 10, 1]))
  hidden = winograd.conv1d_phases(phases, winograd.transform_kernel(tf.constant(k1, tf.float32)))
  out = winograd.conv1d_phases(hidden * mask,
                               winograd.transform_kernel(tf.constant(k2, tf.float32)))
  want = _direct(_direct(x, k1), k2)
  np.testing.assert_allclose(winograd.from_phases(out, 10).numpy(), want, rtol=0,
                             atol=2e-5 * np.abs(want).max())


def _masked_pair(x, lengths, k1, k2):
  """Two direct convolutions per item over its own steps only (no padding seen)."""
  out = np.zeros(x.shape[:2] + (k2.shape[-1],))
  for b, length in enumerate(lengths):
    if length:
      out[b, :length] = _direct(np.maximum(_direct(x[b:b + 1, :length], k1), 0), k2)[0]
  return out


def _packed_pair(x, lengths, k1, k2):
  layout = winograd.packing(tf.constant(lengths, tf.int32), tf.shape(x)[1])
  hidden = winograd.conv1d_phases(winograd.pack(x, layout),
                                  winograd.transform_kernel(tf.constant(k1, tf.float32)))
  out = winograd.conv1d_phases(tf.nn.relu(hidden) * layout.mask,
                               winograd.transform_kernel(tf.constant(k2, tf.float32)))
  return winograd.unpack(out, layout) * layout.step_mask


@pytest.mark.parametrize("lengths", [[9], [5, 0, 11, 7, 1], [12, 12, 12], [1, 1], [4, 8, 3]])
def test_packed_batch_equals_each_item_convolved_alone(lengths):
  rng = np.random.default_rng(sum(lengths))
  time = max(lengths) + 1  # padded past every item
  x = rng.normal(size=(len(lengths), time, 3)).astype(np.float32)
  # Padding holds garbage: packing must not read it (a masked network zeroes it anyway).
  x[np.arange(time)[None, :] >= np.array(lengths)[:, None]] = 1e3
  k1, k2 = rng.normal(size=(3, 3, 8)), rng.normal(size=(3, 8, 2))
  want = _masked_pair(x, lengths, k1, k2)
  got = _packed_pair(tf.constant(x), lengths, k1, k2).numpy()
  np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_packing_puts_items_one_zero_step_apart_in_the_phase_layout():
  layout = winograd.packing(tf.constant([3, 0, 2]), tf.constant(4))
  # Packed steps: item 0 at 0-2, gap 3, (empty item 1) gap 4, item 2 at 5-6: 7 steps, 2 tiles.
  assert layout.mask.shape == (4, 1, 2, 1)
  steps_of_mask = layout.mask.numpy()[:, 0, :, 0].T.reshape(-1)  # back to step order
  np.testing.assert_array_equal(steps_of_mask, [1, 1, 1, 0, 0, 1, 1, 0])
  rows = layout.rows.numpy()[:, 0, :].T.reshape(-1)
  np.testing.assert_array_equal(rows[[0, 1, 2, 5, 6]], [0, 1, 2, 8, 9])  # item * 4 + step
  # Each real padded step reads its packed step back (phase-major rows: p * tiles + t).
  steps = layout.steps.numpy()
  assert steps[0, 2] == 2 * 2 + 0 and steps[2, 0] == 1 * 2 + 1 and steps[2, 1] == 2 * 2 + 1


def test_packed_gradients_equal_the_masked_direct_gradients():
  rng = np.random.default_rng(4)
  lengths = [6, 2, 9]
  x = tf.constant(rng.normal(size=(3, 9, 4)), tf.float32)
  k1, k2 = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 5, 3))
  mask = tf.sequence_mask(lengths, 9, tf.float32)[..., None]
  upstream = tf.constant(rng.normal(size=(3, 9, 3)), tf.float32)

  def gradient(fn):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(fn() * upstream)
    return tape.gradient(loss, x).numpy()

  def direct():
    hidden = tf.nn.relu(tf.nn.conv1d(x * mask, tf.constant(k1, tf.float32), 1, "SAME")) * mask
    return tf.nn.conv1d(hidden, tf.constant(k2, tf.float32), 1, "SAME") * mask

  want = gradient(direct)
  got = gradient(lambda: _packed_pair(x, lengths, k1, k2))
  np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())
  assert not got[1, 2:].any()  # padding gets no gradient


def test_traced_graph_has_unknown_dims_and_no_python_ops():
  fn = tf.function(winograd.conv1d, input_signature=[
      tf.TensorSpec([None, None, 8], tf.float32), tf.TensorSpec([3, 8, 16], tf.float32)])
  graph = fn.get_concrete_function().graph
  types = {op.type for op in graph.get_operations()}
  assert not types & {"PyFunc", "EagerPyFunc", "NumpyFunction"}
  assert "BatchMatMulV2" in types and "Conv2D" not in types
  out = fn(tf.ones([2, 9, 8]), tf.ones([3, 8, 16]))
  assert out.shape == (2, 9, 16)


def test_where_it_pays():
  assert winograd.supported(3, tf.float32)
  assert not winograd.supported(5, tf.float32)
  assert not winograd.supported(3, tf.bfloat16)  # the transforms' rounding
  assert winograd.pays(3, 384, 1536, tf.float32)
  assert not winograd.pays(3, 128, 512, tf.float32)  # measured no faster
  assert not winograd.pays(3, 384, 1536, tf.bfloat16)
