"""Offline corpus preparation: audio + transcripts -> sharded TFRecords, stats, conventions.

`prepare_corpus` reads a corpus once and writes, into `out_dir`:

  train-IIIII-of-NNNNN.tfrecord       examples in the `tfspeech.data.records` schema
  validation-IIIII-of-NNNNN.tfrecord
  *.tfrecord.done                     per-shard marker (JSON): its examples, skipped
                                      entries and partial statistics; lets a re-run
                                      keep finished shards (resume)
  dataset.json                        conventions for training/export: sample rate,
                                      mel config, symbol table, cleaners, speakers,
                                      counts, audio seconds, length deciles; with
                                      pitch, how it was extracted ("pitch_extraction")
                                      and its statistics ("stats": pitch, energy)
  stats.json                          per-mel-bin mean/std over the train split, and
                                      pitch (voiced frames, Hz) / energy mean and std
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

The work is split along its jobs; `prepare_corpus` here runs them in order:
  prepare_plan.py     the listing, transcripts, validation draw, shard plan
  prepare_worker.py   per utterance: decode, resample/down-mix, trim, mel, pitch,
                      energy, record
  prepare_shards.py   shard files, done-markers and resume, stats.json statistics
  corpus_info.py      dataset.json (`CorpusInfo`)
"""

import collections
import dataclasses
import logging
import os
import pathlib
import time
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import tensorflow as tf

import tfspeech
from tfspeech import audio as audio_lib
from tfspeech.data import corpus_info as corpus_info_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data import prepare_plan
from tfspeech.data import prepare_shards
from tfspeech.data import prepare_worker
from tfspeech.data import records
# Public names that lived here before the split; other code imports them from here.
from tfspeech.data.prepare_plan import FORMATS  # pylint: disable=unused-import
from tfspeech.data.prepare_plan import MEL_PRESETS  # pylint: disable=unused-import
from tfspeech.data.prepare_plan import ON_UNKNOWN
from tfspeech.data.prepare_shards import MARKER_SUFFIX  # pylint: disable=unused-import
from tfspeech.data.prepare_worker import PitchSettings
from tfspeech.data.prepare_worker import SkippedEntry

_LOG = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

# Below this many entries `workers=None` prepares in-process: each spawned worker spends
# 6-17 s importing TensorFlow, more than ~250 LJSpeech clips (~25 min of audio) take to
# process in one process at the measured 60-120 audio-s/s.
MIN_ENTRIES_FOR_WORKERS = 256
# Up to this many cores `workers=None` prepares in-process on one thread per core: on 2 cores
# the threads ran 1.35x one thread and 1.2x two spawned workers' steady state (607 s of
# audio with pitch: 1.25 s, 1.70 s, ~1.5 s + 4 s start-up), which also send every record
# back to a third process, the writer, competing for the same cores.
MAX_CORES_IN_PROCESS = 2

# Private helpers that tests and tfspeech.bin.prepare reach by their old names.
_text_lib = prepare_plan.import_text
_read_corpus = prepare_plan.read_corpus
_validation_rank = prepare_plan.validation_rank
_process_unchecked = prepare_worker.process_unchecked


