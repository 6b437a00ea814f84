import tensorflow as tf

from tfspeech import testing


def test_python_ops_finds_py_function_inside_while_loop():
  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
  def escapes(x):
    def body(i, y):
      y = tf.py_function(lambda t: t * 2.0, [y], tf.float32)
      y.set_shape([None])
      return i + 1, y
    return tf.while_loop(lambda i, y: i < 2, body, [0, x])[1]

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
  def pure(x):
    return tf.while_loop(lambda i, y: i < 2, lambda i, y: (i + 1, y * 2.0), [0, x])[1]

  found = testing.python_ops(escapes.get_concrete_function())
  assert found and all(name.startswith("EagerPyFunc:") for name in found)
  assert testing.python_ops(pure.get_concrete_function()) == []
  try:
    testing.assert_no_python_ops(escapes.get_concrete_function())
  except AssertionError as e:
    assert "EagerPyFunc" in str(e)
  else:
    raise AssertionError("assert_no_python_ops accepted a py_function")


def test_summary_events_reads_back_what_a_run_logged(tmp_path):
  import numpy as np
  from tfspeech.testing import summary_events
  writer = tf.summary.create_file_writer(str(tmp_path / "train"))
  with writer.as_default():
    tf.summary.scalar("loss", 0.5, step=3)
    tf.summary.scalar("loss", 0.25, step=7)
    tf.summary.audio("audio/x", tf.zeros([1, 100, 1]), 22050, step=7)
  writer.close()
  found = summary_events(str(tmp_path), "train")
  assert {step: float(v) for step, v in found["loss"].items()} == {3: 0.5, 7: 0.25}
  assert list(found["audio/x"]) == [7] and isinstance(found["audio/x"][7], np.ndarray)
  assert summary_events(str(tmp_path), "eval") == {}
