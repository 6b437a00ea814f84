"""Offline corpus preparation: audio + transcripts -> sharded TFRecords, stats, conventions.

`prepare_corpus` reads a corpus once and writes, into `out_dir`:

  train-IIIII-of-NNNNN.tfrecord       examples in the `tfspeech.data.records` schema
  validation-IIIII-of-NNNNN.tfrecord
  *.tfrecord.done                     per-shard marker (JSON): its examples, skipped
                                      entries and partial statistics; lets a re-run
                                      keep finished shards (resume)
  dataset.json                        conventions for training/export: sample rate,
                                      mel config, symbol table, cleaners, speakers,
                                      counts, audio seconds, length deciles
  stats.json                          per-mel-bin mean/std over the train split
  report.json                         every skipped entry with its reason, every entry
                                      resampled or down-mixed (from/to rate and
                                      channels), warnings, throughput

Bad entries never abort the run; each is skipped with a reason code (a validation
candidate with faulty audio is replaced by the next usable entry, so the validation
split holds good utterances):
  wrong_field_count, empty_id, duplicate_id, ambiguous_layout   (listing lines)
  empty_transcript, unknown_characters                          (text)
  missing_file, empty_file, unreadable_audio, empty_audio,
  too_short, sample_rate_mismatch, channel_mismatch             (audio)
  processing_error                                              (anything unexpected)

This is an offline tool: per-utterance work runs eagerly (TensorFlow ops plus
NumPy), in a pool of 'spawn' processes so each worker imports TensorFlow once
and never inherits a forked TF runtime. The mel comes from
`tfspeech.audio.MelSpectrogram`, so its conventions are exactly those of
training and export.
"""

import collections
import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import os
import pathlib
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
import tqdm

import tfspeech
from tfspeech import audio as audio_lib
from tfspeech.data import corpus as corpus_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data import records

_LOG = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
FORMATS = ("ljspeech", "filelist")
ON_UNKNOWN = ("error", "warn", "drop")
MARKER_SUFFIX = ".done"
_STD_FLOOR = 1e-5
_DECILES = np.linspace(0.0, 1.0, 11)


@dataclasses.dataclass(frozen=True)
class SkippedEntry:
  """A corpus entry left out of the prepared data.

  Attributes:
    id: the entry's id ("" when the line had none).
    reason: reason code (see the module docstring).
    message: what is wrong, with the file or line it concerns.
    audio_path: the audio file, when known.
  """
  id: str
  reason: str
  message: str
  audio_path: str = ""