def _process(task: prepare_worker.Task) -> prepare_worker.Result:
  """The pool's task function; spawned workers find it as tfspeech.data.prepare._process.

  It runs `_process_unchecked` looked up here at call time, so a test can
  replace that name to interrupt a run.
  """
  return prepare_worker.process(task, _process_unchecked)


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
    threads: utterances processed at once in this process (workers=1: one per
      core), or each worker's TensorFlow threads.
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
  threads: int = 1
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
        "threads": self.threads,
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
    pitch: Union[bool, PitchSettings] = False,
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
    workers: processes computing audio and mels; 1 = in this process, one
      utterance per core at a time on threads (no TensorFlow start-up per
      worker, no records sent between processes); None = 1 below
      `MIN_ENTRIES_FOR_WORKERS` entries or on up to `MAX_CORES_IN_PROCESS`
      cores, else a spawned process per core.
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
    pitch: False (the default), True (FastPitch's settings,
      `PitchSettings()`) or a `PitchSettings`. With pitch, every record also carries `pitch` (f0 in Hz per mel
      frame by YIN, 0 where unvoiced) and `energy` (L2 norm of the linear STFT
      magnitude per mel frame), both exactly as many as the mel's frames;
      dataset.json records the settings ("pitch_extraction") and the train
      split's pitch mean/std over voiced frames and energy mean/std ("stats").
      Off by default: it about doubles the in-process preparation time
      (benchmarks/prepare.py), which Grad-TTS and HiFi-GAN need not pay. Shards prepared with other
      pitch settings (or without pitch) are re-extracted, not resumed.

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
  config = prepare_plan.resolve_mel_config(mel_config, sample_rate)
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
  if pitch is True:
    pitch = PitchSettings()
  elif pitch is False or pitch is None:
    pitch = None
  elif not isinstance(pitch, PitchSettings):
    raise TypeError(f"pitch must be True, False or a PitchSettings, got {pitch!r}")
  if pitch is not None:
    pitch.check(config)

  # Read the listing before creating out_dir: a wrong corpus path creates nothing.
  utterances = _read_corpus(corpus_dir, format, audio_root)
  # A compressed corpus on a machine that cannot decode it: one error, not a skip per entry.
  first_of_format = {}
  for utterance in utterances:
    first_of_format.setdefault(os.path.splitext(utterance.audio_path)[1].lower(),
                               utterance.audio_path)
  for path in first_of_format.values():
    audio_lib.check_decodable_here(path)
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  skipped = [SkippedEntry(p.id, p.reason, f"{p.source}:{p.line_number}: {p.message}")
             for p in utterances.problems]
  dropped = collections.Counter()
  kept = prepare_plan.encode_transcripts(
      utterances, table, cleaners, on_unknown, cmudict, skipped, dropped)
  speakers = prepare_plan.speaker_indices(u for u, _, _ in kept)
  cores = os.cpu_count() or 1
  if workers is None:
    in_process = len(kept) < MIN_ENTRIES_FOR_WORKERS or cores <= MAX_CORES_IN_PROCESS
    workers = 1 if in_process else cores
  workers = int(workers)

  settings = prepare_worker.Settings(
      config.sample_rate, config, bool(allow_resample), bool(allow_downmix), trim_top_db,
      threads=max(1, cores // max(1, workers)), pitch=pitch)
  num_validation = prepare_plan.num_validation_entries(
      len(kept), validation_fraction, validation_count)
  splits, passed_over = prepare_plan.split_entries(
      kept, num_validation, seed, usable=prepare_plan.audio_screen(settings))
  settings_key = prepare_plan.make_settings_key(settings, table, cleaners)
  shards = prepare_plan.plan_shards(
      splits, {"train": num_shards, "validation": num_validation_shards}, speakers, settings_key)
  prepare_shards.remove_stale_files(out_dir, shards, keep_finished=resume)
  markers = {}
  if resume:
    for shard in shards:
      marker = prepare_shards.load_marker(out_dir, shard)
      if marker is not None:
        markers[shard.name] = marker
  pending = [s for s in shards if s.name not in markers]
  shards_resumed = len(markers)
  _LOG.info("prepare: %d entries, %d shards to write, %d kept from an earlier run",
            len(kept), len(pending), shards_resumed)
  new_markers, first_result_seconds = prepare_shards.run_tasks(
      out_dir, pending, settings, workers, config.n_mels, progress, process=_process)
  processed_seconds = sum(m["audio_seconds"] for m in new_markers.values())
  markers.update(new_markers)

  by_split = {split: [markers[s.name] for s in shards if s.split == split]
              for split in dataset_lib.SPLITS}
  # Audio problems in plan order, after listing and transcript problems.
  for shard in shards:
    skipped.extend(SkippedEntry(**entry) for entry in markers[shard.name]["skipped"])
  # Markers of an older tfspeech have no "converted" list.
  converted = [c for shard in shards for c in markers[shard.name].get("converted", [])]
  counts, seconds, quantiles = prepare_shards.split_statistics(by_split)

  stats = prepare_shards.mel_stats(by_split["train"], config.n_mels)
  corpus_info_lib.write_json(out_dir / dataset_lib.STATS_JSON, stats)
  mel_pad_value = float(audio_lib.log_compress(tf.zeros([]), config))
  extras = {}
  if pitch is not None:
    extras["pitch_extraction"] = pitch.to_dict(config)
    extras["stats"] = {"pitch": stats["pitch"], "energy": stats["energy"]}
  corpus_info_lib.CorpusInfo(
      schema_version=records.SCHEMA_VERSION,
      tfspeech_version=tfspeech.__version__,
      audio_encoding=records.AUDIO_ENCODING,
      mel_config=config,
      mel_pad_value=mel_pad_value,
      symbols=table,
      cleaners=cleaners,
      arpabet=cmudict is not None,
      on_unknown=on_unknown,
      trim_silence_top_db=trim_top_db,
      speakers=speakers,
      num_speakers=(max(speakers.values()) + 1) if speakers else 1,
      counts={**counts, "skipped": len(skipped)},
      audio_seconds=seconds,
      total_audio_seconds=sum(seconds.values()),
      length_quantiles=quantiles,
      shards={split: [s.name for s in shards if s.split == split]
              for split in dataset_lib.SPLITS},
      seed=seed,
      corpus={"path": str(pathlib.Path(corpus_dir).resolve()), "format": format},
      extras=extras,
  ).write(out_dir)

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
  elif pitch is not None and stats["pitch"] is None:
    warnings.append("no frame of the train split is voiced, so there are no pitch statistics; "
                    "is this speech? (check fmin/fmax and voicing_threshold of the pitch "
                    "settings)")
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
      threads=settings.threads,
      converted=tuple(converted),
      validation_passed_over=tuple(passed_over),
      warnings=tuple(warnings))
  corpus_info_lib.write_json(out_dir / dataset_lib.REPORT_JSON, report.to_dict())
  if skipped:
    _LOG.warning("prepare: skipped %d entries (%s); see %s", len(skipped),
                 report.skipped_by_reason, out_dir / dataset_lib.REPORT_JSON)
  return report