"""Per-utterance work of `tfspeech.data.prepare`: one corpus entry -> one record.

Each `Task` (an utterance with its encoded transcript) is decoded, down-mixed
and resampled to the target rate if allowed, optionally trimmed, checked, and
turned into a serialized `tfspeech.data.records` example with its mel (from
`tfspeech.audio.MelSpectrogram`, so its conventions are exactly those of
training and export), optionally pitch and energy per mel frame (`PitchSettings`),
and the sums stats.json needs. A faulty entry becomes a `SkippedEntry` with a
reason code instead of an exception.

This runs in a pool of 'spawn' processes: `init_worker` is the pool initializer
and the task function is found by module path, so everything here is importable
at module level and cheap to import (no text front end).
"""

import dataclasses
import os
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.audio import mel as mel_lib
from tfspeech.data import records
from tfspeech.ops import pitch as pitch_lib

# FastPitch's pitch range (librosa.note_to_hz("C2"), ("C7")).
C2_HZ = 65.40639132514966
C7_HZ = 2093.004522404789


@dataclasses.dataclass(frozen=True)
class SkippedEntry:
  """A corpus entry left out of the prepared data.

  Attributes:
    id: the entry's id ("" when the line had none).
    reason: reason code (see the docstring of `tfspeech.data.prepare`).
    message: what is wrong, with the file or line it concerns.
    audio_path: the audio file, when known.
  """
  id: str
  reason: str
  message: str
  audio_path: str = ""


@dataclasses.dataclass(frozen=True)
class Task:
  """One utterance to turn into a record (picklable, sent to workers)."""
  position: int
  id: str
  audio_path: str
  text: str
  text_ids: Tuple[int, ...]
  speaker: int
  split: str


