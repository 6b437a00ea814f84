import numpy as np
import pytest
import tensorflow as tf

from tfspeech import testing
from tfspeech.ops import sequence


def test_sequence_mask_matches_numpy():
  lengths = np.array([3, 0, 5, 1], np.int32)
  expected = (np.arange(5)[None, :] < lengths[:, None]).astype(np.float32)
  got = sequence.sequence_mask(lengths)
  assert got.dtype == tf.float32
  np.testing.assert_array_equal(got.numpy(), expected)


def test_sequence_mask_max_length_and_dtype():
  got = sequence.sequence_mask(tf.constant([2, 4], tf.int64), max_length=6, dtype=tf.bool)
  assert got.dtype == tf.bool
  np.testing.assert_array_equal(got.numpy(), np.arange(6)[None, :] < np.array([[2], [4]]))


def test_sequence_mask_empty_batch_has_zero_width():
  got = sequence.sequence_mask(tf.zeros([0], tf.int32))
  assert got.shape == (0, 0)


def test_sequence_mask_rejects_float_lengths():
  with pytest.raises(TypeError, match="lengths.*integer"):
    sequence.sequence_mask(tf.constant([1.0, 2.0]))


def test_max_length_of():
  assert int(sequence.max_length_of([3, 7, 2])) == 7
  assert int(sequence.max_length_of(tf.zeros([0], tf.int32))) == 0


def test_pair_mask_matches_numpy():
  text_lengths = np.array([2, 3, 0], np.int32)
  mel_lengths = np.array([4, 1, 2], np.int32)
  expected = ((np.arange(3)[None, :, None] < text_lengths[:, None, None])
              & (np.arange(5)[None, None, :] < mel_lengths[:, None, None]))
  got = sequence.pair_mask(text_lengths, mel_lengths, 3, 5)
  np.testing.assert_array_equal(got.numpy(), expected.astype(np.float32))
  assert sequence.pair_mask(text_lengths, mel_lengths).shape == (3, 3, 4)


def test_graph_mode_with_unknown_dims_has_no_python_ops():
  fn = tf.function(lambda t, m: sequence.pair_mask(t, m),
                   input_signature=[tf.TensorSpec([None], tf.int32)] * 2)
  concrete = fn.get_concrete_function()
  testing.assert_no_python_ops(concrete)
  np.testing.assert_array_equal(fn(tf.constant([1, 2]), tf.constant([2, 1])).numpy(),
                                [[[1, 1], [0, 0]], [[1, 0], [1, 0]]])
