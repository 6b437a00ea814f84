"""Mel spectrograms in graph-mode TensorFlow, matching the common conventions.

One `MelConfig` describes every step (padding, window, magnitude, filterbank,
log compression); presets reproduce librosa, HiFi-GAN (also used by Grad-TTS)
and NVIDIA Tacotron 2 / FastPitch. `MelSpectrogram(config)` computes it.

Pipeline for a `[batch, samples]` signal:
  pad (per `padding`) -> frames of `n_fft` every `hop_length` -> periodic Hann
  window of `win_length` centred in `n_fft` -> rfft -> (re^2 + im^2 +
  magnitude_eps) ** (power / 2) -> @ mel filterbank -> log compression.
"""

import dataclasses
import math
from typing import Optional

import tensorflow as tf

__all__ = [
    "MelConfig", "MelSpectrogram", "mel_filterbank", "hann_window", "log_compress",
    "log_decompress", "stft", "pad_for_stft", "num_frames",
]

PADDINGS = ("center_reflect", "center_constant", "hifigan")
LOG_COMPRESSIONS = ("natural", "log10", "db", None)


@dataclasses.dataclass(frozen=True)
class MelConfig:
  """Every parameter of a mel spectrogram; frozen so it can key caches and be hashed.

  Attributes:
    sample_rate: audio sample rate in Hz.
    n_fft: FFT size, also the frame length; the spectrum has n_fft // 2 + 1 bins.
    win_length: Hann window length (<= n_fft), zero-padded to n_fft at the centre
      of the frame as librosa and torch.stft do; None means n_fft.
    hop_length: samples between frame starts.
    n_mels: number of mel bands.
    fmin: lowest filterbank edge in Hz.
    fmax: highest filterbank edge in Hz; None means sample_rate / 2.
    mel_scale: 'slaney' (librosa default, linear below 1 kHz, log above) or 'htk'.
    mel_norm: 'slaney' (each triangle divided by its width in Hz / 2: constant
      energy per band) or None (peak 1).
    padding: 'center_reflect' (n_fft // 2 reflected samples each side: librosa
      pad_mode='reflect', torch.stft(center=True), Tacotron 2), 'center_constant'
      (n_fft // 2 zeros each side: librosa >= 0.10 default), or 'hifigan'
      ((n_fft - hop_length) // 2 reflected samples each side, no centring:
      jik876/hifi-gan meldataset.py). Reflect padding needs more samples than
      the pad width.
    power: exponent of the magnitude: 1 for |X|, 2 for |X|^2 (librosa default).
    magnitude_eps: added to re^2 + im^2 before the power; HiFi-GAN uses 1e-9.
    log: 'natural' -> log(max(mel, clamp_min)) (HiFi-GAN / Tacotron 2
      "dynamic range compression"); 'log10' -> log10(max(mel, clamp_min));
      'db' -> (20 / power) * log10(max(mel, clamp_min)), i.e. librosa's
      power_to_db (power 2) / amplitude_to_db (power 1) with ref=1 and no
      top_db; None -> linear mel.
    clamp_min: floor applied before the log.
  """
  sample_rate: int = 22050
  n_fft: int = 1024
  win_length: Optional[int] = None
  hop_length: int = 256
  n_mels: int = 80
  fmin: float = 0.0
  fmax: Optional[float] = 8000.0
  mel_scale: str = "slaney"
  mel_norm: Optional[str] = "slaney"
  padding: str = "hifigan"
  power: float = 1.0
  magnitude_eps: float = 0.0
  log: Optional[str] = "natural"
  clamp_min: float = 1e-5

  def __post_init__(self):
    def bad(field, problem):
      raise ValueError(f"MelConfig.{field}={getattr(self, field)!r}: {problem}")

    for field in ("sample_rate", "n_fft", "hop_length", "n_mels"):
      if int(getattr(self, field)) != getattr(self, field) or getattr(self, field) <= 0:
        bad(field, "must be a positive integer")
    if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
      bad("win_length", f"must be in (0, n_fft={self.n_fft}] or None")
    nyquist = self.sample_rate / 2
    if not 0 <= self.fmin < self.fmax_hz:
      bad("fmin", f"must be in [0, fmax={self.fmax_hz})")
    if self.fmax is not None and self.fmax > nyquist:
      bad("fmax", f"exceeds the Nyquist frequency {nyquist} Hz of sample_rate={self.sample_rate}")
    if self.mel_scale not in ("slaney", "htk"):
      bad("mel_scale", "must be 'slaney' or 'htk'")
    if self.mel_norm not in ("slaney", None):
      bad("mel_norm", "must be 'slaney' or None")
    if self.padding not in PADDINGS:
      bad("padding", f"must be one of {PADDINGS}")
    if self.padding == "hifigan" and (self.n_fft - self.hop_length) % 2:
      bad("padding", f"'hifigan' needs n_fft - hop_length even, got {self.n_fft - self.hop_length}")
    if self.power <= 0:
      bad("power", "must be positive (1 = magnitude, 2 = power)")
    if self.magnitude_eps < 0:
      bad("magnitude_eps", "must be >= 0")
    if self.log not in LOG_COMPRESSIONS:
      bad("log", f"must be one of {LOG_COMPRESSIONS}")
    if self.log is not None and self.clamp_min <= 0:
      bad("clamp_min", "must be > 0 when a log compression is used")

  @property
  def win_length_or_n_fft(self):
    return self.n_fft if self.win_length is None else self.win_length

  @property
  def fmax_hz(self):
    return self.sample_rate / 2 if self.fmax is None else self.fmax

  @property
  def num_bins(self):
    """Number of linear-frequency bins, n_fft // 2 + 1."""
    return self.n_fft // 2 + 1

  def replace(self, **changes):
    """A copy with some fields changed (validated again)."""
    return dataclasses.replace(self, **changes)

  @classmethod
  def librosa(cls, sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128, pad_mode="constant",
              **overrides):
    """`librosa.feature.melspectrogram` defaults (librosa 0.10 / 0.11).

    n_fft 2048, hop 512, win = n_fft, 128 Slaney-normalised Slaney-scale mels
    from 0 Hz to sr / 2, centred frames, power 2, no log. librosa >= 0.10 pads
    with zeros (pad_mode='constant'); pass pad_mode='reflect' for older
    releases / torchaudio-style reflection.
    """
    if pad_mode not in ("constant", "reflect"):
      raise ValueError(f"MelConfig.librosa: pad_mode={pad_mode!r} must be 'constant' or 'reflect'")
    fields = dict(sample_rate=sample_rate, n_fft=n_fft, win_length=None, hop_length=hop_length,
                  n_mels=n_mels, fmin=0.0, fmax=None, mel_scale="slaney", mel_norm="slaney",
                  padding="center_" + pad_mode, power=2.0, magnitude_eps=0.0, log=None)
    fields.update(overrides)
    return cls(**fields)

  @classmethod
  def hifigan(cls, **overrides):
    """jik876/hifi-gan meldataset.py `mel_spectrogram` (config_v1: 22050 Hz, fmax 8000).

    Reference (meldataset.py): reflect pad int((n_fft - hop) / 2) = 384 each
    side, torch.stft(center=False) with torch.hann_window(1024) (periodic),
    sqrt(re^2 + im^2 + 1e-9), librosa_mel_fn(sr, n_fft, 80, 0, 8000) (Slaney
    scale and norm), log(clamp(x, 1e-5)). Frames = samples // hop.

    Grad-TTS (huawei-noah/Speech-Backbones Grad-TTS/data.py) imports this very
    function with params.py values n_fft 1024, hop 256, win 1024, 80 mels,
    f_min 0, f_max 8000, center=False: the same preset. Note HiFi-GAN's
    training loss uses fmax_for_loss=None (sr / 2): `hifigan(fmax=None)`.
    """
    fields = dict(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80,
                  fmin=0.0, fmax=8000.0, mel_scale="slaney", mel_norm="slaney",
                  padding="hifigan", power=1.0, magnitude_eps=1e-9, log="natural",
                  clamp_min=1e-5)
    fields.update(overrides)
    return cls(**fields)

  @classmethod
  def gradtts(cls, **overrides):
    """Grad-TTS: identical to `hifigan()` (it calls HiFi-GAN's mel_spectrogram, fmax 8000)."""
    return cls.hifigan(**overrides)

  @classmethod
  def tacotron2(cls, **overrides):
    """NVIDIA Tacotron 2 / FastPitch `TacotronSTFT.mel_spectrogram`.

    Reference: NVIDIA/DeepLearningExamples PyTorch/SpeechSynthesis/FastPitch
    common/layers.py (TacotronSTFT: filter 1024, hop 256, win 1024, 80 mels,
    fmin 0, fmax 8000, librosa_mel_fn -> Slaney), common/stft.py (reflect pad
    filter_length / 2 each side = centred frames, scipy hann fftbins=True
    (periodic), magnitude sqrt(re^2 + im^2) without epsilon) and
    common/audio_processing.py (dynamic_range_compression: log(clamp(x, 1e-5))).
    Frames = samples // hop + 1.
    """
    fields = dict(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80,
                  fmin=0.0, fmax=8000.0, mel_scale="slaney", mel_norm="slaney",
                  padding="center_reflect", power=1.0, magnitude_eps=0.0, log="natural",
                  clamp_min=1e-5)
    fields.update(overrides)
    return cls(**fields)