@dataclasses.dataclass(frozen=True)
class PrepareReport:
  """What `prepare_corpus` did.

  Attributes:
    out_dir: the prepared directory.
    num_train: examples in the train split.
    num_validation: examples in the validation split.
    skipped: every skipped entry, with its reason.
    audio_seconds: seconds of audio per split.
    processed_audio_seconds: audio seconds processed in this run (not resumed).
    wall_seconds: wall time of this run.
    throughput: processed audio seconds per wall-clock second.
    shards_written: shards (re)written in this run.
    shards_resumed: finished shards kept from an earlier run.
    dropped_symbols: unknown symbols removed from kept transcripts
      (on_unknown="drop"), with counts.
    first_result_seconds: wall time from starting the workers to the first
      processed utterance; mostly worker start-up (importing TensorFlow), which
      dominates `throughput` on small corpora.
    workers: worker processes asked for (1 = in-process).
    converted: one dict per kept entry whose audio was resampled or down-mixed:
      id, audio_path, from/to_sample_rate, from/to_channels.
    validation_passed_over: ids of validation candidates whose audio is
      faulty; the next-ranked usable entries were held out instead (the faulty
      ones are skipped with their reason like any other).
    warnings: problems with the prepared data as a whole (e.g. an empty
      validation split), also logged as warnings.
  """
  out_dir: str
  num_train: int
  num_validation: int
  skipped: Tuple[SkippedEntry, ...]
  audio_seconds: Dict[str, float]
  processed_audio_seconds: float
  wall_seconds: float
  throughput: float
  shards_written: int
  shards_resumed: int
  dropped_symbols: Dict[str, int] = dataclasses.field(default_factory=dict)
  first_result_seconds: float = 0.0
  workers: int = 1
  converted: Tuple[Dict[str, Any], ...] = ()
  validation_passed_over: Tuple[str, ...] = ()
  warnings: Tuple[str, ...] = ()

  @property
  def num_skipped(self) -> int:
    return len(self.skipped)

  @property
  def num_resampled(self) -> int:
    return sum(c["from_sample_rate"] != c["to_sample_rate"] for c in self.converted)

  @property
  def num_downmixed(self) -> int:
    return sum(c["from_channels"] != c["to_channels"] for c in self.converted)

  @property
  def skipped_by_reason(self) -> Dict[str, int]:
    return dict(sorted(collections.Counter(s.reason for s in self.skipped).items()))

  def to_dict(self) -> dict:
    return {
        "out_dir": self.out_dir,
        "num_train": self.num_train,
        "num_validation": self.num_validation,
        "num_skipped": self.num_skipped,
        "workers": self.workers,
        "skipped_by_reason": self.skipped_by_reason,
        "audio_seconds": self.audio_seconds,
        "processed_audio_seconds": self.processed_audio_seconds,
        "wall_seconds": self.wall_seconds,
        "throughput_audio_seconds_per_second": self.throughput,
        "shards_written": self.shards_written,
        "shards_resumed": self.shards_resumed,
        "first_result_seconds": self.first_result_seconds,
        "dropped_symbols": self.dropped_symbols,
        "warnings": list(self.warnings),
        "num_resampled": self.num_resampled,
        "num_downmixed": self.num_downmixed,
        "validation_passed_over": list(self.validation_passed_over),
        "skipped": [dataclasses.asdict(s) for s in self.skipped],
        "converted": list(self.converted),
    }


@dataclasses.dataclass(frozen=True)
class _Task:
  """One utterance to turn into a record (picklable, sent to workers)."""
  position: int
  id: str
  audio_path: str
  text: str
  text_ids: Tuple[int, ...]
  speaker: int
  split: str


@dataclasses.dataclass(frozen=True)
class _Settings:
  """Per-utterance processing settings, sent once to each worker."""
  sample_rate: int
  mel_config: audio_lib.MelConfig
  allow_resample: bool
  allow_downmix: bool
  trim_top_db: Optional[float]
  threads: int


@dataclasses.dataclass
class _Result:
  position: int
  serialized: Optional[bytes] = None
  skip: Optional[SkippedEntry] = None
  seconds: float = 0.0
  num_frames: int = 0
  mel_sum: Optional[np.ndarray] = None
  mel_sum_squares: Optional[np.ndarray] = None
  converted: Optional[Dict[str, Any]] = None


@dataclasses.dataclass
class _Shard:
  split: str
  index: int
  count: int
  tasks: List[_Task]
  fingerprint: str

  @property
  def name(self) -> str:
    return dataset_lib.shard_name(self.split, self.index, self.count)


# Below this many entries `workers=None` prepares in-process: each spawned worker spends
# 6-17 s importing TensorFlow, more than ~250 LJSpeech clips (~25 min of audio) take to
# process in one process at the measured 60-120 audio-s/s.
MIN_ENTRIES_FOR_WORKERS = 256

# --- per-utterance work (runs in workers) --------------------------------------------------

_WORKER: Dict[str, Any] = {}


def _init_worker(settings: _Settings, configure_threads: bool):
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
  return _Result(task.position, skip=SkippedEntry(task.id, reason, message, task.audio_path))


