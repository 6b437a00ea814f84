"""Text-to-mel alignment ops: monotonic alignment search, durations, length regulation, priors.

Layouts follow the references: alignment grids are `[batch, text, mel]` as in glow-tts and
Grad-TTS; the beta-binomial prior is `[batch, mel, text]` as in FastPitch.
"""

import tensorflow as tf

from tfspeech.ops import sequence

# The glow-tts reference seeds impossible moves with this finite value, not -inf; a path whose
# score falls below it compares differently, so it must be the same float32 number here.
_MAX_NEG_VAL = -1e9


def _new_frame_store(size, element_shape, static_element_shape, dtype, preallocated):
  """Somewhere to put one tensor per loop step: a TensorArray or a preallocated tensor.

  A TensorArray is the fast choice in graph mode and under XLA, but TFLite converts it only
  when every element dimension is static, which `None` batch or text dims are not. A
  preallocated tensor updated with `tensor_scatter_nd_update` converts to TFLite builtins at
  any shape and is as fast under XLA (which updates it in place), but plain graph mode copies
  the whole buffer on every step.
  """
  if preallocated:
    return tf.zeros(tf.concat([[size], element_shape], axis=0), dtype)
  return tf.TensorArray(dtype, size=size, element_shape=static_element_shape)


def _frame_store_write(store, step, element):
  if isinstance(store, tf.TensorArray):
    return store.write(step, element)
  return tf.tensor_scatter_nd_update(store, [[step]], element[None])


def _frame_store_stack(store):
  return store.stack() if isinstance(store, tf.TensorArray) else store


# Mel frames per forward-loop iteration. A one-frame loop body costs XLA more per iteration
# than the frame's arithmetic; 16 measured fastest on CPU at B16 x 150 x 800.
_FRAMES_PER_BLOCK = 16
# Backtrack steps per loop iteration (the same trade-off, on [batch]-sized work).
_STEPS_PER_BLOCK = 8


# Its loops are explicit tf.while_loops: autograph has nothing to convert, and converting
# this module's functions cost 0.4–0.6 s of every train step's first trace.
@tf.autograph.experimental.do_not_convert
def maximum_path(log_likelihood, text_lengths, mel_lengths, tflite_compatible=False):
  """Monotonic alignment search (MAS) of glow-tts / Grad-TTS, batched and masked.

  Finds, per batch item, the monotonic path from (token 0, frame 0) to (last token, last frame)
  that maximizes the summed log-likelihood, each frame assigned to exactly one token and each
  step either staying on a token or moving to the next. The result is identical to the
  reference Cython `maximum_path_c` of jaywalnut310/glow-tts (`monotonic_align/core.pyx`, also
  used by Grad-TTS), ties and float32 rounding included: scores are float32 whatever the input
  dtype, each cell is `max(stay, advance) + value` in that order, impossible moves are seeded
  with -1e9, and on a tie the backtrack stays on the current token.

  When `mel_lengths[b] < text_lengths[b]` no path can give every token a frame. Like the
  reference, the result then still assigns each of the `mel_lengths[b]` frames to one token,
  walking back from the last token at the last frame and moving to the previous token where
  the input log-likelihood of the previous frame is larger (no DP runs in this case);
  the first tokens get no frame. Items with a zero length get an all-zero path; lengths larger
  than the tensor dims are clipped to them.

  The op has no gradient (the path is piecewise constant); its output is wrapped in
  `tf.stop_gradient`, as models use it.

  It runs eagerly, under `tf.function` with `None` dims and under XLA. The forward DP is a
  `tf.while_loop` over blocks of mel frames, each frame one vector step over all tokens and
  batch items, keeping one bit per cell for the backtrack (did the previous token score
  higher); the backtrack is a reverse `tf.while_loop` over frames for all items at once.

  Args:
    log_likelihood: `[batch, text, mel]` float tensor; padding may hold anything.
    text_lengths: `[batch]` integer token counts.
    mel_lengths: `[batch]` integer frame counts.
    tflite_compatible: store per-frame results in preallocated tensors instead of
      TensorArrays, so the graph converts to TFLite builtins (`TFLITE_BUILTINS` only) with
      `None` dims; with False, conversion fails unless batch and text dims are static. About
      as fast under XLA, slower in plain graph mode (every step copies the buffer); keep False
      unless exporting to TFLite. Both give identical paths.

  Returns:
    `[batch, text, mel]` tensor of `log_likelihood.dtype`, 1 on the path and 0 elsewhere
    (including padding).
  """
  log_likelihood = tf.convert_to_tensor(log_likelihood)
  if log_likelihood.shape.rank is not None and log_likelihood.shape.rank != 3:
    raise ValueError("maximum_path: `log_likelihood` must be [batch, text, mel], got shape "
                     f"{log_likelihood.shape}.")
  static_shape = log_likelihood.shape
  text_size = tf.shape(log_likelihood)[1]
  mel_size = tf.shape(log_likelihood)[2]
  text_lengths = tf.minimum(_as_lengths(text_lengths, "text_lengths", "maximum_path"), text_size)
  mel_lengths = tf.minimum(_as_lengths(mel_lengths, "mel_lengths", "maximum_path"), mel_size)

  # No masking pass: the reference multiplies by the mask, but no cell it reads is padding
  # (see _forward), so padding is ignored whatever it holds, inf and nan included.
  values = tf.cast(log_likelihood, tf.float32)
  # A 1 that no compiler can prove is 1. Dividing by it is exact (x / 1 == x for every float;
  # truncating division for ints) and makes XLA materialize the result: without it XLA fuses
  # each unrolled frame into its consumers and recomputes it (2^k work for k frames).
  one_int = tf.cast(tf.reduce_min(text_lengths) >= 0, tf.int32)

  moves = _forward(values, text_lengths, mel_lengths, tf.cast(one_int, tf.float32),
                   static_shape, tflite_compatible)
  token_per_frame = _backtrack(moves, text_lengths, mel_lengths, one_int, static_shape,
                               tflite_compatible)  # [batch, mel], -1 off the path
  if not tflite_compatible:
    # XLA does not fuse across a conditional: the small [batch, mel] transpose is done once
    # here, not per element of the [batch, text, mel] result (measured 2-5 ms at B16 x 800).
    token_per_frame = tf.cond(one_int > 0, lambda: token_per_frame,
                              lambda: tf.zeros_like(token_per_frame))
  # TFLite has no new-axis slicing of bool/int tensors, hence expand_dims/reshape throughout.
  path = tf.reshape(tf.range(text_size), [1, -1, 1]) == tf.expand_dims(token_per_frame, 1)
  return tf.stop_gradient(tf.cast(path, log_likelihood.dtype))


