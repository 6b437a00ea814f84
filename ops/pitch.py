"""Fundamental frequency (f0) by YIN, and FastPitch's per-token pitch averaging, in TF ops.

`yin_pitch` follows `librosa.yin` (0.11) step for step so its periods match:
librosa's difference function (autocorrelation by FFT, energy term summed over
the first `tau` samples only), the cumulative mean normalized difference
(CMNDF), librosa's trough test (first lag is a trough when below the second,
interior lags when below the left and not above the right neighbour, the last
lag when below its left neighbour), the first trough under `threshold`, else
the global minimum, and librosa's parabolic refinement (no shift at the ends of
the lag range or when the vertex lies more than one lag away).

So on every voiced frame f0 is librosa.yin's value (to float32 round-off).

Voicing is our addition (librosa.yin returns a period for every frame): a frame
is voiced when the lag librosa picks is a trough of the CMNDF and its CMNDF is
under `voicing_threshold`. Unvoiced frames get f0 = 0. The trough threshold
(0.1) alone makes a poor voicing rule for this CMNDF: librosa's difference
function leaves the energy of the frame's last `tau` samples in, so even clean
voiced speech sits at 0.1-0.5, while noise and fricatives sit above ~0.75. With
`voicing_threshold=0.6`, frames agree with `librosa.pyin`'s voiced flag on ~90%
of espeak-ng speech frames; `voicing_threshold=threshold` gives the strict rule
(only frames where librosa's absolute threshold, not its global-minimum
fallback, chose the period).
"""

import math

import numpy as np
import tensorflow as tf

_PAD_MODES = {"constant": "CONSTANT", "reflect": "REFLECT"}


def yin_pitch(audio, sample_rate, frame_length, hop_length, fmin, fmax, threshold=0.1,
              center=True, voicing_threshold=0.6, pad_mode="constant",
              return_periodicity=False, name=None):
  """Estimates f0 per frame with YIN, framed like `librosa.yin`.

  Args:
    audio: float tensor `[batch, samples]` (or `[samples]`); `samples` may be
      dynamic.
    sample_rate: Python number, Hz.
    frame_length: Python int, samples per analysis frame; must hold more than
      one period of `fmin`, and low voices are only called voiced when it holds
      about four (e.g. 2048 at 22050 Hz for f0 down to ~65 Hz).
    hop_length: Python int, samples between frame centres. With `center` and an
      even `frame_length` there are `1 + samples // hop_length` frames, the
      same as a centred STFT/mel spectrogram with this hop.
    fmin: lowest f0 searched, Hz (> 0).
    fmax: highest f0 searched, Hz (<= sample_rate / 2).
    threshold: CMNDF trough threshold (librosa's `trough_threshold`): the
      period is the first trough under it, else the global minimum.
    center: pad `frame_length // 2` samples on both sides so frame `t` is
      centred on sample `t * hop_length` (librosa's default).
    voicing_threshold: frames whose chosen period's CMNDF is at or above this
      (or whose chosen lag is no trough, as in silence) are unvoiced.
    pad_mode: "constant" (zeros; librosa.yin's default) or "reflect".
    return_periodicity: also return `1 - CMNDF` at the chosen period, clipped to
      [0, 1] (near 1 for clean periodic frames).
    name: optional name scope.

  Returns:
    `(f0, voiced)` or `(f0, voiced, periodicity)`: f0 `[batch, frames]` in Hz of
    `audio`'s float dtype with 0 on unvoiced frames, voiced `[batch, frames]`
    bool, periodicity `[batch, frames]`. Rank-1 input gives `[frames]` outputs.

  Raises:
    ValueError: for parameters librosa.yin would reject (fmax above Nyquist,
      fmin >= fmax, fmin <= 0, fmin's period not fitting in the frame), a
      non-positive hop, an unknown pad mode, or audio that is not a float tensor
      of rank 1 or 2.
  """
  min_period, max_period = check_yin_params(sample_rate, frame_length, hop_length, fmin, fmax,
                                            pad_mode)
  with tf.name_scope(name or "yin_pitch"):
    audio = tf.convert_to_tensor(audio)
    if not audio.dtype.is_floating:
      raise ValueError(f"yin_pitch: audio must be a float tensor, got {audio.dtype.name}")
    rank = audio.shape.rank
    if rank not in (1, 2):
      raise ValueError(f"yin_pitch: audio must have shape [samples] or [batch, samples], "
                       f"got shape {audio.shape}")
    dtype = tf.float64 if audio.dtype == tf.float64 else tf.float32
    batch = tf.cast(audio if rank == 2 else audio[tf.newaxis], dtype)
    if center:
      half = frame_length // 2
      batch = tf.pad(batch, [[0, 0], [half, half]], mode=_PAD_MODES[pad_mode])
    frames = tf.signal.frame(batch, frame_length, hop_length)  # [batch, frames, frame_length]

    cmndf = _cmndf(frames, min_period, max_period)  # [batch, frames, lags]
    troughs = _troughs(cmndf)
    threshold_troughs = troughs & (cmndf < threshold)
    first_trough = tf.argmax(tf.cast(threshold_troughs, tf.int32), axis=-1, output_type=tf.int32)
    global_min = tf.argmin(cmndf, axis=-1, output_type=tf.int32)
    # librosa's choice of lag (counted from min_period).
    lag = tf.where(tf.reduce_any(threshold_troughs, axis=-1), first_trough, global_min)
    best = tf.gather(cmndf, lag, batch_dims=2)
    # The chosen lag must be a real dip (silence has a flat CMNDF of 0, no trough).
    voiced = tf.gather(troughs, lag, batch_dims=2) & (best < voicing_threshold)
    period = tf.cast(min_period + lag, dtype) + _parabolic_shift(cmndf, lag)
    f0 = tf.where(voiced, tf.cast(sample_rate, dtype) / period, tf.zeros_like(period))

    outputs = [tf.cast(f0, audio.dtype), voiced]
    if return_periodicity:
      outputs.append(tf.cast(tf.clip_by_value(1.0 - best, 0.0, 1.0), audio.dtype))
    if rank == 1:
      outputs = [x[0] for x in outputs]
    return tuple(outputs)


