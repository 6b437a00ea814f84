"""Synthetic in-memory datasets for the toy tasks (pure TF ops, checkpointable iterators)."""

import tensorflow as tf


def _seed(seed: int, index, salt: int):
  return tf.stack([tf.cast(seed, tf.int64) * 1000 + salt, tf.cast(index, tf.int64)])


def sequence_example(index, *, seed: int, in_channels: int, out_channels: int,
                     min_length: int, max_length: int):
  """One variable-length regression example; the target is a fixed causal filter of the input.

  Returns:
    {"inputs": [frames, in_channels], "targets": [frames, out_channels], "lengths": []}.
  """
  span = max_length - min_length + 1
  length = min_length + tf.cast(tf.math.floormod(index * 7, span), tf.int32)
  x = tf.random.stateless_normal([length, in_channels], _seed(seed, index, 1))
  weights = tf.random.stateless_normal([2, in_channels, out_channels], _seed(seed, 0, 2))
  previous = tf.pad(x[:-1], [[1, 0], [0, 0]])
  y = tf.tanh(tf.matmul(x, weights[0]) + 0.5 * tf.matmul(previous, weights[1]))
  return {"inputs": x, "targets": y, "lengths": length}


def sequence_dataset(*, seed, num_examples, batch_size, training, in_channels, out_channels,
                     min_length, max_length, first_index=0):
  """Padded batches of `sequence_example`s; training data is shuffled and repeats."""
  indices = tf.data.Dataset.range(first_index, first_index + num_examples)
  if training:
    # Shuffling indices (not examples) keeps the checkpointed buffer tiny.
    indices = indices.shuffle(num_examples, seed=seed, reshuffle_each_iteration=True).repeat()
  examples = indices.map(
      lambda i: sequence_example(i, seed=seed, in_channels=in_channels,
                                 out_channels=out_channels, min_length=min_length,
                                 max_length=max_length),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return examples.padded_batch(batch_size, drop_remainder=True).prefetch(2)


def gan_example(index, *, seed: int, cond_dim: int, signal_dim: int):
  """A conditioning vector and the "real" signal it determines (a sinusoid)."""
  cond = tf.random.stateless_uniform([cond_dim], _seed(seed, index, 3), -1.0, 1.0)
  t = tf.linspace(0.0, 1.0, signal_dim)
  frequency = 1.0 + 2.0 * tf.abs(cond[0])
  phase = 3.0 * cond[1 % cond_dim]
  signal = 0.8 * tf.sin(6.2831853 * frequency * t + phase)
  return {"cond": cond, "signal": signal}


def gan_dataset(*, seed, num_examples, batch_size, training, cond_dim, signal_dim,
                first_index=0):
  indices = tf.data.Dataset.range(first_index, first_index + num_examples)
  if training:
    indices = indices.shuffle(num_examples, seed=seed, reshuffle_each_iteration=True).repeat()
  examples = indices.map(lambda i: gan_example(i, seed=seed, cond_dim=cond_dim,
                                               signal_dim=signal_dim))
  return examples.batch(batch_size, drop_remainder=True).prefetch(2)
