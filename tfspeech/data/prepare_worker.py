"""Per-utterance work of `tfspeech.data.prepare`: one corpus entry -> one record.

Each `Task` (an utterance with its encoded transcript) is decoded, down-mixed
and resampled to the target rate if allowed, optionally trimmed, checked, and
turned into a serialized `tfspeech.data.records` example with its mel (from
`tfspeech.audio.MelSpectrogram`, so its conventions are exactly those of
training and export) and per-bin mel sums for stats.json. A faulty entry becomes
a `SkippedEntry` with a reason code instead of an exception.

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
from tfspeech.data import records


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
class Settings:
  """Per-utterance processing settings, sent once to each worker."""
  sample_rate: int
  mel_config: audio_lib.MelConfig
  allow_resample: bool
  allow_downmix: bool
  trim_top_db: Optional[float]
  threads: int


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
    _WORKER["mel"] = tf.function(mel_layer, input_signature=[tf.TensorSpec([None], tf.float32)])
  except Exception as e:  # pylint: disable=broad-except
    # A Pool whose initializer raises restarts the worker forever; report the
    # error through every task instead.
    _WORKER["init_error"] = f"worker set-up failed: {type(e).__name__}: {e}"


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
  mel = _WORKER["mel"](tf.constant(pcm, tf.float32) / 32768.0).numpy()  # graph-ok: offline tool
  if not np.isfinite(mel).all():  # graph-ok: offline tool
    return _skip(task, "processing_error", f"{task.audio_path}: mel has non-finite values")
  serialized = records.serialize_example(
      task.id, task.text, task.text_ids, pcm, mel, speaker=task.speaker)
  mel64 = mel.astype(np.float64)  # graph-ok: offline statistics
  return Result(task.position, serialized, seconds=pcm.shape[0] / settings.sample_rate,
                num_frames=mel.shape[0], mel_sum=mel64.sum(axis=0),
                mel_sum_squares=np.square(mel64).sum(axis=0), converted=conversion)


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
