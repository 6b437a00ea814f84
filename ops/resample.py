"""Sample-rate conversion by Kaiser-windowed sinc interpolation, as a polyphase strided conv.

The two rates are Python ints. They are reduced by their gcd to `up / down`, and
for each of the `up` output phases a windowed-sinc filter is sampled once, at
trace time, into a constant `[taps, 1, up]` kernel. Resampling is then a single
`tf.nn.conv1d` with stride `down` whose `up` output channels are interleaved
into the output samples, so the audio length stays dynamic and the whole thing
runs under `tf.function`/XLA on any device.

Design, in units of input samples: the low-pass cutoff is
`rolloff * min(1, up / down) / 2` cycles per sample (so it also anti-aliases when
downsampling), the sinc is truncated to `zero_crossings` zero crossings on each
side and tapered by a Kaiser window with shape `beta` (the construction of
resampy's and torchaudio's `sinc_interp_kaiser`). Output sample `j` sits at input
time `j * down / up`, so the first output sample is aligned with the first input
sample, as in soxr and librosa. The signal is taken to be zero outside its
extent.

With the defaults (32 zero crossings, rolloff 0.91, beta 10) the response is
flat to within 1e-5 up to 0.8 of the lower Nyquist frequency and at least 94 dB
down from the lower Nyquist frequency on. On 0.5-amplitude sines up to 0.7 of
the lower Nyquist frequency the output is within ~1e-4 (mostly ~1e-6) of soxr's
HQ converter (and librosa's `soxr_hq`) except in the first and last ~60 output
samples, where the two filters, of different lengths, meet the signal's abrupt
start and end differently (up to ~2e-2 apart there).
"""

import math

import numpy as np
import tensorflow as tf

# Kernels larger than this (phases * taps) mean nearly coprime rates such as
# 44100 -> 44101; they would take gigabytes and are almost certainly a mistake.
_MAX_KERNEL_COEFFICIENTS = 1 << 24