@dataclasses.dataclass(frozen=True)
class PitchSettings:
  """How prepare extracts pitch (f0) and energy per mel frame; dataset.json records it.

  The defaults are FastPitch's (NVIDIA DeepLearningExamples, `estimate_pitch`):
  f0 from C2 to C7 in 1024-sample frames, one per mel frame. FastPitch uses
  `librosa.pyin`; we use `tfspeech.ops.pitch.yin_pitch` (librosa.yin's periods
  plus a voicing rule, ~280x faster than pYIN), so f0 on voiced frames is
  librosa.yin's.

  Frames are the mel frames: each pitch frame is centred where the mel frame
  of the same index is centred (for the 'hifigan' padding that is sample
  `t * hop + hop / 2`, for centred paddings `t * hop`), the hop is the mel hop,
  and there are exactly as many. The audio is padded with zeros (librosa.yin's
  default) where a frame reaches past either end.

  Energy is the L2 norm over frequency of the linear STFT magnitude of the mel's
  own frames (the mel config's window and padding; `magnitude_eps` included):
  FastSpeech 2's definition. NVIDIA FastPitch computes `torch.norm(mel, dim=0)`,
  the norm of the *log*-mel frame, which is a function of the stored mel, so a
  model that wants it exactly derives it from `mel` at training time.

  Attributes:
    method: "yin" (the only one).
    fmin: lowest f0 searched, Hz.
    fmax: highest f0 searched, Hz.
    frame_length: samples per analysis frame.
    threshold: YIN's trough threshold (librosa's `trough_threshold`).
    voicing_threshold: frames whose CMNDF at the chosen period is at or above
      this are unvoiced (f0 = 0); see `yin_pitch`. 0.35, stricter than
      yin_pitch's 0.6: with f0 searched up to C7, 0.6 let fricatives through as
      "voiced" at 300-2000 Hz (6.4% of voiced frames of the tiny corpus, where
      pYIN hears no voice), which tripled the corpus f0 std that normalises
      FastPitch's pitch targets; at 0.35 such frames are 0.3%, the rest match
      pYIN's f0 within 0.3%, and voicing agrees with pYIN on 78% of frames
      (fewer frames voiced: 47% against pYIN's 66%).
  """
  method: str = "yin"
  fmin: float = C2_HZ
  fmax: float = C7_HZ
  frame_length: int = 1024
  threshold: float = 0.1
  voicing_threshold: float = 0.35

  def check(self, mel_config: audio_lib.MelConfig) -> None:
    """Raises ValueError, naming the setting and a fix, unless these settings suit `mel_config`."""
    if self.method != "yin":
      raise ValueError(f"pitch method={self.method!r} is not supported; use 'yin'")
    if not 0 < self.threshold < 1:
      raise ValueError(f"pitch threshold={self.threshold} must be in (0, 1) (YIN's usual 0.1)")
    if not self.threshold <= self.voicing_threshold <= 1:
      raise ValueError(f"pitch voicing_threshold={self.voicing_threshold} must be between "
                       f"threshold={self.threshold} and 1 (0.35 by default; higher calls more frames "
                       "voiced)")
    try:
      pitch_lib.check_yin_params(mel_config.sample_rate, self.frame_length,
                                 mel_config.hop_length, self.fmin, self.fmax)
    except ValueError as e:
      raise ValueError(f"pitch settings for {mel_config.sample_rate} Hz audio: "
                       f"{str(e).replace('yin_pitch: ', '')}") from None
    if self.left_pad(mel_config) < 0:
      raise ValueError(f"pitch frame_length={self.frame_length} is shorter than the mel hop "
                       f"{mel_config.hop_length}; pitch frames could not cover the mel frames")

  def left_pad(self, mel_config: audio_lib.MelConfig) -> int:
    """Zeros before the audio so that pitch frame t is centred on mel frame t."""
    # Mel frame t starts at sample t * hop - pad_width (the mel's own padding) and is
    # centred n_fft // 2 later; a pitch frame is centred frame_length // 2 after its start.
    pad_width = mel_lib._stft_pad_width(mel_config)  # pylint: disable=protected-access
    return self.frame_length // 2 - mel_config.n_fft // 2 + pad_width

  def to_dict(self, mel_config: audio_lib.MelConfig) -> Dict[str, Any]:
    """dataset.json's record of the extraction (with the mel-derived hop and alignment)."""
    return {**dataclasses.asdict(self), "hop_length": mel_config.hop_length,
            "sample_rate": mel_config.sample_rate, "center": "mel frames",
            "pad_mode": "constant", "unvoiced": 0.0,
            "energy": "L2 norm over frequency of the linear STFT magnitude per mel frame"}


@dataclasses.dataclass(frozen=True)
class Settings:
  """Per-utterance processing settings, sent once to each worker.

  `threads`: a spawned worker's TensorFlow intra- and inter-op threads, or, preparing in
  the calling process, how many utterances run at once there.
  """
  sample_rate: int
  mel_config: audio_lib.MelConfig
  allow_resample: bool
  allow_downmix: bool
  trim_top_db: Optional[float]
  threads: int
  pitch: Optional[PitchSettings] = None


@dataclasses.dataclass
class Result:
  """What a worker made of one `Task`: a serialized record and its statistics, or a skip."""
  position: int
  serialized: Optional[bytes] = None
  skip: Optional[SkippedEntry] = None
  seconds: float = 0.0
  num_frames: int = 0
  mel_sum: Optional[np.ndarray] = None
  mel_sum_squares: Optional[np.ndarray] = None
  converted: Optional[Dict[str, Any]] = None
  # With pitch: [count, sum, sum of squares] over voiced frames' f0, and over every
  # frame's energy (float64), for stats.json.
  pitch_moments: Optional[Tuple[float, float, float]] = None
  energy_moments: Optional[Tuple[float, float, float]] = None


_WORKER: Dict[str, Any] = {}


