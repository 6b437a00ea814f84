"""Length masks for padded batches of sequences."""

import tensorflow as tf


def sequence_mask(lengths, max_length=None, dtype=tf.float32):
  """Marks the valid (unpadded) steps of each sequence in a batch.

  Args:
    lengths: `[batch]` integer lengths.
    max_length: size of the time axis of the result; defaults to `max(lengths)`.
    dtype: dtype of the result.

  Returns:
    `[batch, max_length]` tensor of `dtype`: 1 where `step < lengths[b]`, else 0.
  """
  lengths = tf.convert_to_tensor(lengths)
  if not lengths.dtype.is_integer:
    raise TypeError(f"sequence_mask: `lengths` must be an integer tensor, got {lengths.dtype}; "
                    "cast it with tf.cast(lengths, tf.int32).")
  if max_length is None:
    max_length = max_length_of(lengths)
  return tf.sequence_mask(lengths, max_length, dtype=dtype)


def max_length_of(lengths):
  """`max(lengths)`, or 0 for an empty batch (where `tf.reduce_max` gives the dtype's minimum).

  Args:
    lengths: `[batch]` integer lengths.

  Returns:
    A scalar of `lengths.dtype`.
  """
  lengths = tf.convert_to_tensor(lengths)
  return tf.reduce_max(tf.concat([lengths, tf.zeros([1], lengths.dtype)], axis=0))


def pair_mask(text_lengths, mel_lengths, text_max_length=None, mel_max_length=None,
              dtype=tf.float32):
  """Marks the valid (token, frame) cells of a batch of text-to-mel grids.

  Args:
    text_lengths: `[batch]` integer token counts.
    mel_lengths: `[batch]` integer frame counts.
    text_max_length: size of the token axis; defaults to `max(text_lengths)`.
    mel_max_length: size of the frame axis; defaults to `max(mel_lengths)`.
    dtype: dtype of the result.

  Returns:
    `[batch, text_max_length, mel_max_length]` tensor of `dtype`: 1 where both the token
    and the frame are within their sequence's length, else 0.
  """
  text_mask = sequence_mask(text_lengths, text_max_length, tf.bool)
  mel_mask = sequence_mask(mel_lengths, mel_max_length, tf.bool)
  # expand_dims, not [:, None]: TFLite cannot convert new-axis slices of bool tensors.
  return tf.cast(tf.expand_dims(text_mask, 2) & tf.expand_dims(mel_mask, 1), dtype)