def _forward(values, text_lengths, mel_lengths, one, static_shape, tflite_compatible):
  """The reference's forward DP over `[batch, text, mel]` float32 `values`.

  Every cell of every frame is computed, but a cell of the reference's band (token `x` at frame
  `y` with `text_length - mel_length + y <= x <= y`) reads only band cells of frame `y - 1`,
  except the stay move on the diagonal, which is -1e9 as in the reference; the backtrack reads
  band cells only. So cells outside the band may hold anything (nan from padding included).
  Items with `mel_length < text_length`, where the reference runs no DP and backtracks on its
  input, keep their input values.

  The carry is `[batch, K + text]` scores: K columns before token 0, the last of which is the
  score of entering token 0 (0 before frame 0, -1e9 after). A frame reads it shifted by one
  column as two slices and drops the first column, so the K frames of a block are plain
  slices and selects (which XLA vectorizes); one concat per block restores the width.

  Returns:
    `[mel, batch, text]` bool `moves`: `moves[y, b, x]` is the backtrack's test
    `score[x] < score[x - 1]` on the scores of frame `y - 1`. `moves[0]` and `moves[:, :, 0]`
    are never read.
  """
  block = _FRAMES_PER_BLOCK
  batch_size, text_size, mel_size = tf.unstack(tf.shape(values))
  neg = tf.constant(_MAX_NEG_VAL, tf.float32)
  columns = tf.expand_dims(tf.range(-block, text_size), 0)  # tokens of a block's first carry
  runs_dp = tf.expand_dims(mel_lengths >= text_lengths, 1)

  def load(frames):
    """`[len(frames), batch, K + text]` values, K zero columns first."""
    frame_values = tf.transpose(tf.gather(values, frames, axis=2), [2, 0, 1])
    return tf.pad(frame_values, [[0, 0], [0, 0], [block, 0]]) / one

  def frame(y, k, scores, frame_values):
    """Frame `y`, the `k`-th of its block: `[batch, K + text - k]` scores, one column less out."""
    tokens = columns[:, k + 1:]
    frame_values = frame_values[:, k + 1:]
    # Staying on a token is impossible on the diagonal (the reference's `x == y`).
    stay = tf.where(tokens < y, scores[:, 1:], neg)
    # max(a, b) + v, in this order, rounds exactly like the reference.
    updated = tf.where(runs_dp, tf.maximum(stay, scores[:, :-1]) + frame_values, frame_values)
    return tf.where(tokens < 0, neg, updated) / one

  def record(k, scores):
    """The `[batch, text]` moves of a carry `k` frames into its block."""
    return scores[:, block - k:] < scores[:, block - k - 1:-1]

  left_columns = tf.fill(tf.stack([batch_size, block]), neg)

  def block_step(y, scores, moves):
    frame_values = tf.unstack(load(tf.minimum(y + tf.range(block), mel_size - 1)), block)
    for k in range(block):
      moves = _frame_store_write(moves, y + k, record(k, scores))
      scores = frame(y + k, k, scores, frame_values[k])
    return y + block, tf.concat([left_columns, scores], 1), moves

  def frame_step(y, scores, moves):
    moves = _frame_store_write(moves, y, record(0, scores))
    scores = frame(y, 0, scores, load(tf.reshape(y, [1]))[0])
    return y + 1, tf.concat([left_columns[:, :1], scores], 1), moves

  scores = tf.concat([tf.fill(tf.stack([batch_size, block - 1]), neg),
                      tf.zeros(tf.stack([batch_size, 1])),
                      tf.fill(tf.stack([batch_size, text_size]), neg)], 1)
  moves = _new_frame_store(mel_size, tf.stack([batch_size, text_size]), static_shape[:2],
                           tf.bool, tflite_compatible)
  y, scores, moves = tf.while_loop(lambda y, *_: y + block <= mel_size, block_step,
                                   (tf.constant(0), scores, moves))
  _, _, moves = tf.while_loop(lambda y, *_: y < mel_size, frame_step, (y, scores, moves))
  return _frame_store_stack(moves)


