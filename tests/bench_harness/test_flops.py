"""benchmarks/flops.py against analytic counts: Dense, Conv1D, a conv backprop, loops, branches."""
import importlib
import pathlib
import sys

import keras
import pytest
import tensorflow as tf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
  sys.path.append(str(REPO_ROOT))  # at the end: the installed tfspeech still wins
flops = importlib.import_module("benchmarks.flops")


def test_dense_and_conv1d_forward_match_their_analytic_counts():
  dense = keras.layers.Dense(48)
  conv = keras.layers.Conv1D(32, 5, padding="same")
  x = tf.zeros([3, 20, 16])

  @tf.function
  def forward(x):
    return conv(x), dense(x)

  counted = flops.count_call(forward, x)
  # Dense: [3·20, 16] @ [16, 48]; Conv1D: 3·20 outputs × 32 channels × 5 taps × 16 inputs.
  assert counted.by_op == {"MatMul": 2 * 60 * 16 * 48, "Conv2D": 2 * 60 * 32 * 5 * 16}
  assert counted.flops == 2 * 60 * 16 * 48 + 2 * 60 * 32 * 5 * 16
  assert counted.complete


def test_a_gradient_counts_both_conv_backprops_at_the_forward_cost():
  conv = keras.layers.Conv1D(8, 3, padding="valid")
  x = tf.zeros([2, 10, 4])
  conv(x)

  def loss_grads(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(conv(x))
    return tape.gradient(loss, [x, conv.kernel])

  counted = flops.count_call(loss_grads, x)
  forward = 2 * (2 * 8) * 8 * 3 * 4  # 2 × 8 valid frames × 8 channels × 3 taps × 4 inputs
  assert counted.by_op == {"Conv2D": forward, "Conv2DBackpropInput": forward,
                           "Conv2DBackpropFilter": forward}


def test_batch_matmul_and_einsum():
  def attention(q, k):
    return tf.matmul(q, k, transpose_b=True), tf.einsum("bhtd,bhsd->bhts", q, k)

  counted = flops.count_call(attention, tf.zeros([2, 3, 7, 5]), tf.zeros([2, 3, 11, 5]))
  expected = 2 * 2 * 3 * 7 * 11 * 5
  assert counted.by_op == {"BatchMatMulV2": expected, "Einsum": expected}


def test_loops_need_a_trip_count_and_branches_count_the_costlier_one():
  w = tf.ones([4, 4])

  @tf.function
  def loop(x, n):
    for _ in tf.range(n):  # AutoGraph: a While op whose trips the graph does not know
      x = tf.matmul(x, w)
    return tf.cond(n > 2, lambda: tf.matmul(tf.matmul(x, w), w), lambda: x)

  traced = flops.trace_static(loop, tf.zeros([3, 4]), tf.constant(6))
  one = 2 * 3 * 4 * 4
  unknown = flops.count(traced)
  assert unknown.flops == one + 2 * one and not unknown.complete and unknown.unknown_loops
  known = flops.count(traced, while_trips=6)
  assert known.flops == 6 * one + 2 * one and known.complete
  assert list(known.loops.values()) == [6]

  @tf.function
  def cheap_loop(x, n):
    for _ in tf.range(n):
      x = x + 1.0  # no costly op: the unknown trip count does not make the count partial
    return tf.matmul(x, w)

  assert flops.count_call(cheap_loop, tf.zeros([3, 4]), tf.constant(6)).complete


def test_dynamic_shapes_are_reported_not_guessed():
  @tf.function(input_signature=[tf.TensorSpec([None, 4])])
  def dense(x):
    return tf.matmul(x, tf.ones([4, 4]))

  counted = flops.count(dense.get_concrete_function())
  assert counted.flops == 0 and counted.unknown_ops and not counted.complete
  # trace_static retraces without the signature's None dims.
  assert flops.count_call(dense, tf.zeros([5, 4])).flops == 2 * 5 * 4 * 4
