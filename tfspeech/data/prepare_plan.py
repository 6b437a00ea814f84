"""Planning of `tfspeech.data.prepare`: the listing, transcripts, splits and shards.

Reads the corpus listing, cleans and encodes every transcript (entries whose
text is unusable are skipped with a reason), numbers speakers, draws the
validation split (a per-id hash ranking, screening candidates' audio so that
faulty files stay out of validation) and deals the entries into shards of
`Task`s, each with a fingerprint of its entries and settings for resume.
Runs in the main process only.
"""

import dataclasses
import hashlib
import json
import logging
from typing import Dict, List

from tfspeech import audio as audio_lib
from tfspeech.data import corpus as corpus_lib
from tfspeech.data import dataset as dataset_lib
from tfspeech.data import records
from tfspeech.data.prepare_worker import Result
from tfspeech.data.prepare_worker import Settings
from tfspeech.data.prepare_worker import SkippedEntry
from tfspeech.data.prepare_worker import Task
from tfspeech.data.prepare_worker import usable_audio

# One logger for all of prepare (its name from before the split into modules).
_LOG = logging.getLogger("tfspeech.data.prepare")

FORMATS = ("ljspeech", "filelist")
ON_UNKNOWN = ("error", "warn", "drop")
MEL_PRESETS = ("hifigan", "gradtts", "tacotron2", "librosa")


@dataclasses.dataclass
class Shard:
  """One planned output file: its split, index, count, tasks and fingerprint."""
  split: str
  index: int
  count: int
  tasks: List[Task]
  fingerprint: str

  @property
  def name(self) -> str:
    return dataset_lib.shard_name(self.split, self.index, self.count)


def import_text():
  # Imported here, not at module level: spawned workers import this module but
  # never touch text, and the text front end is slow to import (inflect).
  from tfspeech import text  # pylint: disable=import-outside-toplevel
  return text


def resolve_mel_config(mel_config, sample_rate) -> audio_lib.MelConfig:
  """The MelConfig of `prepare_corpus(mel_config=, sample_rate=)`; ValueError/TypeError if bad."""
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


def read_corpus(corpus_dir, format, audio_root):  # pylint: disable=redefined-builtin
  """The corpus listing (`tfspeech.data.corpus.UtteranceList`) in `format`."""
  if format == "ljspeech":
    return corpus_lib.read_ljspeech(corpus_dir)
  if format == "filelist":
    return corpus_lib.read_filelist(corpus_dir, root=audio_root)
  raise ValueError(f"format={format!r} is not one of {FORMATS}")


def speaker_indices(utterances) -> Dict[str, int]:
  """Speaker label -> index. Integer labels keep their value (Grad-TTS filelists)."""
  labels = sorted({u.speaker for u in utterances if u.speaker is not None})
  if all(label.isdigit() for label in labels):
    return {label: int(label) for label in labels}
  return {label: index for index, label in enumerate(labels)}


def encode_transcripts(utterances, table, cleaners, on_unknown, cmudict, skipped, dropped):
  """(utterance, cleaned text, ids) for usable transcripts; others go to `skipped`."""
  text_lib = import_text()
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


def num_validation_entries(total, validation_fraction, validation_count) -> int:
  """How many of `total` usable entries to hold out for validation."""
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


def validation_rank(utterance_id: str, seed: int) -> str:
  """Sort key of the validation draw: the lowest-ranked usable entries are held out."""
  return hashlib.sha256(f"{seed}:{utterance_id}".encode("utf-8")).hexdigest()


def split_entries(kept, num_validation, seed, usable=None):
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
  for item in sorted(kept, key=lambda item: validation_rank(item[0].id, seed)):
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


def audio_screen(settings):
  """Predicate for `split_entries`: whether an entry's audio passes every check of its worker.

  Decodes (and, if needed, resamples) the file in this process; the mel is left
  to the worker. Only validation candidates are screened, a small share of the
  corpus, so this costs little next to the preparation itself.
  """
  def usable(item):
    utterance, cleaned, ids = item
    task = Task(-1, utterance.id, utterance.audio_path, cleaned, ids, 0, "validation")
    try:
      return not isinstance(usable_audio(task, settings), Result)
    except Exception:  # pylint: disable=broad-except
      return False  # The worker reports it as processing_error.
  return usable


def make_settings_key(settings: Settings, table, cleaners) -> str:
  """Everything besides the entries that shapes a record; part of every shard fingerprint."""
  key = [records.SCHEMA_VERSION, dataclasses.asdict(settings.mel_config), table.to_dict(),
         cleaners, settings.allow_resample, settings.allow_downmix, settings.trim_top_db]
  if settings.pitch is not None:
    # Only with pitch, so shards prepared without it keep their fingerprints.
    key.append({"pitch": dataclasses.asdict(settings.pitch)})
  return json.dumps(key)


def fingerprint(settings_key, tasks):
  """Identifies a shard's content: a finished shard with the same fingerprint is kept (resume)."""
  digest = hashlib.sha256(settings_key.encode("utf-8"))
  for task in tasks:
    digest.update(json.dumps([task.id, task.audio_path, task.text, task.text_ids,
                              task.speaker]).encode("utf-8"))
  return digest.hexdigest()


def plan_shards(splits, shard_counts, speakers, settings_key):
  """Deals each split's entries round-robin into its shards; tasks are numbered in plan order."""
  shards = []
  position = 0
  for split in dataset_lib.SPLITS:
    count = shard_counts[split]
    for shard_index in range(count):
      tasks = []
      for utterance, cleaned, ids in splits[split][shard_index::count]:
        speaker = 0 if utterance.speaker is None else speakers[utterance.speaker]
        tasks.append(Task(position, utterance.id, utterance.audio_path, cleaned, ids,
                          speaker, split))
        position += 1
      shards.append(Shard(split, shard_index, count, tasks, fingerprint(settings_key, tasks)))
  return shards