def _backtrack(moves, text_lengths, mel_lengths, one_int, static_shape, tflite_compatible):
  """The reference's backtrack for all items at once; `[batch, mel]` tokens, -1 off the path."""
  steps = _STEPS_PER_BLOCK
  mel_size, batch_size, text_size = tf.unstack(tf.shape(moves))
  flat_moves = tf.reshape(moves, [-1])
  if not moves.shape.num_elements():
    # Possibly empty: a spare element keeps the (unused) gathers in range. Skipped when the
    # size is known, as it copies the whole buffer.
    flat_moves = tf.concat([flat_moves, [False]], axis=0)
  last_move = tf.size(flat_moves) - 1
  has_text = text_lengths > 0
  batch_index = tf.range(batch_size)

  def step(frame, token):
    # From the last token at the last frame, move to the previous token when forced onto the
    # diagonal or when it scored strictly higher. Index clipping only matters where `lookup`
    # is False (inactive items, token 0, frame 0, empty dims).
    active = (frame < mel_lengths) & has_text
    lookup = active & (token > 0) & (frame > 0)
    previous_move = tf.gather(flat_moves, tf.clip_by_value(
        (frame * batch_size + batch_index) * text_size + token, 0, last_move)) & lookup
    step_back = active & (token != 0) & ((token == frame) | previous_move)
    next_token = tf.truncatediv(token - tf.cast(step_back, tf.int32), one_int)
    return tf.where(active, token, -1), next_token

  def block_step(frame, token, path_tokens):
    for k in range(steps):
      on_path, token = step(frame - k, token)
      path_tokens = _frame_store_write(path_tokens, frame - k, on_path)
    return frame - steps, token, path_tokens

  def frame_step(frame, token, path_tokens):
    on_path, token = step(frame, token)
    return frame - 1, token, _frame_store_write(path_tokens, frame, on_path)

  path_tokens = _new_frame_store(mel_size, tf.expand_dims(batch_size, 0), static_shape[:1],
                                 tf.int32, tflite_compatible)
  frame, token, path_tokens = tf.while_loop(lambda frame, *_: frame >= steps - 1, block_step,
                                            (mel_size - 1, text_lengths - 1, path_tokens))
  _, _, path_tokens = tf.while_loop(lambda frame, *_: frame >= 0, frame_step,
                                    (frame, token, path_tokens))
  return tf.transpose(_frame_store_stack(path_tokens))


