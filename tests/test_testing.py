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