def average_pitch_per_token(f0, durations, name=None):
  """Mean f0 over the voiced (non-zero) frames of each token's span, 0 when it has none.

  The same result as FastPitch's `average_pitch` (NVIDIA DeepLearningExamples),
  computed with a `[batch, tokens, frames]` span mask and a matmul so each
  token's sum is exact (no long running sums) and the op lowers to XLA/TFLite.

  Args:
    f0: float `[batch, frames]`, 0 on unvoiced frames.
    durations: `[batch, tokens]` frames per token, int or float (float durations
      are accumulated then truncated, as FastPitch does). Spans past the last
      frame are cut at `frames`; padding tokens with duration 0 get 0.
    name: optional name scope.

  Returns:
    `[batch, tokens]` of `f0`'s dtype.
  """
  with tf.name_scope(name or "average_pitch_per_token"):
    f0 = tf.convert_to_tensor(f0)
    durations = tf.convert_to_tensor(durations)
    if f0.shape.rank != 2 or durations.shape.rank != 2:
      raise ValueError(f"average_pitch_per_token: f0 must be [batch, frames] and durations "
                       f"[batch, tokens], got {f0.shape} and {durations.shape}")
    ends = tf.cumsum(durations, axis=1)
    if ends.dtype.is_floating:
      ends = tf.cast(ends, tf.int64)  # truncation, like FastPitch's `.long()`
    ends = tf.cast(ends, tf.int32)
    starts = tf.pad(ends[:, :-1], [[0, 0], [1, 0]])
    frame = tf.range(tf.shape(f0)[1])[tf.newaxis, tf.newaxis, :]
    span = (starts[:, :, tf.newaxis] <= frame) & (frame < ends[:, :, tf.newaxis])
    span = tf.cast(span, f0.dtype)  # [batch, tokens, frames]
    voiced = tf.cast(tf.not_equal(f0, 0), f0.dtype)
    sums = tf.linalg.matvec(span, f0)
    counts = tf.linalg.matvec(span, voiced)
    return tf.where(counts > 0, sums / tf.maximum(counts, 1), tf.zeros_like(sums))