# --- mel scale -----------------------------------------------------------------------------

# Slaney's Auditory Toolbox scale (librosa htk=False): linear to 1 kHz, log above.
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def _hz_to_mel(hz, scale):
  if scale == "htk":
    return 2595.0 * tf.math.log(1.0 + hz / 700.0) / math.log(10.0)
  linear = hz / _SLANEY_HZ_PER_MEL
  logarithmic = _SLANEY_BREAK_MEL + tf.math.log(
      tf.maximum(hz, _SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
  return tf.where(hz >= _SLANEY_BREAK_HZ, logarithmic, linear)


def _mel_to_hz(mel, scale):
  if scale == "htk":
    return 700.0 * (tf.pow(tf.constant(10.0, mel.dtype), mel / 2595.0) - 1.0)
  linear = mel * _SLANEY_HZ_PER_MEL
  logarithmic = _SLANEY_BREAK_HZ * tf.exp(
      _SLANEY_LOG_STEP * (tf.maximum(mel, _SLANEY_BREAK_MEL) - _SLANEY_BREAK_MEL))
  return tf.where(mel >= _SLANEY_BREAK_MEL, logarithmic, linear)


def mel_filterbank(config):
  """Triangular mel filterbank, as `librosa.filters.mel(...).T`.

  Computed in float64 and rounded once to float32 (librosa rounds the
  triangles, then the normalised values: results agree to ~1 ulp).

  Args:
    config: `MelConfig` (sample_rate, n_fft, n_mels, fmin, fmax, mel_scale, mel_norm).

  Returns:
    `[n_fft // 2 + 1, n_mels]` float32; `linear_spectrogram @ filterbank` gives mels.
  """
  f64 = tf.float64
  fft_hz = tf.range(config.num_bins, dtype=f64) * (config.sample_rate / config.n_fft)
  low = _hz_to_mel(tf.constant(float(config.fmin), f64), config.mel_scale)
  high = _hz_to_mel(tf.constant(float(config.fmax_hz), f64), config.mel_scale)
  edges_hz = _mel_to_hz(tf.linspace(low, high, config.n_mels + 2), config.mel_scale)
  widths = edges_hz[1:] - edges_hz[:-1]                  # [n_mels + 1]
  ramps = edges_hz[:, tf.newaxis] - fft_hz[tf.newaxis, :]  # [n_mels + 2, bins]
  rising = -ramps[:-2] / widths[:-1, tf.newaxis]
  falling = ramps[2:] / widths[1:, tf.newaxis]
  weights = tf.maximum(tf.minimum(rising, falling), 0.0)  # [n_mels, bins]
  if config.mel_norm == "slaney":
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, tf.newaxis]
  return tf.cast(tf.transpose(weights), tf.float32)


# --- STFT ----------------------------------------------------------------------------------


def hann_window(config):
  """Periodic Hann window of win_length centred in n_fft zeros: `[n_fft]` float32.

  Periodic (denominator N, not N - 1) as torch.hann_window and scipy's
  get_window('hann', N, fftbins=True) used by librosa.
  """
  win_length = config.win_length_or_n_fft
  n = tf.range(win_length, dtype=tf.float64)
  window = 0.5 - 0.5 * tf.cos(2.0 * math.pi * n / win_length)
  left = (config.n_fft - win_length) // 2
  window = tf.pad(window, [[left, config.n_fft - win_length - left]])
  return tf.cast(window, tf.float32)


def _stft_pad_width(config):
  if config.padding == "hifigan":
    return (config.n_fft - config.hop_length) // 2
  return config.n_fft // 2


def _reflect_pad_any_length(audio, width):
  """Reflect padding of `[batch, samples]` by `width` each side that works for any length.

  `tf.pad(mode="REFLECT")` (MirrorPad) needs samples > width; Griffin-Lim of a one- or
  two-frame mel re-pads a signal shorter than that. Like `np.pad(mode="reflect")` (what
  librosa does) the reflection repeats when width >= samples: index p maps to p mod
  2 * (samples - 1), folded back. One sample pads with copies of itself; zero samples
  pad with zeros. Equal to MirrorPad wherever MirrorPad works.
  """
  length = tf.shape(audio)[1]
  # An empty signal reflects zeros: give it one zero sample to index.
  source = tf.pad(audio, [[0, 0], [0, tf.cast(tf.equal(length, 0), tf.int32)]])
  count = tf.maximum(length, 1)
  period = tf.maximum(2 * (count - 1), 1)

  def reflected(positions):
    folded = tf.math.floormod(positions, period)
    return tf.gather(source, tf.where(folded >= count, period - folded, folded), axis=1)

  left = reflected(tf.range(-width, 0))
  right = reflected(tf.range(length, length + width))
  return tf.concat([left, audio, right], axis=1)


def pad_for_stft(audio, config):
  """Pads `[batch, samples]` audio on the time axis as the config's convention does.

  Any length works, down to 0 samples (see `_reflect_pad_any_length`); a signal whose
  static length exceeds the pad width keeps the plain MirrorPad op.
  """
  width = _stft_pad_width(config)
  if config.padding == "center_constant":
    return tf.pad(audio, [[0, 0], [width, width]])
  static_length = audio.shape[1]
  if static_length is not None and static_length > width:
    return tf.pad(audio, [[0, 0], [width, width]], mode="REFLECT")
  return _reflect_pad_any_length(audio, width)


def num_frames(num_samples, config):
  """Frames produced for `num_samples` samples (Python int or integer tensor)."""
  padded = num_samples + 2 * _stft_pad_width(config)
  return (padded - config.n_fft) // config.hop_length + 1


def stft(audio, config, window=None):
  """Complex STFT of `[batch, samples]` float32 audio.

  Args:
    audio: `[batch, samples]` float32.
    config: `MelConfig` (padding, n_fft, hop_length, win_length).
    window: optional precomputed `hann_window(config)`.

  Returns:
    `[batch, frames, n_fft // 2 + 1]` complex64.
  """
  window = hann_window(config) if window is None else window
  frames = tf.signal.frame(pad_for_stft(audio, config), config.n_fft, config.hop_length)
  return tf.signal.rfft(frames * window)


def log_compress(mel, config):
  """Applies the config's log compression (identity when `config.log` is None)."""
  if config.log is None:
    return mel
  clamped = tf.maximum(mel, config.clamp_min)
  if config.log == "natural":
    return tf.math.log(clamped)
  log10 = tf.math.log(clamped) / math.log(10.0)
  return log10 if config.log == "log10" else (20.0 / config.power) * log10


def log_decompress(log_mel, config):
  """Inverse of `log_compress` (values at the clamp come back as `clamp_min`)."""
  if config.log is None:
    return log_mel
  if config.log == "natural":
    return tf.exp(log_mel)
  exponent = log_mel if config.log == "log10" else log_mel * (config.power / 20.0)
  return tf.pow(10.0, exponent)


class MelSpectrogram(tf.Module):
  """Computes `[batch, frames, n_mels]` (log) mel spectrograms per a `MelConfig`.

  Works on `[batch, samples]` or `[samples]` float audio (the rank must be known
  when tracing), in eager and graph mode with unknown batch and length. A batch
  of zero-padded signals is processed as is: frames past a signal's true end
  are computed from the padding (their count per signal is
  `num_frames(true_length)`); mask them downstream.
  """

  def __init__(self, config=None, name=None):
    super().__init__(name=name)
    self.config = MelConfig.hifigan() if config is None else config
    self.filterbank = mel_filterbank(self.config)
    self.window = hann_window(self.config)

  def num_frames(self, num_samples):
    """Frames for `num_samples` samples (int or integer tensor)."""
    return num_frames(num_samples, self.config)

  def _batched(self, audio, fn):
    audio = tf.convert_to_tensor(audio)
    audio = tf.cast(audio, tf.float32)
    rank = audio.shape.rank
    if rank not in (1, 2):
      raise ValueError(f"MelSpectrogram: audio must be [batch, samples] or [samples], "
                       f"got shape {audio.shape}")
    result = fn(audio if rank == 2 else audio[tf.newaxis])
    return result if rank == 2 else result[0]

  def _linear(self, audio):
    config = self.config
    spectrum = stft(audio, config, self.window)
    energy = tf.square(tf.math.real(spectrum)) + tf.square(tf.math.imag(spectrum))
    if config.magnitude_eps:
      energy += config.magnitude_eps
    if config.power == 2:
      return energy
    if config.power == 1:
      return tf.sqrt(energy)
    return tf.pow(energy, config.power / 2.0)

  def linear(self, audio):
    """Linear-frequency spectrogram `[batch, frames, n_fft // 2 + 1]`.

    (re^2 + im^2 + magnitude_eps) ** (power / 2): the magnitude for power 1.
    """
    return self._batched(audio, self._linear)

  def mel(self, audio):
    """Mel spectrogram before log compression `[batch, frames, n_mels]`."""
    return self._batched(audio, lambda a: tf.matmul(self._linear(a), self.filterbank))

  def __call__(self, audio):
    """Log-compressed mel spectrogram `[batch, frames, n_mels]` (per `config.log`)."""
    return log_compress(self.mel(audio), self.config)