def _as_lengths(lengths, name, op_name):
  lengths = tf.convert_to_tensor(lengths)
  if not lengths.dtype.is_integer:
    raise TypeError(f"{op_name}: `{name}` must be an integer tensor, got {lengths.dtype}; cast "
                    "it with tf.cast(..., tf.int32).")
  if lengths.shape.rank is not None and lengths.shape.rank != 1:
    raise ValueError(f"{op_name}: `{name}` must be [batch], got shape {lengths.shape}.")
  return tf.maximum(tf.cast(lengths, tf.int32), 0)


def path_to_durations(path):
  """Counts the mel frames assigned to each token of an alignment path.

  Args:
    path: `[batch, text, mel]` 0/1 alignment, e.g. from `maximum_path`.

  Returns:
    `[batch, text]` int32 frame counts.
  """
  path = tf.convert_to_tensor(path)
  if path.shape.rank is not None and path.shape.rank != 3:
    raise ValueError(f"path_to_durations: `path` must be [batch, text, mel], got shape "
                     f"{path.shape}.")
  return tf.cast(tf.reduce_sum(tf.cast(path, tf.int32), axis=2), tf.int32)


def durations_to_path(durations, mel_length=None, dtype=tf.float32):
  """Expands per-token frame counts into a hard alignment (glow-tts / Grad-TTS `generate_path`).

  Token `x` covers frames `[cumsum(durations)[x - 1], cumsum(durations)[x])`; frames past the
  total duration, or past `mel_length`, are covered by no token.

  Args:
    durations: `[batch, text]` integer frame counts (zero for padding tokens).
    mel_length: size of the mel axis; defaults to the largest total duration.
    dtype: dtype of the result.

  Returns:
    `[batch, text, mel_length]` tensor of `dtype`, 1 where the token covers the frame.
  """
  durations = tf.convert_to_tensor(durations)
  if not durations.dtype.is_integer:
    raise TypeError(f"durations_to_path: `durations` must be integer frame counts, got "
                    f"{durations.dtype}; round them first (e.g. tf.cast(tf.round(d), tf.int32)).")
  durations = tf.maximum(tf.cast(durations, tf.int32), 0)
  ends = tf.cumsum(durations, axis=1)
  if mel_length is None:
    mel_length = sequence.max_length_of(tf.reduce_sum(durations, axis=1))
  frames = tf.reshape(tf.range(mel_length), [1, 1, -1])
  # A cumulative mask minus its predecessor's: glow-tts's sequence_mask-and-difference form.
  path = ((frames < tf.expand_dims(ends, 2)) & (frames >= tf.expand_dims(ends - durations, 2)))
  return tf.cast(path, dtype)