def resampled_length(num_samples, source_rate, target_rate):
  """Number of output samples for `num_samples` input samples: ceil(n * target / source).

  Exact integer arithmetic (librosa computes the same ceiling in floating point,
  so it is one sample longer in rare cases such as 441 samples at 22050 -> 24000
  Hz; soxr rounds to nearest instead of up).

  Args:
    num_samples: Python int or integer tensor (any shape).
    source_rate: Python int, Hz.
    target_rate: Python int, Hz.

  Returns:
    Same kind as `num_samples` (tensors come back as int64).
  """
  up, down = _reduced_ratio(source_rate, target_rate)
  if isinstance(num_samples, int):
    return -(-num_samples * up // down)
  num_samples = tf.cast(num_samples, tf.int64)
  return (num_samples * up + down - 1) // down


def resample(audio, source_rate, target_rate, *, zero_crossings=32, rolloff=0.91,
             beta=10.0, name=None):
  """Resamples audio from `source_rate` to `target_rate` Hz.

  Args:
    audio: float tensor `[batch, samples]` or `[samples]`; `samples` may be
      dynamic. Rows are resampled independently. Since the signal is taken to
      be zero past its end, a row zero-padded in a batch gives the same first
      `resampled_length(row_length, ...)` samples as the row alone.
    source_rate: Python int, sample rate of `audio` in Hz.
    target_rate: Python int, wanted sample rate in Hz.
    zero_crossings: sinc zero crossings kept on each side of the filter centre;
      longer filters give a sharper transition band and cost linearly more.
    rolloff: cutoff as a fraction of the lower of the two Nyquist frequencies.
    beta: Kaiser window shape; larger gives more stopband attenuation and a
      wider transition band.
    name: optional name scope.

  Returns:
    Tensor of `audio`'s dtype and rank, `[batch, ceil(samples * target_rate /
    source_rate)]` (see `resampled_length`). Identity when the rates are equal.

  Raises:
    ValueError: for non-integer or non-positive rates, bad filter parameters,
      a non-float `audio`, or a rank other than 1 or 2.
  """
  up, down = _reduced_ratio(source_rate, target_rate)
  if not (isinstance(zero_crossings, int) and zero_crossings > 0):
    raise ValueError(f"resample: zero_crossings must be a positive int, got {zero_crossings!r}")
  if not 0.0 < rolloff <= 1.0:
    raise ValueError(f"resample: rolloff must be in (0, 1], got {rolloff!r}")
  if beta < 0:
    raise ValueError(f"resample: beta must be >= 0, got {beta!r}")

  with tf.name_scope(name or "resample"):
    audio = tf.convert_to_tensor(audio)
    if not audio.dtype.is_floating:
      raise ValueError(f"resample: audio must be a float tensor, got {audio.dtype.name}; "
                       "convert integer PCM to float (e.g. divide int16 by 32768) first")
    rank = audio.shape.rank
    if rank not in (1, 2):
      raise ValueError(f"resample: audio must have shape [samples] or [batch, samples], "
                       f"got shape {audio.shape}")
    if up == down:
      return tf.identity(audio)

    kernel, left_pad = _polyphase_kernel(up, down, zero_crossings, rolloff, beta)
    taps = kernel.shape[0]
    compute_dtype = tf.float64 if audio.dtype == tf.float64 else tf.float32
    batch = audio if rank == 2 else audio[tf.newaxis]
    batch = tf.cast(batch, compute_dtype)

    num_samples = tf.shape(batch, out_type=tf.int64)[1]
    out_len = (num_samples * up + down - 1) // down
    # One conv output position yields `up` consecutive output samples. At least
    # one position is computed so the VALID conv never sees a too-short input.
    positions = tf.maximum((out_len + up - 1) // up, 1)
    right_pad = (positions - 1) * down + taps - left_pad - num_samples
    batch = tf.pad(batch, tf.stack([tf.constant([0, 0], tf.int64),
                                    tf.stack([tf.constant(left_pad, tf.int64), right_pad])]))
    phases = tf.nn.conv1d(batch[:, :, tf.newaxis], tf.constant(kernel, compute_dtype),
                          stride=down, padding="VALID")  # [batch, positions, up]
    out = tf.reshape(phases, [tf.shape(phases)[0], -1])[:, :out_len]
    out = tf.cast(out, audio.dtype)
    return out if rank == 2 else out[0]


def _reduced_ratio(source_rate, target_rate):
  for arg, rate in (("source_rate", source_rate), ("target_rate", target_rate)):
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
      raise ValueError(f"resample: {arg} must be a positive Python int (Hz), got {rate!r}; "
                       "the filter is designed from the rates when the graph is built")
  gcd = math.gcd(int(source_rate), int(target_rate))
  return int(target_rate) // gcd, int(source_rate) // gcd


def _polyphase_kernel(up, down, zero_crossings, rolloff, beta):
  """Samples the windowed-sinc filter for every output phase (trace-time NumPy, a constant).

  Returns:
    (kernel `[taps, 1, up]` float64, left padding in input samples). Conv output
    position `m`, channel `p` is output sample `m * up + p`, which sits at input
    time `m * down + p * down / up`; the kernel window for position `m` starts at
    input sample `m * down - left_pad`.
  """
  cutoff = rolloff * min(1.0, up / down) / 2.0  # cycles per input sample
  half_width = zero_crossings / (2.0 * cutoff)   # input samples on each side
  left_pad = int(math.ceil(half_width))
  taps = down + 2 * left_pad
  if up * taps > _MAX_KERNEL_COEFFICIENTS:
    raise ValueError(f"resample: rates reduce to {up}/{down}, which needs a {taps}-tap filter for "
                     f"each of {up} phases; choose rates with a larger common divisor")
  phase = np.arange(up)[np.newaxis, :]
  tap = np.arange(taps)[:, np.newaxis]
  offset = phase * down / up + left_pad - tap  # output time minus input time
  inside = np.abs(offset) <= half_width
  window = np.i0(beta * np.sqrt(np.clip(1.0 - (offset / half_width) ** 2, 0.0, 1.0))) / np.i0(beta)
  kernel = np.where(inside, 2.0 * cutoff * np.sinc(2.0 * cutoff * offset) * window, 0.0)
  return kernel[:, np.newaxis, :], left_pad
