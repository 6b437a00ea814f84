"""FastPitch 1.1 losses (reference `loss_function.py`, `attn_loss_function.py`, `train.py`).

Each masked mean takes a `masked_mean(values, mask)` callable so the task can pass the
trainer's `ctx.masked_mean` (a replica's share of the global-batch mean); the default is the
plain mean over the mask.
"""

import tensorflow as tf

# Log-probability of the CTC blank (the reference's `blank_logprob=-1`).
BLANK_LOGPROB = -1.0


def plain_masked_mean(values, mask):
  """sum(values * mask) / sum(mask), mask broadcast to values."""
  values = tf.cast(values, tf.float32)
  mask = tf.broadcast_to(tf.cast(mask, tf.float32), tf.shape(values))
  return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def mel_loss(predicted, target, frame_mask, masked_mean=plain_masked_mean):
  """MSE over real frames and all bins; `[batch, frames, n_mels]` mels, `[batch, frames]` mask.

  The reference masks `mel_tgt != 0` (its padding is 0); here the frame mask from lengths.
  """
  return masked_mean(tf.square(predicted - target), frame_mask[:, :, None])


def duration_loss(log_duration_predicted, durations, token_mask,
                  masked_mean=plain_masked_mean):
  """MSE between predicted log-durations and log(1 + target frames), over real tokens."""
  target = tf.math.log(tf.cast(durations, tf.float32) + 1.0)
  return masked_mean(tf.square(log_duration_predicted - target), token_mask)


def token_loss(predicted, target, token_mask, masked_mean=plain_masked_mean):
  """MSE per token over real tokens (pitch and energy)."""
  return masked_mean(tf.square(predicted - target), token_mask)


def attention_ctc_loss(log_prob, text_lengths, mel_lengths):
  """The reference `AttentionCTCLoss` per item: `[batch]`, each divided by its token count.

  Every frame "emits" one token or a blank (log-probability -1 before normalising), and
  the target sequence is tokens 1..P in order, so the loss is the negative log-likelihood
  of all monotonic alignments. As the reference (`zero_infinity=True`), an item with fewer
  frames than tokens, which has no such alignment, gets 0 (and no gradient).

  Args:
    log_prob: `[batch, frames, tokens]` alignment log-probabilities, padded tokens very
      negative (`AlignmentEncoder`'s second output).
    text_lengths, mel_lengths: `[batch]` int.

  Returns:
    `[batch]` float32 losses; average them over the batch (the reference's "mean").
  """
  text_lengths = tf.cast(text_lengths, tf.int32)
  mel_lengths = tf.cast(mel_lengths, tf.int32)
  batch, tokens = tf.shape(log_prob)[0], tf.shape(log_prob)[2]
  blank = tf.fill(tf.stack([batch, tf.shape(log_prob)[1], 1]), BLANK_LOGPROB)
  logits = tf.concat([blank, tf.cast(log_prob, tf.float32)], axis=-1)  # blank is class 0
  labels = tf.tile(tf.range(1, tokens + 1)[None], tf.stack([batch, 1]))
  feasible = (mel_lengths >= text_lengths) & (text_lengths > 0)
  # An infeasible item gets a one-label target, so the op never sees an impossible path
  # (whose gradient would be NaN); its loss is then dropped.
  label_lengths = tf.where(feasible, text_lengths, 1)
  losses = tf.nn.ctc_loss(labels, logits, label_lengths, tf.maximum(mel_lengths, 1),
                          logits_time_major=False, blank_index=0)
  per_token = losses / tf.cast(tf.maximum(label_lengths, 1), tf.float32)
  return tf.where(feasible & tf.math.is_finite(per_token), per_token, 0.0)


def binarization_loss(hard, soft, masked_mean=plain_masked_mean, eps=1e-12):
  """The reference `AttentionBinarizationLoss`: -mean log soft over the cells of the hard path."""
  return masked_mean(-tf.math.log(tf.maximum(soft, eps)), hard)


def binarization_weight(step, config):
  """The reference's kl weight: 0 before the start, then a linear ramp to `kl_loss_weight`."""
  step = tf.cast(step, tf.float32)
  start = float(config.kl_loss_start_step)
  warmup = float(max(config.kl_loss_warmup_steps, 1))
  ramp = tf.minimum((step - start) / warmup, 1.0) if config.kl_loss_warmup_steps else 1.0
  return tf.where(step >= start, ramp * config.kl_loss_weight, 0.0)