def check_yin_params(sample_rate, frame_length, hop_length, fmin, fmax, pad_mode="constant"):
  """Checks `yin_pitch`'s settings without audio (e.g. before a corpus is prepared).

  The same conditions as librosa's __check_yin_params, with our names, plus ours
  (hop, pad mode, at least 3 candidate periods).

  Returns:
    (min_period, max_period): the lag range searched, in samples.

  Raises:
    ValueError: naming the bad setting and what would fix it.
  """
  if not (isinstance(frame_length, (int, np.integer)) and frame_length > 2):
    raise ValueError(f"yin_pitch: frame_length must be a Python int > 2, got {frame_length!r}")
  if not (isinstance(hop_length, (int, np.integer)) and hop_length > 0):
    raise ValueError(f"yin_pitch: hop_length must be a positive Python int, got {hop_length!r}")
  if pad_mode not in _PAD_MODES:
    raise ValueError(f"yin_pitch: pad_mode must be one of {sorted(_PAD_MODES)}, got {pad_mode!r}")
  if fmax > sample_rate / 2:
    raise ValueError(f"yin_pitch: fmax={fmax} exceeds the Nyquist frequency {sample_rate / 2}")
  if fmin <= 0:
    raise ValueError(f"yin_pitch: fmin={fmin} must be > 0")
  if fmin >= fmax:
    raise ValueError(f"yin_pitch: fmin={fmin} must be less than fmax={fmax}")
  if sample_rate / fmin >= frame_length - 1:
    raise ValueError(f"yin_pitch: fmin={fmin} Hz has a period of {sample_rate / fmin:.1f} samples, "
                     f"which does not fit in frame_length={frame_length}; raise fmin to at least "
                     f"{sample_rate / (frame_length - 1):.2f} or frame_length to at least "
                     f"{int(math.ceil(sample_rate / fmin)) + 2}")
  min_period = int(math.floor(sample_rate / fmax))
  max_period = min(int(math.ceil(sample_rate / fmin)), frame_length - 1)
  if max_period - min_period < 2:
    raise ValueError(f"yin_pitch: fmin={fmin} and fmax={fmax} leave fewer than 3 candidate periods "
                     f"({min_period}..{max_period} samples); widen the range")
  return min_period, max_period


def _cmndf(frames, min_period, max_period):
  """CMNDF `[..., max_period - min_period + 1]` for lags min_period..max_period (librosa's)."""
  frame_length = frames.shape[-1]
  fft_length = 1 << int(math.ceil(math.log2(2 * frame_length - 1)))  # no circular wrap
  spectrum = tf.signal.rfft(frames, [fft_length])
  power = tf.square(tf.math.real(spectrum)) + tf.square(tf.math.imag(spectrum))
  acf = tf.signal.irfft(tf.complex(power, tf.zeros_like(power)), [fft_length])
  acf = acf[..., :max_period + 1]
  # librosa subtracts the energy of the first `tau` samples only (not of the
  # last `tau` too, as the textbook expansion would); keep that for parity.
  head_energy = tf.cumsum(tf.square(frames[..., :max_period]), axis=-1)
  difference = 2.0 * (acf[..., :1] - acf[..., 1:]) - head_energy  # lags 1..max_period
  lags = tf.range(1, max_period + 1, dtype=frames.dtype)
  cumulative_mean = tf.cumsum(difference, axis=-1) / lags
  numerator = difference[..., min_period - 1:]
  denominator = cumulative_mean[..., min_period - 1:]
  return numerator / (denominator + np.finfo(frames.dtype.as_numpy_dtype).tiny)


def _troughs(cmndf):
  """Local minima along the lag axis, with librosa.yin's rules at both ends."""
  left = cmndf[..., :-2]
  mid = cmndf[..., 1:-1]
  right = cmndf[..., 2:]
  first = cmndf[..., :1] < cmndf[..., 1:2]
  interior = (mid < left) & (mid <= right)
  last = cmndf[..., -1:] < cmndf[..., -2:-1]
  return tf.concat([first, interior, last], axis=-1)


def _parabolic_shift(cmndf, lag):
  """Vertex offset of the parabola through lags `lag - 1, lag, lag + 1` (librosa's rule)."""
  num_lags = tf.shape(cmndf)[-1]
  inner = (lag > 0) & (lag < num_lags - 1)
  center = tf.gather(cmndf, lag, batch_dims=2)
  before = tf.gather(cmndf, tf.maximum(lag - 1, 0), batch_dims=2)
  after = tf.gather(cmndf, tf.minimum(lag + 1, num_lags - 1), batch_dims=2)
  curvature = after + before - 2.0 * center
  slope = (after - before) / 2.0
  usable = inner & (tf.abs(slope) < tf.abs(curvature))
  safe_curvature = tf.where(usable, curvature, tf.ones_like(curvature))
  return tf.where(usable, -slope / safe_curvature, tf.zeros_like(slope))