def _load_checked(task: _Task, settings: _Settings):
  """(decoded mono audio at the target rate, conversion or None), or a skip `_Result`.

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


def _usable_audio(task: _Task, settings: _Settings):
  """(audio to store, conversion or None) after every audio check, or a skip `_Result`."""
  loaded = _load_checked(task, settings)
  if isinstance(loaded, _Result):
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


def _process_unchecked(task: _Task) -> _Result:
  settings = _WORKER["settings"]
  usable = _usable_audio(task, settings)
  if isinstance(usable, _Result):
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
  return _Result(task.position, serialized, seconds=pcm.shape[0] / settings.sample_rate,
                 num_frames=mel.shape[0], mel_sum=mel64.sum(axis=0),
                 mel_sum_squares=np.square(mel64).sum(axis=0), converted=conversion)


def _process(task: _Task) -> _Result:
  if "init_error" in _WORKER:
    return _skip(task, "processing_error", _WORKER["init_error"])
  try:
    return _process_unchecked(task)
  except Exception as e:  # pylint: disable=broad-except
    # One strange file must not abort hours of preparation: report it instead.
    detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return _skip(task, "processing_error", f"{task.audio_path}: {type(e).__name__}: {detail}")


# --- planning ------------------------------------------------------------------------------


def _text_lib():
  # Imported here, not at module level: spawned workers import this module but
  # never touch text, and the text front end is slow to import (inflect).
  from tfspeech import text  # pylint: disable=import-outside-toplevel
  return text


MEL_PRESETS = ("hifigan", "gradtts", "tacotron2", "librosa")


def _resolve_mel_config(mel_config, sample_rate):
  if isinstance(mel_config, str):
    if mel_config not in MEL_PRESETS:
      raise ValueError(f"mel_config={mel_config!r} is not a MelConfig preset; use one of "
                       f"{MEL_PRESETS} or pass a tfspeech.audio.MelConfig")
    preset = getattr(audio_lib.MelConfig, mel_config)
    return preset() if sample_rate is None else preset(sample_rate=int(sample_rate))
  if not isinstance(mel_config, audio_lib.MelConfig):
    raise TypeError(f"mel_config must be a MelConfig or a preset name, got {mel_config!r}")
  if sample_rate is not None and int(sample_rate) != mel_config.sample_rate:
    raise ValueError(f"sample_rate={sample_rate} disagrees with mel_config.sample_rate="
                     f"{mel_config.sample_rate}; pass sample_rate=None or a matching MelConfig")
  return mel_config


def _read_corpus(corpus_dir, format, audio_root):  # pylint: disable=redefined-builtin
  if format == "ljspeech":
    return corpus_lib.read_ljspeech(corpus_dir)
  if format == "filelist":
    return corpus_lib.read_filelist(corpus_dir, root=audio_root)
  raise ValueError(f"format={format!r} is not one of {FORMATS}")


def _speaker_indices(utterances) -> Dict[str, int]:
  """Speaker label -> index. Integer labels keep their value (Grad-TTS filelists)."""
  labels = sorted({u.speaker for u in utterances if u.speaker is not None})
  if all(label.isdigit() for label in labels):
    return {label: int(label) for label in labels}
  return {label: index for index, label in enumerate(labels)}


def _encode_transcripts(utterances, table, cleaners, on_unknown, cmudict, skipped, dropped):
  """(utterance, cleaned text, ids) for usable transcripts; others go to `skipped`."""
  text_lib = _text_lib()
  special_ids = {table.id_of(s) for s in table.special_symbols}
  kept = []
  for utterance in utterances:
    cleaned = text_lib.clean_text(utterance.text, cleaners)
    encoding = text_lib.encode_text(utterance.text, table, cleaners, cmudict=cmudict,
                                    on_unknown="drop")
    if encoding.unknown and on_unknown == "error":
      described = ", ".join(f"{s!r} x{n}" for s, n in sorted(encoding.unknown.items()))
      skipped.append(SkippedEntry(
          utterance.id, "unknown_characters",
          f"transcript {utterance.text!r} has symbols not in table {table.name!r}: {described}; "
          "fix the text, use other cleaners/symbols, or pass on_unknown='drop'",
          utterance.audio_path))
      continue
    if not cleaned.strip() or all(i in special_ids for i in encoding.ids):
      skipped.append(SkippedEntry(
          utterance.id, "empty_transcript",
          f"transcript {utterance.text!r} is empty after cleaning with {list(cleaners)}",
          utterance.audio_path))
      continue
    if encoding.unknown and on_unknown == "warn":
      _LOG.warning("%s: dropped symbols not in table %r from transcript %r: %s", utterance.id,
                   table.name, utterance.text, dict(encoding.unknown))
    dropped.update(encoding.unknown)
    kept.append((utterance, cleaned, tuple(encoding.ids)))
  return kept


def _validation_count(total, validation_fraction, validation_count):
  if validation_count is not None:
    if validation_count < 0:
      raise ValueError(f"validation_count must be >= 0, got {validation_count}")
    return min(int(validation_count), total)
  if not 0.0 <= validation_fraction < 1.0:
    raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
  count = int(round(total * validation_fraction))
  if validation_fraction > 0 and total >= 2:
    count = max(count, 1)
  return min(count, total - 1) if total else 0


def _validation_rank(utterance_id: str, seed: int) -> str:
  """Sort key of the validation draw: the lowest-ranked usable entries are held out."""
  return hashlib.sha256(f"{seed}:{utterance_id}".encode("utf-8")).hexdigest()


def _split(kept, num_validation, seed, usable=None):
  """Deterministic split: validation = the usable entries whose hash(seed, id) ranks lowest.

  Ranking by a per-id hash (rather than shuffling a list) keeps an entry's
  split stable when other entries are added or removed.

  Args:
    kept: (utterance, cleaned text, ids) tuples.
    num_validation: entries to hold out.
    seed: seed of the ranking.
    usable: optional predicate on an entry, asked in rank order until
      `num_validation` entries pass; entries that fail stay in train (where
      their worker skips them with the reason), so one broken file among the
      candidates does not shrink or empty the validation split.

  Returns:
    ({"train": [...], "validation": [...]}, ids of candidates passed over).
  """
  validation_ids, passed_over = set(), []
  for item in sorted(kept, key=lambda item: _validation_rank(item[0].id, seed)):
    if len(validation_ids) == num_validation:
      break
    if usable is None or usable(item):
      validation_ids.add(item[0].id)
    else:
      passed_over.append(item[0].id)
  return {
      "train": [item for item in kept if item[0].id not in validation_ids],
      "validation": [item for item in kept if item[0].id in validation_ids],
  }, passed_over


def _audio_screen(settings):
  """Predicate for `_split`: whether an entry's audio passes every check of its worker.

  Decodes (and, if needed, resamples) the file in this process; the mel is left
  to the worker. Only validation candidates are screened, a small share of the
  corpus, so this costs little next to the preparation itself.
  """
  def usable(item):
    utterance, cleaned, ids = item
    task = _Task(-1, utterance.id, utterance.audio_path, cleaned, ids, 0, "validation")
    try:
      return not isinstance(_usable_audio(task, settings), _Result)
    except Exception:  # pylint: disable=broad-except
      return False  # The worker reports it as processing_error.
  return usable


def _fingerprint(settings_key, tasks):
  digest = hashlib.sha256(settings_key.encode("utf-8"))
  for task in tasks:
    digest.update(json.dumps([task.id, task.audio_path, task.text, task.text_ids,
                              task.speaker]).encode("utf-8"))
  return digest.hexdigest()


def _plan_shards(splits, shard_counts, speakers, settings_key):
  """Deals each split's entries round-robin into its shards; tasks are numbered in plan order."""
  shards = []
  position = 0
  for split in dataset_lib.SPLITS:
    count = shard_counts[split]
    for shard_index in range(count):
      tasks = []
      for utterance, cleaned, ids in splits[split][shard_index::count]:
        speaker = 0 if utterance.speaker is None else speakers[utterance.speaker]
        tasks.append(_Task(position, utterance.id, utterance.audio_path, cleaned, ids,
                           speaker, split))
        position += 1
      shards.append(_Shard(split, shard_index, count, tasks, _fingerprint(settings_key, tasks)))
  return shards