def init_worker(settings: Settings, configure_threads: bool):
  """Sets up this process's worker state (the pool initializer; also called in-process)."""
  _WORKER.clear()
  _WORKER["settings"] = settings
  try:
    if configure_threads:
      # A fresh (spawned) process: split the cores between workers instead of
      # letting every worker start a thread per core.
      tf.config.threading.set_intra_op_parallelism_threads(settings.threads)
      tf.config.threading.set_inter_op_parallelism_threads(settings.threads)
    mel_layer = audio_lib.MelSpectrogram(settings.mel_config)
    # One trace for all lengths, instead of op-by-op eager dispatch per utterance.
    signature = [tf.TensorSpec([None], tf.float32)]
    if settings.pitch is None:
      _WORKER["mel"] = tf.function(mel_layer, input_signature=signature)
    else:
      _WORKER["features"] = tf.function(
          lambda audio: frame_features(audio, mel_layer, settings.pitch),
          input_signature=signature)
  except Exception as e:  # pylint: disable=broad-except
    # A Pool whose initializer raises restarts the worker forever; report the
    # error through every task instead.
    _WORKER["init_error"] = f"worker set-up failed: {type(e).__name__}: {e}"


def frame_features(audio, mel_layer, pitch):
  """Log mel, energy and f0 of one utterance, all on the mel's frames (graph-mode TF ops).

  Args:
    audio: `[samples]` float32.
    mel_layer: the `tfspeech.audio.MelSpectrogram` of the records.
    pitch: `PitchSettings`.

  Returns:
    (mel `[frames, n_mels]`, energy `[frames]`, f0 `[frames]` in Hz, 0 where unvoiced).
  """
  config = mel_layer.config
  # The mel exactly as MelSpectrogram.__call__ computes it, from a linear spectrogram
  # that the energy reuses instead of a second STFT.
  linear = mel_layer.linear(audio[tf.newaxis])  # (|X|^2 + eps) ** (power / 2)
  mel = audio_lib.log_compress(tf.matmul(linear, mel_layer.filterbank), config)[0]
  if config.power == 1:
    power_spectrum = tf.square(linear[0])
  elif config.power == 2:
    power_spectrum = linear[0]
  else:
    power_spectrum = tf.pow(linear[0], 2.0 / config.power)
  energy = tf.sqrt(tf.reduce_sum(power_spectrum, axis=-1))
  num_frames = tf.shape(mel)[0]
  # Zeros on the left centre pitch frame t on mel frame t; frame_length zeros on the
  # right are always enough for the last mel frame (extra frames are cut).
  padded = tf.pad(audio, [[pitch.left_pad(config), pitch.frame_length]])
  f0, _ = pitch_lib.yin_pitch(padded, config.sample_rate, pitch.frame_length, config.hop_length,
                              pitch.fmin, pitch.fmax, threshold=pitch.threshold, center=False,
                              voicing_threshold=pitch.voicing_threshold)
  return mel, energy, f0[:num_frames]


def _moments(values):
  values = values.astype(np.float64)  # graph-ok: offline statistics
  return (float(values.size), float(values.sum()), float(np.square(values).sum()))


def _skip(task, reason, message):
  return Result(task.position, skip=SkippedEntry(task.id, reason, message, task.audio_path))


def _load_checked(task: Task, settings: Settings):
  """(decoded mono audio at the target rate, conversion or None), or a skip `Result`.

  The conversion (for report.json) is a dict with the id, the path and the
  from/to sample rate and channel count, set when the file was resampled or
  down-mixed.
  """
  path = task.audio_path
  if not os.path.isfile(path):
    return _skip(task, "missing_file", f"{path}: audio file not found")
  if os.path.getsize(path) == 0:
    return _skip(task, "empty_file", f"{path}: file is empty (0 bytes)")
  try:
    audio, rate = audio_lib.load_audio(path, sample_rate=None, mono=False)
  except audio_lib.AudioError as e:
    return _skip(task, "unreadable_audio", str(e))
  num_samples, channels = audio.shape
  conversion = None
  if channels > 1 or rate != settings.sample_rate:
    conversion = {"id": task.id, "audio_path": path, "from_sample_rate": int(rate),
                  "to_sample_rate": settings.sample_rate, "from_channels": int(channels),
                  "to_channels": 1}
  if num_samples == 0:
    return _skip(task, "empty_audio", f"{path}: contains no samples")
  if channels > 1:
    if not settings.allow_downmix:
      return _skip(task, "channel_mismatch",
                   f"{path}: {channels} channels, expected mono; convert it "
                   "(`sox in.wav -c 1 out.wav`) or pass allow_downmix=True")
    audio = tf.reduce_mean(audio, axis=1)
  else:
    audio = audio[:, 0]
  if rate != settings.sample_rate:
    if not settings.allow_resample:
      return _skip(task, "sample_rate_mismatch",
                   f"{path}: sample rate {rate} Hz, expected {settings.sample_rate} Hz; "
                   f"convert it (`sox in.wav -r {settings.sample_rate} out.wav`) or pass "
                   "allow_resample=True")
    from tfspeech.ops.resample import resample  # Lazy: only corpora that need it pay.
    audio = resample(audio, rate, settings.sample_rate)
  return audio, conversion


