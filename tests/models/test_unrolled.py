"""tfspeech.models.unrolled: one traced step function per owner, key and inlining mode."""

import gc
import weakref

import numpy as np
import tensorflow as tf

from tfspeech.models import unrolled


class _Owner:
  def __init__(self):
    self.traces = 0

  def step(self, x):
    self.traces += 1
    return 2.0 * x


def _noinline(fn, *specs):
  concrete = fn.get_concrete_function(*specs)
  attr = concrete.function_def.attr.get("_noinline")
  return bool(attr and attr.b)


def test_one_function_per_owner_and_key_traced_once_for_every_shape():
  owner = _Owner()
  spec = [tf.TensorSpec([None], tf.float32)]
  fn = unrolled.step_function(owner, "step", owner.step, spec)
  assert unrolled.step_function(owner, "step", owner.step, spec) is fn
  assert unrolled.step_function(owner, "other", owner.step, spec) is not fn
  assert unrolled.step_function(_Owner(), "step", owner.step, spec) is not fn
  np.testing.assert_allclose(fn(tf.ones([3])).numpy(), [2.0] * 3)
  fn(tf.ones([5]))
  assert owner.traces == 1
  assert not _noinline(fn, *spec)


def test_calls_not_inlined_marks_the_functions_made_inside_it_and_nests():
  owner = _Owner()
  spec = [tf.TensorSpec([None], tf.float32)]
  inlined = unrolled.step_function(owner, "step", owner.step, spec)
  assert not unrolled.not_inlined()
  with unrolled.calls_not_inlined():
    with unrolled.calls_not_inlined():
      assert unrolled.not_inlined()
    assert unrolled.not_inlined()
    called = unrolled.step_function(owner, "step", owner.step, spec)
  assert not unrolled.not_inlined()
  assert called is not inlined and _noinline(called, *spec) and not _noinline(inlined, *spec)
  # The same function again for each mode, not a new one per call.
  assert unrolled.step_function(owner, "step", owner.step, spec) is inlined
  with unrolled.calls_not_inlined():
    assert unrolled.step_function(owner, "step", owner.step, spec) is called


def test_a_caller_keeps_the_call_only_when_not_inlined():
  """Traced into a caller, every unrolled step is a call of the one function (traced once)."""
  owner = _Owner()
  spec = [tf.TensorSpec([None], tf.float32)]
  with unrolled.calls_not_inlined():
    step = unrolled.step_function(owner, "step", owner.step, spec)

  @tf.function(input_signature=spec)
  def caller(x):
    for _ in range(3):
      x = step(x)
    return x
  np.testing.assert_allclose(caller(tf.ones([2])).numpy(), [8.0, 8.0])
  graph = caller.get_concrete_function().graph
  calls = [op for op in graph.get_operations() if op.type in ("PartitionedCall",
                                                             "StatefulPartitionedCall")]
  assert len(calls) == 3 and len({op.get_attr("f").name for op in calls}) == 1
  assert owner.traces == 1


def test_the_functions_do_not_keep_their_owner_alive():
  owner = _Owner()
  spec = [tf.TensorSpec([None], tf.float32)]
  unrolled.step_function(owner, "step", owner.step, spec)(tf.ones([2]))
  with unrolled.calls_not_inlined():
    unrolled.step_function(owner, "step", owner.step, spec)(tf.ones([2]))
  alive = weakref.ref(owner)
  del owner
  gc.collect()
  assert alive() is None