# --- shard files ---------------------------------------------------------------------------


def _write_json(path: pathlib.Path, data):
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
  os.replace(tmp, path)


def _load_marker(out_dir, shard):
  marker = out_dir / (shard.name + MARKER_SUFFIX)
  if not marker.is_file() or not (out_dir / shard.name).is_file():
    return None
  try:
    data = json.loads(marker.read_text(encoding="utf-8"))
  except (OSError, ValueError):
    return None
  return data if data.get("fingerprint") == shard.fingerprint else None


def _remove_stale_files(out_dir, shards, keep_finished):
  """Deletes shards/markers not in the plan (or all, when not resuming) and temp files."""
  planned = {s.name for s in shards}
  for split in dataset_lib.SPLITS:
    for path in out_dir.glob(f"{split}-*"):
      base = path.name
      for suffix in (".tmp", MARKER_SUFFIX):
        base = base[:-len(suffix)] if base.endswith(suffix) else base
      if path.name.endswith(".tmp") or base not in planned or not keep_finished:
        path.unlink()


class _ShardWriter:
  """Writes one shard to a temp file; `finish` renames it and writes its marker."""

  def __init__(self, out_dir, shard, n_mels):
    self.out_dir = out_dir
    self.shard = shard
    self.tmp_path = out_dir / (shard.name + ".tmp")
    self.writer = tf.io.TFRecordWriter(str(self.tmp_path))
    self.remaining = len(shard.tasks)
    self.marker = {
        "fingerprint": shard.fingerprint, "split": shard.split, "index": shard.index,
        "count": shard.count, "num_examples": 0, "audio_seconds": 0.0, "mel_frames": 0,
        "frame_lengths": [], "skipped": [], "converted": [],
    }
    self._sum = np.zeros(n_mels)  # graph-ok: offline statistics
    self._sum_squares = np.zeros(n_mels)  # graph-ok: offline statistics

  def add(self, result: _Result):
    self.remaining -= 1
    if result.skip is not None:
      self.marker["skipped"].append(dataclasses.asdict(result.skip))
      return
    self.writer.write(result.serialized)
    if result.converted is not None:
      self.marker["converted"].append(result.converted)
    self.marker["num_examples"] += 1
    self.marker["audio_seconds"] += result.seconds
    self.marker["mel_frames"] += result.num_frames
    self.marker["frame_lengths"].append(result.num_frames)
    self._sum += result.mel_sum
    self._sum_squares += result.mel_sum_squares

  def finish(self):
    self.writer.close()
    os.replace(self.tmp_path, self.out_dir / self.shard.name)
    self.marker["mel_sum"] = self._sum.tolist()
    self.marker["mel_sum_squares"] = self._sum_squares.tolist()
    _write_json(self.out_dir / (self.shard.name + MARKER_SUFFIX), self.marker)
    return self.marker


