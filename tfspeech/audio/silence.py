"""Level checks and silence trimming, in graph-mode TensorFlow."""

import tensorflow as tf

__all__ = ["normalize_peak", "peak", "rms_db", "trim_silence"]

# librosa.amplitude_to_db's default amin (1e-5) squared: the floor of power values.
_POWER_FLOOR = 1e-10


def peak(audio):
  """Largest absolute sample value over the last axis.

  Args:
    audio: `[..., samples]` float.

  Returns:
    `[...]` float32; 1.0 or more means the signal is clipping.
  """
  return tf.reduce_max(tf.abs(tf.cast(audio, tf.float32)), axis=-1)


def normalize_peak(audio, peak_db=-1.0, silence=1e-4):
  """Scales each signal so that its largest absolute sample is `peak_db` dBFS.

  Used on Griffin-Lim previews, whose level follows the predicted mel and can exceed
  full scale (then `write_wav` would clip 3-6% of the samples). Signals quieter than
  `silence` peak (silence, or the zero padding of an empty item) are left as they are
  rather than amplifying noise.

  Args:
    audio: `[..., samples]` float.
    peak_db: target peak in dB relative to full scale (1.0); -1 dBFS is ~0.891.
    silence: peak below which a signal is not scaled.

  Returns:
    `[..., samples]` float32.
  """
  audio = tf.cast(audio, tf.float32)
  current = peak(audio)[..., tf.newaxis]
  target = 10.0 ** (peak_db / 20.0)
  return audio * tf.where(current > silence, target / tf.maximum(current, silence), 1.0)


def rms_db(audio):
  """Root-mean-square level in dB relative to full scale (1.0), over the last axis.

  Args:
    audio: `[..., samples]` float.

  Returns:
    `[...]` float32, floored at -100 dB (digital silence).
  """
  power = tf.reduce_mean(tf.square(tf.cast(audio, tf.float32)), axis=-1)
  return 10.0 * tf.math.log(tf.maximum(power, _POWER_FLOOR)) / tf.math.log(10.0)


def trim_silence(audio, top_db=60.0, frame_length=2048, hop_length=512):
  """Cuts leading and trailing silence, like `librosa.effects.trim`.

  Same semantics as librosa (>= 0.10): frame RMS with centred zero padding of
  `frame_length // 2`; a frame is non-silent when its level is more than
  `-top_db` dB relative to the loudest frame (powers floored at 1e-10); the kept
  span runs from the first non-silent frame's start to the end of the last
  non-silent frame's hop, capped at the signal length. All-silent input (no
  frame above the threshold) gives an empty result and indices [0, 0].

  Args:
    audio: `[samples]` float mono signal.
    top_db: threshold in dB below the loudest frame.
    frame_length: samples per analysis frame.
    hop_length: samples between frames.

  Returns:
    trimmed: `[kept_samples]` float32, `audio[start:end]`.
    interval: `[2]` int32 `[start, end]`.
  """
  audio = tf.convert_to_tensor(audio, tf.float32)
  if audio.shape.rank != 1:
    raise ValueError(f"trim_silence: audio must be [samples] (mono), got shape {audio.shape}")
  num_samples = tf.shape(audio)[0]
  half = frame_length // 2
  padded = tf.pad(audio, [[half, half]])
  frames = tf.signal.frame(padded, frame_length, hop_length)
  power = tf.reduce_mean(tf.square(frames), axis=-1)
  log10 = lambda x: tf.math.log(x) / tf.math.log(10.0)
  db = 10.0 * log10(tf.maximum(power, _POWER_FLOOR))
  reference_db = 10.0 * log10(tf.maximum(tf.reduce_max(power), _POWER_FLOOR))
  loud = tf.cast(tf.where(db - reference_db > -float(top_db))[:, 0], tf.int32)
  found = tf.size(loud) > 0
  # tf.where lists indices in increasing order; the sentinels cover "none found".
  first = tf.concat([loud, [0]], 0)[0]
  last = tf.concat([[-1], loud], 0)[-1]
  start = tf.where(found, first * hop_length, 0)
  end = tf.where(found, tf.minimum(num_samples, (last + 1) * hop_length), 0)
  return audio[start:end], tf.stack([start, end])
