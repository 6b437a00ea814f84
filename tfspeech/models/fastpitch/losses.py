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

  The same value as `tf.nn.ctc_loss` on these labels (see `_monotonic_ctc`), which on CPU
  runs a dense `[2P+2, 2P+2]` state transition per frame and was ~40% of a FastPitch
  train step.

  Args:
    log_prob: `[batch, frames, tokens]` alignment log-probabilities, padded tokens very
      negative (`AlignmentEncoder`'s second output).
    text_lengths, mel_lengths: `[batch]` int.

  Returns:
    `[batch]` float32 losses; average them over the batch (the reference's "mean").
  """
  text_lengths = tf.cast(text_lengths, tf.int32)
  mel_lengths = tf.cast(mel_lengths, tf.int32)
  log_prob = tf.cast(log_prob, tf.float32)
  blank = tf.fill(tf.stack([tf.shape(log_prob)[0], tf.shape(log_prob)[1], 1]), BLANK_LOGPROB)
  # The reference's log_softmax over [blank, tokens] (blank is class 0).
  normalized = tf.nn.log_softmax(tf.concat([blank, log_prob], axis=-1), axis=-1)
  feasible = (mel_lengths >= text_lengths) & (text_lengths > 0)
  # An infeasible item gets a one-token target, so the recursion never sees an impossible
  # path (whose gradient would be NaN); its loss is then dropped.
  label_lengths = tf.where(feasible, text_lengths, 1)
  losses = _monotonic_ctc(normalized[..., 0], normalized[..., 1:], label_lengths,
                          tf.maximum(mel_lengths, 1))
  per_token = losses / tf.cast(label_lengths, tf.float32)
  return tf.where(feasible & tf.math.is_finite(per_token), per_token, 0.0)


# "log 0" of the CTC recursions: finite, so max-shifted log-sum-exps of unreachable states
# stay finite (no inf - inf), and far below any reachable score (>= -1e9 per frame).
_LOG_ZERO = -1e30


def _logsumexp(*terms):
  """Elementwise log(sum(exp(terms))) of same-shape tensors, max-shifted."""
  top = terms[0]
  for term in terms[1:]:
    top = tf.maximum(top, term)
  return top + tf.math.log(tf.add_n([tf.exp(term - top) for term in terms]))


def _shift_right(x):
  """`[batch, n]` -> `[batch, n]`: x[:, j - 1], log 0 at j = 0 (the previous token)."""
  return tf.pad(x[:, :-1], [[0, 0], [1, 0]], constant_values=_LOG_ZERO)


@tf.custom_gradient
def _monotonic_ctc(blank_log_prob, token_log_prob, label_lengths, frame_lengths):
  """CTC negative log-likelihood of the labels 1..L (all distinct) by a banded recursion.

  The target is every token in order, so state j's only predecessors are itself, the blank
  before it and token j - 1 (a skip over the blank, allowed since consecutive labels
  differ): O(frames x tokens) per item, where `tf.nn.ctc_loss` does O(frames x tokens^2).
  Log-space forward (alpha) recursion in the call, backward (beta) in the gradient, which
  is the occupancy gamma = exp(alpha + beta - log p) of each emission (Graves 2006).

  Args:
    blank_log_prob: `[batch, frames]` normalised log-probability of the blank.
    token_log_prob: `[batch, frames, tokens]` normalised log-probabilities of the tokens.
    label_lengths: `[batch]` int32 tokens to emit (>= 1, <= frame_lengths).
    frame_lengths: `[batch]` int32 frames (>= 1).

  Returns:
    `[batch]` -log p(tokens 1..L | frames).
  """
  batch, frames = tf.shape(token_log_prob)[0], tf.shape(token_log_prob)[1]
  tokens = tf.shape(token_log_prob)[2]
  # Time-major per-frame inputs. States: token j (`[batch, tokens]`) and the blank before
  # token j (`[batch, tokens + 1]`; the last one follows the last token).
  # (Read by both passes: eager TensorArrays would otherwise drop an element once read.)
  token_frames = tf.TensorArray(tf.float32, size=frames, clear_after_read=False).unstack(
      tf.transpose(token_log_prob, [1, 0, 2]))
  blank_frames = tf.TensorArray(tf.float32, size=frames, clear_after_read=False).unstack(
      tf.transpose(blank_log_prob))
  last_frame = tf.expand_dims(frame_lengths - 1, 1)
  log_zero_tokens = tf.fill(tf.stack([batch, tokens]), _LOG_ZERO)

  def forward_frame(t, tok, blk):
    """(tok, blk) log alpha of frame t from frame t - 1's; frozen after an item's end."""
    emit_tok = token_frames.read(t)
    emit_blk = tf.expand_dims(blank_frames.read(t), 1)
    new_tok = _logsumexp(tok, blk[:, :-1], _shift_right(tok)) + emit_tok
    new_blk = _logsumexp(blk, tf.pad(tok, [[0, 0], [1, 0]], constant_values=_LOG_ZERO))
    new_blk = new_blk + emit_blk
    running = t <= last_frame
    return tf.where(running, new_tok, tok), tf.where(running, new_blk, blk)

  first_tok = tf.concat([token_frames.read(0)[:, :1], log_zero_tokens[:, 1:]], 1)
  first_blk = tf.concat([tf.expand_dims(blank_frames.read(0), 1),
                         tf.fill(tf.stack([batch, tokens]), _LOG_ZERO)], 1)
  alphas_tok = tf.TensorArray(tf.float32, size=frames).write(0, first_tok)
  alphas_blk = tf.TensorArray(tf.float32, size=frames).write(0, first_blk)

  def forward_step(t, tok, blk, alphas_tok, alphas_blk):
    tok, blk = forward_frame(t, tok, blk)
    return t + 1, tok, blk, alphas_tok.write(t, tok), alphas_blk.write(t, blk)

  _, tok, blk, alphas_tok, alphas_blk = tf.while_loop(
      lambda t, *_: t < frames, forward_step,
      (tf.constant(1), first_tok, first_blk, alphas_tok, alphas_blk))
  # The path ends on the last token or the blank after it.
  final_tok = tf.one_hot(label_lengths - 1, tokens, on_value=True, off_value=False)
  final_blk = tf.one_hot(label_lengths, tokens + 1, on_value=True, off_value=False)
  log_likelihood = tf.reduce_logsumexp(tf.concat(
      [tf.where(final_tok, tok, _LOG_ZERO), tf.where(final_blk, blk, _LOG_ZERO)], 1), 1)

  def grad(upstream, variables=None):
    del variables
    log_p = tf.expand_dims(log_likelihood, 1)
    scale = -tf.expand_dims(upstream, 1)  # d(-log p) = -gamma d(log y)
    end_tok = tf.where(final_tok, 0.0, _LOG_ZERO)
    end_blk = tf.where(final_blk, 0.0, _LOG_ZERO)

    def backward_step(t, next_tok, next_blk, grads_tok, grads_blk):
      """next_*: beta + emission of frame t + 1 (log 0 past the end)."""
      # Token j goes on to itself, the blank after it or token j + 1; blank j to itself or
      # token j.
      after_tok = tf.pad(next_tok[:, 1:], [[0, 0], [0, 1]], constant_values=_LOG_ZERO)
      beta_tok = _logsumexp(next_tok, next_blk[:, 1:], after_tok)
      beta_blk = _logsumexp(next_blk, tf.pad(next_tok, [[0, 0], [0, 1]],
                                             constant_values=_LOG_ZERO))
      at_end = t >= last_frame
      beta_tok = tf.where(at_end, end_tok, beta_tok)
      beta_blk = tf.where(at_end, end_blk, beta_blk)
      running = t <= last_frame
      gamma_tok = tf.where(running, tf.exp(alphas_tok.read(t) + beta_tok - log_p), 0.0)
      gamma_blk = tf.where(running, tf.exp(alphas_blk.read(t) + beta_blk - log_p), 0.0)
      grads_tok = grads_tok.write(t, scale * gamma_tok)
      grads_blk = grads_blk.write(t, scale[:, 0] * tf.reduce_sum(gamma_blk, 1))
      return (t - 1, beta_tok + token_frames.read(t),
              beta_blk + tf.expand_dims(blank_frames.read(t), 1), grads_tok, grads_blk)

    _, _, _, grads_tok, grads_blk = tf.while_loop(
        lambda t, *_: t >= 0, backward_step,
        (frames - 1, log_zero_tokens, tf.fill(tf.stack([batch, tokens + 1]), _LOG_ZERO),
         tf.TensorArray(tf.float32, size=frames), tf.TensorArray(tf.float32, size=frames)))
    return (tf.transpose(grads_blk.stack()), tf.transpose(grads_tok.stack(), [1, 0, 2]),
            None, None)

  return -log_likelihood, grad


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