def _run_tasks(out_dir, pending, settings, workers, n_mels, progress):
  """Processes the pending shards' utterances.

  Returns:
    (markers by shard name, seconds from start to the first result).
  """
  tasks = [task for shard in pending for task in shard.tasks]
  shard_of = {task.position: shard for shard in pending for task in shard.tasks}
  markers = {}
  writers = {}

  def open_writer(shard):
    writers[shard.name] = _ShardWriter(out_dir, shard, n_mels)
    if not shard.tasks:
      markers[shard.name] = writers.pop(shard.name).finish()

  for shard in pending:
    if not shard.tasks:
      open_writer(shard)

  workers = max(1, min(int(workers), len(tasks)))
  bar = tqdm.tqdm(total=len(tasks), unit="utt", desc="prepare", disable=not progress)
  pool = None
  started = time.perf_counter()
  first_result_seconds = 0.0
  try:
    if workers == 1:
      _init_worker(settings, configure_threads=False)
      results = map(_process, tasks)
    else:
      pool = multiprocessing.get_context("spawn").Pool(
          workers, initializer=_init_worker, initargs=(settings, True))
      # Ordered results: shards are written in plan order and finish one by one,
      # so an interruption loses at most the shards in flight.
      results = pool.imap(_process, tasks, chunksize=max(1, min(8, len(tasks) // (4 * workers))))
    for result in results:
      if not first_result_seconds:
        first_result_seconds = time.perf_counter() - started
      shard = shard_of[result.position]
      if shard.name not in writers:
        open_writer(shard)
      writer = writers[shard.name]
      writer.add(result)
      if writer.remaining == 0:
        markers[shard.name] = writers.pop(shard.name).finish()
      bar.update(1)
  finally:
    bar.close()
    if pool is not None:
      pool.terminate()
      pool.join()
    for writer in writers.values():  # Only after an error: leave no half shard behind.
      writer.writer.close()
      writer.tmp_path.unlink(missing_ok=True)
  return markers, first_result_seconds


# --- the entry point -----------------------------------------------------------------------


def _mel_stats(markers, n_mels):
  frames = sum(m["mel_frames"] for m in markers)
  if not frames:
    return {"mel_mean": None, "mel_std": None, "mel_frames": 0, "pitch": None, "energy": None}
  total = np.sum([m["mel_sum"] for m in markers], axis=0)  # graph-ok: offline statistics
  total_squares = np.sum([m["mel_sum_squares"] for m in markers], axis=0)  # graph-ok: offline
  mean = total / frames
  std = np.sqrt(np.maximum(total_squares / frames - np.square(mean), 0.0))
  global_mean = float(total.sum() / (frames * n_mels))
  global_var = float(total_squares.sum() / (frames * n_mels)) - global_mean ** 2
  return {
      "mel_mean": mean.tolist(),
      # Floored so that normalizing never divides by zero (e.g. bins above fmax).
      "mel_std": np.maximum(std, _STD_FLOOR).tolist(),
      "mel_global_mean": global_mean,
      "mel_global_std": max(math.sqrt(max(global_var, 0.0)), _STD_FLOOR),
      "mel_frames": int(frames),
      "std_floor": _STD_FLOOR,
      "split": "train",
      "pitch": None,  # Filled once pitch extraction exists.
      "energy": None,
  }


def prepare_corpus(
    corpus_dir: PathLike,
    out_dir: PathLike,
    format: str = "ljspeech",  # pylint: disable=redefined-builtin
    sample_rate: Optional[int] = None,
    mel_config: Union[str, audio_lib.MelConfig] = "hifigan",
    symbols: Union[str, "tfspeech.text.SymbolTable"] = "english_characters",
    cleaners: Sequence[str] = ("english_cleaners",),
    validation_fraction: float = 0.05,
    validation_count: Optional[int] = None,
    num_shards: int = 4,
    num_validation_shards: int = 1,
    seed: int = 0,
    workers: Optional[int] = None,
    allow_resample: bool = True,
    allow_downmix: bool = True,
    trim_silence: Union[bool, float] = False,
    on_unknown: str = "error",
    cmudict: Optional["tfspeech.text.CMUDict"] = None,
    audio_root: Optional[PathLike] = None,
    resume: bool = True,
    progress: bool = True,
) -> PrepareReport:
  """Converts a corpus once into sharded TFRecords plus its conventions and statistics.

  Args:
    corpus_dir: LJSpeech-layout directory (format "ljspeech"), or the filelist
      file (format "filelist").
    out_dir: where to write (created if needed).
    format: "ljspeech" or "filelist" (see `tfspeech.data.corpus`).
    sample_rate: target rate in Hz; None = the mel config's. A MelConfig with
      another rate is an error; a preset name is built at this rate.
    mel_config: a `tfspeech.audio.MelConfig` or a preset name ("hifigan",
      "gradtts", "tacotron2", "librosa").
    symbols: a `tfspeech.text.SymbolTable` or a preset name.
    cleaners: text cleaner names applied before tokenizing.
    validation_fraction: share of entries for validation (at least 1 when > 0
      and there are 2+ entries), used when `validation_count` is None.
    validation_count: exact number of validation entries.
    num_shards: train shards.
    num_validation_shards: validation shards.
    seed: seed of the train/validation split.
    workers: processes computing audio and mels; 1 = in this process (no
      TensorFlow start-up per worker); None = 1 below `MIN_ENTRIES_FOR_WORKERS`
      entries, else all cores.
    allow_resample: resample files at another rate (else skip them).
    allow_downmix: average multi-channel files to mono (else skip them).
    trim_silence: False, True (trim below 60 dB under the peak) or a top_db
      value; see `tfspeech.audio.trim_silence`.
    on_unknown: transcripts with symbols missing from the table: "error" skips
      the entry (reason unknown_characters); "drop" keeps it without those
      symbols and counts them in the report (`dropped_symbols`); "warn" does
      the same and also logs a warning per affected entry.
    cmudict: optional `tfspeech.text.CMUDict` to store ARPAbet ids (needs an
      ARPAbet symbol table); words are always converted (p_arpabet = 1).
    audio_root: for filelists, the directory relative audio paths start from
      (default: the filelist's directory).
    resume: keep shards finished by an earlier run with the same inputs and
      settings (checked by fingerprint); False rewrites everything.
    progress: show a tqdm progress bar.

  Returns:
    A `PrepareReport` (also written to `out_dir/report.json`).

  Raises:
    FileNotFoundError: if the corpus listing does not exist.
    ValueError/TypeError: on invalid arguments. Bad corpus entries never raise.
  """
  start_time = time.perf_counter()
  if on_unknown not in ON_UNKNOWN:
    raise ValueError(f"on_unknown must be one of {ON_UNKNOWN}, got {on_unknown!r}")
  if num_shards < 1 or num_validation_shards < 1:
    raise ValueError(f"num_shards ({num_shards}) and num_validation_shards "
                     f"({num_validation_shards}) must be >= 1")
  config = _resolve_mel_config(mel_config, sample_rate)
  text_lib = _text_lib()
  table = text_lib.get_symbol_table(symbols) if isinstance(symbols, str) else symbols
  cleaners = (cleaners,) if isinstance(cleaners, str) else tuple(cleaners)
  for name in cleaners:
    text_lib.get_cleaner(name)  # Fail fast on a typo, before any work.
  trim_top_db = None if trim_silence is False else (60.0 if trim_silence is True
                                                   else float(trim_silence))
  if validation_count is not None and validation_count < 0:
    raise ValueError(f"validation_count must be >= 0, got {validation_count}")
  if validation_count is None and not 0.0 <= validation_fraction < 1.0:
    raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")

  # Read the listing before creating out_dir: a wrong corpus path creates nothing.
  utterances = _read_corpus(corpus_dir, format, audio_root)
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  skipped = [SkippedEntry(p.id, p.reason, f"{p.source}:{p.line_number}: {p.message}")
             for p in utterances.problems]
  dropped = collections.Counter()
  kept = _encode_transcripts(utterances, table, cleaners, on_unknown, cmudict, skipped, dropped)
  speakers = _speaker_indices(u for u, _, _ in kept)
  if workers is None:
    workers = 1 if len(kept) < MIN_ENTRIES_FOR_WORKERS else (os.cpu_count() or 1)
  workers = int(workers)

  settings = _Settings(config.sample_rate, config, bool(allow_resample), bool(allow_downmix),
                       trim_top_db, threads=max(1, (os.cpu_count() or 1) // max(1, workers)))
  num_validation = _validation_count(len(kept), validation_fraction, validation_count)
  splits, passed_over = _split(kept, num_validation, seed, usable=_audio_screen(settings))
  settings_key = json.dumps([records.SCHEMA_VERSION, dataclasses.asdict(config),
                             table.to_dict(), cleaners, settings.allow_resample,
                             settings.allow_downmix, trim_top_db])
  shards = _plan_shards(splits, {"train": num_shards, "validation": num_validation_shards},
                        speakers, settings_key)
  _remove_stale_files(out_dir, shards, keep_finished=resume)
  markers = {}
  if resume:
    for shard in shards:
      marker = _load_marker(out_dir, shard)
      if marker is not None:
        markers[shard.name] = marker
  pending = [s for s in shards if s.name not in markers]
  shards_resumed = len(markers)
  _LOG.info("prepare: %d entries, %d shards to write, %d kept from an earlier run",
            len(kept), len(pending), shards_resumed)
  new_markers, first_result_seconds = _run_tasks(out_dir, pending, settings, workers, config.n_mels, progress)
  processed_seconds = sum(m["audio_seconds"] for m in new_markers.values())
  markers.update(new_markers)

  by_split = {split: [markers[s.name] for s in shards if s.split == split]
              for split in dataset_lib.SPLITS}
  # Audio problems in plan order, after listing and transcript problems.
  for shard in shards:
    skipped.extend(SkippedEntry(**entry) for entry in markers[shard.name]["skipped"])
  # Markers of an older tfspeech have no "converted" list.
  converted = [c for shard in shards for c in markers[shard.name].get("converted", [])]
  counts = {split: sum(m["num_examples"] for m in by_split[split]) for split in by_split}
  seconds = {split: sum(m["audio_seconds"] for m in by_split[split]) for split in by_split}
  quantiles = {}
  for split, split_markers in by_split.items():
    lengths = [n for m in split_markers for n in m["frame_lengths"]]
    quantiles[split] = np.quantile(lengths, _DECILES).tolist() if lengths else []

  stats = _mel_stats(by_split["train"], config.n_mels)
  _write_json(out_dir / dataset_lib.STATS_JSON, stats)
  mel_pad_value = float(audio_lib.log_compress(tf.zeros([]), config))
  info = {
      "schema_version": records.SCHEMA_VERSION,
      "tfspeech_version": tfspeech.__version__,
      "audio_encoding": records.AUDIO_ENCODING,
      "sample_rate": config.sample_rate,
      "mel_config": dataclasses.asdict(config),
      "n_mels": config.n_mels,
      "hop_length": config.hop_length,
      "mel_pad_value": mel_pad_value,
      "symbols": table.to_dict(),
      "cleaners": list(cleaners),
      "arpabet": cmudict is not None,
      "on_unknown": on_unknown,
      "trim_silence_top_db": trim_top_db,
      "speakers": speakers,
      "num_speakers": (max(speakers.values()) + 1) if speakers else 1,
      "counts": {**counts, "skipped": len(skipped)},
      "audio_seconds": seconds,
      "total_audio_seconds": sum(seconds.values()),
      "length_quantiles": quantiles,
      "shards": {split: [s.name for s in shards if s.split == split]
                 for split in dataset_lib.SPLITS},
      "seed": seed,
      "corpus": {"path": str(pathlib.Path(corpus_dir).resolve()), "format": format},
  }
  _write_json(out_dir / dataset_lib.DATASET_JSON, info)

  warnings = []
  if passed_over:
    _LOG.info("prepare: validation candidates with faulty audio stay in train (and are "
              "skipped): %s", passed_over)
  if counts["validation"] < num_validation:
    outcome = ("training runs without validation" if not counts["validation"] else
               "validation metrics rest on fewer utterances")
    warnings.append(
        f"the validation split holds {counts['validation']} of the {num_validation} utterances "
        f"asked for: too few entries have usable audio and a transcript (see 'skipped' in "
        f"report.json); {outcome}")
  if not counts["train"]:
    warnings.append("the train split is empty: no entry has usable audio and a transcript "
                    "(see 'skipped' in report.json); there is nothing to train on")
  for warning in warnings:
    _LOG.warning("prepare: %s", warning)

  wall_seconds = time.perf_counter() - start_time
  report = PrepareReport(
      out_dir=str(out_dir), num_train=counts["train"], num_validation=counts["validation"],
      skipped=tuple(skipped), audio_seconds=seconds, processed_audio_seconds=processed_seconds,
      wall_seconds=wall_seconds,
      throughput=processed_seconds / wall_seconds if wall_seconds > 0 else 0.0,
      shards_written=len(pending), shards_resumed=shards_resumed,
      dropped_symbols=dict(sorted(dropped.items())),
      first_result_seconds=first_result_seconds,
      workers=workers,
      converted=tuple(converted),
      validation_passed_over=tuple(passed_over),
      warnings=tuple(warnings))
  _write_json(out_dir / dataset_lib.REPORT_JSON, report.to_dict())
  if skipped:
    _LOG.warning("prepare: skipped %d entries (%s); see %s", len(skipped),
                 report.skipped_by_reason, out_dir / dataset_lib.REPORT_JSON)
  return report
