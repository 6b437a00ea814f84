"""DC-TTS losses (paper section 4; Kyubyong/dc_tts train.py), masked to each item's lengths.

Each takes `masked_mean(values, mask)` (the trainer's `StepContext.masked_mean`, which divides
by the *global* count; `plain_masked_mean` for use outside a train step).
"""

import tensorflow as tf


def plain_masked_mean(values, mask):
  """Mean of `values` where the broadcast `mask` is 1 (outside a replica context)."""
  mask = tf.broadcast_to(tf.cast(mask, values.dtype), tf.shape(values))
  return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def spectral_losses(logits, targets, frame_mask, masked_mean=plain_masked_mean):
  """(L1, binary divergence) of sigmoid(logits) against targets in [0, 1].

  The binary divergence is the paper's D_bin: -S log Y - (1 - S) log(1 - Y), i.e. sigmoid
  cross-entropy on the logits (numerically safe, as Kyubyong's).

  Args:
    logits: `[batch, frames, bins]`; targets: the same shape in [0, 1].
    frame_mask: `[batch, frames, 1]` 1 on valid frames.
  """
  l1 = masked_mean(tf.abs(tf.sigmoid(logits) - targets), frame_mask)
  divergence = masked_mean(
      tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits), frame_mask)
  return l1, divergence


def guided_attention_weights(text_lengths, frame_lengths, tokens, frames, g):
  """W[b, t, n] = 1 - exp(-(n / N_b - t / T_b)^2 / (2 g^2)) with each item's own N_b, T_b.

  Returns `[batch, frames, tokens]`: near 0 on the diagonal, near 1 far from it.
  """
  n = tf.reshape(tf.cast(tf.range(tokens), tf.float32), [1, 1, -1])
  t = tf.reshape(tf.cast(tf.range(frames), tf.float32), [1, -1, 1])
  big_n = tf.reshape(tf.cast(tf.maximum(text_lengths, 1), tf.float32), [-1, 1, 1])
  big_t = tf.reshape(tf.cast(tf.maximum(frame_lengths, 1), tf.float32), [-1, 1, 1])
  return 1.0 - tf.exp(-tf.square(n / big_n - t / big_t) / (2.0 * g * g))


def guided_attention_loss(alignments, text_lengths, frame_lengths, g,
                          masked_mean=plain_masked_mean):
  """Mean of A * W over each item's valid (frame, token) pairs.

  Args:
    alignments: `[batch, frames, tokens]` attention weights.
    text_lengths, frame_lengths: `[batch]` valid tokens and (coarse) frames.
    g: the width of the diagonal band (0.2 in the paper).
  """
  frames, tokens = tf.shape(alignments)[1], tf.shape(alignments)[2]
  weights = guided_attention_weights(text_lengths, frame_lengths, tokens, frames, g)
  mask = tf.logical_and(tf.expand_dims(tf.sequence_mask(frame_lengths, frames), 2),
                        tf.expand_dims(tf.sequence_mask(text_lengths, tokens), 1))
  return masked_mean(alignments * weights, tf.cast(mask, tf.float32))


def diagonality(alignments, text_lengths, frame_lengths, g=0.2):
  """Share of attention mass inside the guided band (1 - the unnormalised A * W mass): 1 for
  a perfectly diagonal attention; a number to log and quote, not a loss."""
  frames, tokens = tf.shape(alignments)[1], tf.shape(alignments)[2]
  weights = guided_attention_weights(text_lengths, frame_lengths, tokens, frames, g)
  frame_mask = tf.sequence_mask(frame_lengths, frames, tf.float32)
  off = tf.reduce_sum(alignments * weights, axis=2) * frame_mask
  return 1.0 - tf.reduce_sum(off) / tf.maximum(tf.reduce_sum(frame_mask), 1.0)
