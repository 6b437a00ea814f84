"""tfspeech.ops.convolution.conv1d against tf.nn.convolution (values, gradients, graph)."""

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.ops import convolution


def _reference(x, kernel, bias, stride, dilation, padding):
  y = tf.nn.convolution(x, kernel, stride, padding, dilations=dilation)
  return y if bias is None else y + bias


@pytest.mark.parametrize("stride,dilation,padding,with_bias", [
    (1, 1, "VALID", True), (1, 3, "VALID", True), (1, 5, "SAME", False), (2, 1, "SAME", True),
    (4, 1, "VALID", False)])
def test_values_and_gradients_equal_tf_nn_convolution(stride, dilation, padding, with_bias):
  rng = np.random.default_rng(stride * 10 + dilation)
  x = tf.constant(rng.normal(size=(2, 37, 6)), tf.float32)
  kernel = tf.Variable(rng.normal(size=(3, 6, 5)).astype(np.float32))
  bias = tf.Variable(rng.normal(size=5).astype(np.float32)) if with_bias else None
  weights = [v for v in (kernel, bias) if v is not None]

  def loss_and_grads(fn):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = fn(x, kernel, bias, stride, dilation, padding)
      loss = tf.reduce_sum(tf.sin(y))
    return y, tape.gradient(loss, [x] + weights)

  got, got_grads = loss_and_grads(lambda *a: convolution.conv1d(
      a[0], a[1], a[2], stride=a[3], dilation=a[4], padding=a[5]))
  want, want_grads = loss_and_grads(_reference)
  np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)


def _op_types(native, monkeypatch):
  monkeypatch.setattr(convolution, "native_dilation_supported", lambda: native)
  fn = tf.function(lambda x, k: convolution.conv1d(x, k, dilation=3))
  graph = fn.get_concrete_function(tf.TensorSpec([None, None, 4]),
                                   tf.TensorSpec([3, 4, 4])).graph
  return {op.type for op in graph.get_operations()}


def test_dilation_is_native_where_supported_else_space_to_batch(monkeypatch):
  native = _op_types(True, monkeypatch)
  assert "Conv2D" in native and not {"SpaceToBatchND", "BatchToSpaceND"} & native
  assert {"SpaceToBatchND", "BatchToSpaceND"} <= _op_types(False, monkeypatch)


def test_kernel_and_bias_follow_the_input_dtype():
  x = tf.ones([1, 8, 2], tf.float16)
  y = convolution.conv1d(x, tf.ones([3, 2, 4]), tf.ones([4]), dilation=2)
  assert y.dtype == tf.float16 and y.shape == (1, 4, 4)
  np.testing.assert_array_equal(y.numpy(), np.full((1, 4, 4), 7.0, np.float16))
