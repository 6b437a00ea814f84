"""Griffin-Lim phase reconstruction: the no-training vocoder fallback, in TF.

The STFT and inverse STFT follow the `MelConfig` exactly (padding, window,
hop), so `griffin_lim(MelSpectrogram(config).linear(audio), config)` inverts
what `MelSpectrogram` computed. The fast variant with momentum follows
Perraudin et al. 2013 as implemented by `librosa.griffinlim`.
"""

import numpy as np
import tensorflow as tf

from tfspeech.audio import mel as mel_lib
from tfspeech.audio import silence as silence_lib

__all__ = ["istft", "griffin_lim", "griffin_lim_preview", "mel_to_linear", "mel_to_audio",
           "spectral_convergence"]

# librosa divides by |angles| + tiny(float32) so that zero bins stay zero.
_TINY = float(np.finfo(np.float32).tiny)


def istft(spectrum, config, window=None):
  """Inverse of `mel.stft`: windowed overlap-add divided by the squared-window sum.

  Args:
    spectrum: `[batch, frames, n_fft // 2 + 1]` complex64.
    config: `MelConfig`.
    window: optional precomputed `mel.hann_window(config)`.

  Returns:
    `[batch, samples]` float32 with the STFT padding removed: samples =
    (frames - 1) * hop for centred paddings, frames * hop for 'hifigan'.
  """
  window = mel_lib.hann_window(config) if window is None else window
  frames = tf.signal.irfft(spectrum, fft_length=[config.n_fft]) * window
  signal = tf.signal.overlap_and_add(frames, config.hop_length)
  num_frames = tf.shape(spectrum)[-2]
  envelope = tf.signal.overlap_and_add(
      tf.tile(tf.square(window)[tf.newaxis], tf.stack([num_frames, 1])), config.hop_length)
  # Where no window reaches (only possible with win_length << n_fft) leave the sum as is.
  signal /= tf.where(envelope > _TINY, envelope, 1.0)
  width = mel_lib._stft_pad_width(config)  # pylint: disable=protected-access
  return signal[:, width:tf.shape(signal)[1] - width]


def _fit_length(audio, length):
  if length is None:
    return audio
  audio = audio[:, :length]
  return tf.pad(audio, [[0, 0], [0, length - tf.shape(audio)[1]]])


def griffin_lim(spectrogram, config, n_iter=32, momentum=0.99, power=None, init="random", seed=0,
                length=None):
  """Fast Griffin-Lim: audio whose STFT magnitude approximates `spectrogram`.

  Args:
    spectrogram: `[batch, frames, n_fft // 2 + 1]` (or `[frames, bins]`)
      non-negative, |STFT| ** power as from `MelSpectrogram(config).linear`.
    config: `MelConfig` that defines the STFT (padding, window, hop, n_fft).
    n_iter: iterations (int or scalar tensor).
    momentum: fast Griffin-Lim momentum (0 = classic Griffin-Lim); librosa's 0.99.
    power: exponent of `spectrogram`; None means `config.power`.
    init: 'random' (uniform random phase from `seed`, deterministic) or None /
      'zeros' (zero phase), as librosa's init='random' / None.
    seed: integer seed of the random initial phase.
    length: optional output length (cut or zero-padded at the end).

  Returns:
    `[batch, samples]` float32 (`[samples]` for rank-2 input), samples =
    `length` or what `istft` gives for `frames`.
  """
  spectrogram = tf.convert_to_tensor(spectrogram, tf.float32)
  rank = spectrogram.shape.rank
  if rank not in (2, 3):
    raise ValueError(f"griffin_lim: spectrogram must be [batch, frames, bins] or [frames, bins], "
                     f"got shape {spectrogram.shape}")
  if rank == 2:
    spectrogram = spectrogram[tf.newaxis]
  if spectrogram.shape[-1] is not None and spectrogram.shape[-1] != config.num_bins:
    raise ValueError(f"griffin_lim: spectrogram has {spectrogram.shape[-1]} bins, config n_fft="
                     f"{config.n_fft} needs {config.num_bins}")
  power = config.power if power is None else power
  magnitude = spectrogram if power == 1 else tf.pow(spectrogram, 1.0 / power)
  magnitude = tf.complex(magnitude, tf.zeros_like(magnitude))
  window = mel_lib.hann_window(config)

  if init == "random":
    phase = tf.random.stateless_uniform(tf.shape(spectrogram), seed=[seed, 0],
                                        maxval=2.0 * np.pi)
    angles = tf.exp(tf.complex(tf.zeros_like(phase), phase))
  elif init in (None, "zeros"):
    angles = tf.ones_like(magnitude)
  else:
    raise ValueError(f"griffin_lim: init={init!r} must be 'random', 'zeros' or None")

  decay = momentum / (1.0 + momentum)

  def step(i, angles, rebuilt):
    previous = rebuilt
    rebuilt = mel_lib.stft(istft(magnitude * angles, config, window), config, window)
    angles = rebuilt - tf.cast(decay, tf.complex64) * previous
    scale = tf.cast(tf.abs(angles) + _TINY, tf.complex64)
    return i + 1, angles / scale, rebuilt

  _, angles, _ = tf.while_loop(lambda i, *_: i < n_iter, step,
                               [tf.constant(0), angles, tf.zeros_like(magnitude)])
  audio = _fit_length(istft(magnitude * angles, config, window), length)
  return audio if rank == 3 else audio[0]