def usable_audio(task: Task, settings: Settings):
  """(audio to store, conversion or None) after every audio check, or a skip `Result`."""
  loaded = _load_checked(task, settings)
  if isinstance(loaded, Result):
    return loaded
  audio, conversion = loaded
  if settings.trim_top_db is not None:
    audio, _ = audio_lib.trim_silence(audio, top_db=settings.trim_top_db)
  min_samples = settings.mel_config.n_fft
  if audio.shape[0] < min_samples:
    return _skip(task, "too_short",
                 f"{task.audio_path}: {audio.shape[0]} samples"
                 f"{' after trimming silence' if settings.trim_top_db is not None else ''}, "
                 f"fewer than one analysis window (n_fft={min_samples})")
  return audio, conversion


def process_unchecked(task: Task) -> Result:
  """Decodes, converts and checks the audio, computes the mel and serializes the record."""
  settings = _WORKER["settings"]
  usable = usable_audio(task, settings)
  if isinstance(usable, Result):
    return usable
  audio, conversion = usable
  # The mel is computed from the 16-bit samples that are stored, so vocoder
  # targets and their mels agree exactly.
  pcm = records.quantize_pcm16(audio.numpy())  # graph-ok: offline tool
  samples = tf.constant(pcm, tf.float32) / 32768.0
  pitch = energy = None
  if settings.pitch is None:
    mel = _WORKER["mel"](samples).numpy()  # graph-ok: offline tool
  else:
    mel, energy, pitch = (t.numpy() for t in _WORKER["features"](samples))  # graph-ok: offline
  if not np.isfinite(mel).all():  # graph-ok: offline tool
    return _skip(task, "processing_error", f"{task.audio_path}: mel has non-finite values")
  serialized = records.serialize_example(
      task.id, task.text, task.text_ids, pcm, mel, speaker=task.speaker, pitch=pitch,
      energy=energy)
  mel64 = mel.astype(np.float64)  # graph-ok: offline statistics
  result = Result(task.position, serialized, seconds=pcm.shape[0] / settings.sample_rate,
                  num_frames=mel.shape[0], mel_sum=mel64.sum(axis=0),
                  mel_sum_squares=np.square(mel64).sum(axis=0), converted=conversion)
  if settings.pitch is not None:
    result.pitch_moments = _moments(pitch[pitch > 0])
    result.energy_moments = _moments(energy)
  return result


def process(task: Task, unchecked: Optional[Callable[[Task], Result]] = None) -> Result:
  """The `Result` of one task; never raises: a failure becomes a processing_error skip.

  Args:
    task: the utterance.
    unchecked: the work itself, `process_unchecked` by default (prepare passes
      its own `_process_unchecked`, which tests replace to interrupt a run).
  """
  if "init_error" in _WORKER:
    return _skip(task, "processing_error", _WORKER["init_error"])
  try:
    return (unchecked or process_unchecked)(task)
  except Exception as e:  # pylint: disable=broad-except
    # One strange file must not abort hours of preparation: report it instead.
    detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return _skip(task, "processing_error", f"{task.audio_path}: {type(e).__name__}: {detail}")