def length_regulate(encodings, durations, max_length=None, pace=1.0):
  """Repeats each token's encoding for its duration (FastPitch `regulate_len`).

  Durations are divided by `pace` and rounded as NVIDIA FastPitch does, `int(d / pace + 0.5)`
  in float32 (so halves round up); negative durations count as 0. Built from cumulative sums
  and comparisons (no loops), so it runs under XLA and converts to TFLite builtins.

  Args:
    encodings: `[batch, text, channels]` token encodings.
    durations: `[batch, text]` frame counts, integer or float (predicted).
    max_length: optional int or scalar tensor: the output is cut to at most this many frames
      and `out_lengths` clipped to it, as FastPitch's `mel_max_len`.
    pace: speaking-rate factor (> 1 is faster): a Python float or a scalar or `[batch]` tensor.

  Returns:
    A tuple `(expanded, out_lengths)`: `[batch, frames, channels]` encodings, zero past each
    item's length, where `frames = min(max(out_lengths before clipping), max_length)`; and
    `[batch]` int32 frame counts.
  """
  encodings = tf.convert_to_tensor(encodings)
  durations = tf.convert_to_tensor(durations)
  if encodings.shape.rank is not None and encodings.shape.rank != 3:
    raise ValueError("length_regulate: `encodings` must be [batch, text, channels], got shape "
                     f"{encodings.shape}.")
  if durations.shape.rank is not None and durations.shape.rank != 2:
    raise ValueError("length_regulate: `durations` must be [batch, text], got shape "
                     f"{durations.shape}.")
  if isinstance(pace, (int, float)) and pace <= 0:
    raise ValueError(f"length_regulate: `pace` must be positive (1.0 = normal speed), got {pace}.")
  pace = tf.cast(pace, tf.float32)
  if pace.shape.rank == 1:
    pace = tf.expand_dims(pace, 1)
  repeats = tf.cast(tf.cast(durations, tf.float32) / pace + 0.5, tf.int32)
  repeats = tf.maximum(repeats, 0)
  ends = tf.cumsum(repeats, axis=1)
  out_lengths = tf.reduce_sum(repeats, axis=1)
  num_frames = sequence.max_length_of(out_lengths)
  if max_length is not None:
    max_length = tf.cast(max_length, tf.int32)
    num_frames = tf.minimum(num_frames, max_length)
    out_lengths = tf.minimum(out_lengths, max_length)
  frames = tf.range(num_frames)
  # Token of each frame = how many tokens end at or before it; tokens of zero duration are
  # skipped and frames past the end land on index `text`, i.e. nothing.
  token = tf.reduce_sum(
      tf.cast(tf.expand_dims(ends, 1) <= tf.reshape(frames, [1, -1, 1]), tf.int32), axis=2)
  in_length = tf.expand_dims(frames, 0) < tf.expand_dims(out_lengths, 1)
  token = tf.where(in_length, token, 0)
  # One flat gather rather than `batch_dims=1`: TFJS's wasm backend gathers wrong rows for
  # every item after the first with batch_dims (TF, TFLite and TFJS's cpu backend agree).
  text = tf.shape(encodings)[1]
  flat_token = token + tf.expand_dims(tf.range(tf.shape(token)[0]) * text, 1)
  channels = encodings.shape[2] if encodings.shape[2] is not None else tf.shape(encodings)[2]
  flat = tf.reshape(encodings, tf.stack([-1, channels]))
  expanded = tf.gather(flat, flat_token)
  expanded = tf.where(tf.expand_dims(in_length, 2), expanded, tf.zeros([], encodings.dtype))
  return expanded, out_lengths


def beta_binomial_prior(text_lengths, mel_lengths, scaling=1.0, dtype=tf.float32):
  """Beta-binomial alignment prior of FastPitch (`beta_binomial_prior_distribution`), batched.

  For an item with `P` tokens and `M` frames, frame `i` (1-based) gets the
  Beta-Binomial(n=P, a=scaling * i, b=scaling * (M + 1 - i)) probabilities of tokens
  `0 .. P-1`, exactly FastPitch's formula (note n is P, not P - 1, so a row sums to slightly
  less than 1). Computed in float64 with `lgamma`, cast to `dtype`.

  Args:
    text_lengths: `[batch]` integer token counts `P`.
    mel_lengths: `[batch]` integer frame counts `M`.
    scaling: the Beta parameters' scale (FastPitch's default 1.0).
    dtype: dtype of the result.

  Returns:
    `[batch, max(mel_lengths), max(text_lengths)]` tensor of `dtype`, FastPitch's
    `[mel, text]` layout per item, zero in padding.
  """
  text_lengths = _as_lengths(text_lengths, "text_lengths", "beta_binomial_prior")
  mel_lengths = _as_lengths(mel_lengths, "mel_lengths", "beta_binomial_prior")
  mask = sequence.pair_mask(mel_lengths, text_lengths, dtype=tf.bool)
  n = tf.cast(text_lengths, tf.float64)[:, None, None]
  num_mels = tf.cast(mel_lengths, tf.float64)[:, None, None]
  k = tf.cast(tf.range(tf.shape(mask)[2]), tf.float64)[None, None, :]
  i = tf.cast(tf.range(1, tf.shape(mask)[1] + 1), tf.float64)[None, :, None]
  scaling = tf.cast(scaling, tf.float64)
  a = scaling * i
  b = scaling * (num_mels + 1.0 - i)
  lgamma = tf.math.lgamma
  log_choose = lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0)
  log_beta_ratio = (lgamma(k + a) + lgamma(n - k + b) - lgamma(n + a + b)
                    - lgamma(a) - lgamma(b) + lgamma(a + b))
  # Padding cells can hold non-positive Beta parameters; select, not multiply, to drop them.
  prior = tf.where(mask, tf.exp(log_choose + log_beta_ratio), 0.0)
  return tf.cast(prior, dtype)