def mel_to_linear(mel_log, config, projection_steps=8):
  """Approximate inverse of the mel projection: `[..., n_mels]` -> `[..., n_fft // 2 + 1]`.

  Undoes the log compression, multiplies by the filterbank's pseudo-inverse,
  clips at 0 and refines with projected-gradient steps on
  ||S @ filterbank - mel||^2 subject to S >= 0 (an NNLS approximation, like
  `librosa.feature.inverse.mel_to_stft`).

  Args:
    mel_log: `[batch, frames, n_mels]` as `MelSpectrogram(config)` returns.
    config: the `MelConfig` that produced it.
    projection_steps: projected-gradient refinements after the pseudo-inverse.

  Returns:
    `[batch, frames, n_fft // 2 + 1]` float32 non-negative, in units of
    |STFT| ** config.power (what `griffin_lim` expects).
  """
  mel = mel_lib.log_decompress(tf.convert_to_tensor(mel_log, tf.float32), config)
  filterbank = mel_lib.mel_filterbank(config)  # [bins, n_mels]
  linear = tf.nn.relu(tf.matmul(mel, tf.linalg.pinv(filterbank)))
  # Step 1 / L with L the Lipschitz constant of the gradient, ||filterbank||_2^2.
  lipschitz = tf.reduce_max(tf.linalg.eigvalsh(tf.matmul(filterbank, filterbank, transpose_a=True)))
  for _ in range(projection_steps):
    residual = tf.matmul(linear, filterbank) - mel
    linear = tf.nn.relu(linear - tf.matmul(residual, filterbank, transpose_b=True) / lipschitz)
  return linear


def mel_to_audio(mel_log, config, n_iter=32, projection_steps=8, **griffin_lim_kwargs):
  """Vocoder without training: `mel_to_linear` then `griffin_lim`.

  Args:
    mel_log: `[batch, frames, n_mels]` log mels from `MelSpectrogram(config)`.
    config: `MelConfig` that produced them.
    n_iter: Griffin-Lim iterations.
    projection_steps: see `mel_to_linear`.
    **griffin_lim_kwargs: momentum, init, seed, length (see `griffin_lim`).

  Returns:
    `[batch, samples]` float32.
  """
  linear = mel_to_linear(mel_log, config, projection_steps)
  return griffin_lim(linear, config, n_iter=n_iter, power=config.power, **griffin_lim_kwargs)


def griffin_lim_preview(mel, config, n_iter=32, peak_db=-1.0):
  """Griffin-Lim audio of predicted log-mels for listening (TensorBoard), safe for wild values.

  An untrained or diverging model can predict log-mels whose exponent overflows (inf, then
  NaN audio): values are clipped to [silence, 1e4 magnitude] and non-finite ones silenced.
  Griffin-Lim's level follows the predicted magnitudes and often passes full scale (the
  summary would clip), so each item is scaled to a fixed peak with `normalize_peak`.

  Args:
    mel: `[batch, frames, n_mels]` log-mels in `config`'s convention.
    config: the `MelConfig` of the training data.
    n_iter: Griffin-Lim iterations.
    peak_db: peak level of each item in dBFS.

  Returns:
    `[batch, samples]` float32 audio, finite, each item's peak `peak_db` (or silent).
  """
  mel = tf.convert_to_tensor(mel, tf.float32)
  floor = mel_lib.log_compress(tf.zeros([]), config)
  ceiling = mel_lib.log_compress(tf.constant(1e4), config)
  mel = tf.clip_by_value(tf.where(tf.math.is_finite(mel), mel, floor), floor, ceiling)
  audio = mel_to_audio(mel, config, n_iter=n_iter, seed=0)
  return silence_lib.normalize_peak(audio, peak_db)


def spectral_convergence(target_magnitude, audio, config):
  """||target - |STFT(audio)|||_F / ||target||_F per batch item: `[batch]`.

  `target_magnitude` is `[batch, frames, bins]` |STFT| (power 1); `audio` is
  `[batch, samples]`. Frames are cut to the shorter of the two.
  """
  rebuilt = tf.abs(mel_lib.stft(tf.convert_to_tensor(audio, tf.float32), config))
  frames = tf.minimum(tf.shape(rebuilt)[1], tf.shape(target_magnitude)[1])
  target = target_magnitude[:, :frames]
  error = tf.norm(target - rebuilt[:, :frames], axis=[-2, -1])
  return error / tf.norm(target, axis=[-2, -1])
