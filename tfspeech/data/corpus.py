"""Readers for speech corpora on disk: LJSpeech metadata and pipe-separated filelists.

Readers only parse listings; they do not open audio. A malformed line never
raises: it is recorded in the returned list's `problems`, so that
`tfspeech.data.prepare` can report it next to the entries it skips for other
reasons.
"""

import csv
import dataclasses
import os
import pathlib
from typing import Iterable, Optional, Sequence, Union

PathLike = Union[str, os.PathLike]

# Column layouts of filelists as written by the reference implementations.
PATH_TEXT = ("path", "text")  # HiFi-GAN, FastPitch (mel-only), Grad-TTS LJSpeech.
PATH_TEXT_SPEAKER = ("path", "text", "speaker")  # Grad-TTS LibriTTS, Mellotron.
PATH_SPEAKER_TEXT = ("path", "speaker", "text")
FILELIST_LAYOUTS = {
    "path_text": PATH_TEXT,
    "path_text_speaker": PATH_TEXT_SPEAKER,
    "path_speaker_text": PATH_SPEAKER_TEXT,
}


@dataclasses.dataclass(frozen=True)
class Utterance:
  """One corpus entry.

  Attributes:
    id: unique name of the entry (LJSpeech ID, or the audio file's stem).
    audio_path: absolute path of the audio file (it may not exist; prepare checks).
    text: transcript, not yet cleaned.
    speaker: speaker label as written in the listing, or None for single-speaker corpora.
  """
  id: str
  audio_path: str
  text: str
  speaker: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class LineProblem:
  """A listing line that could not be turned into an `Utterance`.

  Attributes:
    source: path of the listing file.
    line_number: 1-based line number in `source`.
    reason: short machine-readable code, e.g. "wrong_field_count".
    message: what is wrong and how to fix it.
    id: the entry's id when it could be read, else "".
  """
  source: str
  line_number: int
  reason: str
  message: str
  id: str = ""


class UtteranceList(list):
  """A `list[Utterance]` that also carries the listing's `problems` (`LineProblem`s)."""

  def __init__(self, utterances: Iterable[Utterance] = (),
               problems: Sequence[LineProblem] = ()):
    super().__init__(utterances)
    self.problems = list(problems)


def _pipe_rows(path: pathlib.Path):
  """Yields (line_number, fields) for non-blank lines of a `|`-separated file."""
  if not path.is_file():
    raise FileNotFoundError(f"corpus listing {path} does not exist")
  with open(path, encoding="utf-8", newline="") as f:
    # QUOTE_NONE: LJSpeech transcripts contain unbalanced double quotes that
    # the default dialect would treat as field quoting and merge lines.
    for line_number, fields in enumerate(
        csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), start=1):
      if not fields or (len(fields) == 1 and not fields[0].strip()):
        continue
      yield line_number, [field.strip() for field in fields]


def _dedupe(utterances, problems, source):
  """Drops repeated ids (the first occurrence wins) and records them as problems."""
  seen = set()
  kept = []
  for line_number, utterance in utterances:
    if utterance.id in seen:
      problems.append(LineProblem(
          source, line_number, "duplicate_id",
          f"id {utterance.id!r} already appears earlier in {source}; ids must be unique "
          "(remove or rename the repeated line)", utterance.id))
      continue
    seen.add(utterance.id)
    kept.append(utterance)
  return kept


def read_ljspeech(corpus_dir: PathLike) -> UtteranceList:
  """Reads an LJSpeech-layout corpus: `metadata.csv` plus `wavs/ID.wav`.

  Each line of `metadata.csv` is `ID|text|normalized text` (the normalized column
  may be missing or empty; then the raw text is used).

  Args:
    corpus_dir: directory holding `metadata.csv` and `wavs/`.

  Returns:
    The utterances in file order; malformed lines (wrong field count, empty id,
    repeated id) are listed in `.problems` instead of raising.

  Raises:
    FileNotFoundError: if `corpus_dir/metadata.csv` does not exist.
  """
  corpus_dir = pathlib.Path(corpus_dir).resolve()
  metadata = corpus_dir / "metadata.csv"
  if not metadata.is_file():
    raise FileNotFoundError(
        f"{metadata} not found: an LJSpeech-layout corpus needs metadata.csv "
        "(lines `ID|text|normalized text`) and wavs/ID.wav")
  source = str(metadata)
  problems = []
  parsed = []
  for line_number, fields in _pipe_rows(metadata):
    if len(fields) not in (2, 3):
      problems.append(LineProblem(
          source, line_number, "wrong_field_count",
          f"expected 2 or 3 `|`-separated fields (ID|text|normalized text), got {len(fields)}",
          fields[0] if fields else ""))
      continue
    utterance_id = fields[0]
    if not utterance_id:
      problems.append(LineProblem(source, line_number, "empty_id", "the ID field is empty"))
      continue
    text = fields[2] if len(fields) == 3 and fields[2] else fields[1]
    audio_path = str(corpus_dir / "wavs" / f"{utterance_id}.wav")
    parsed.append((line_number, Utterance(utterance_id, audio_path, text)))
  return UtteranceList(_dedupe(parsed, problems, source), problems)


def _is_speaker_id(field: str) -> bool:
  return field.isdigit()


def read_filelist(path: PathLike, root: Optional[PathLike] = None,
                  layout: str = "auto") -> UtteranceList:
  """Reads a pipe-separated filelist as used by HiFi-GAN, Grad-TTS and FastPitch.

  Lines are `audio_path|text`, or with a speaker column either
  `audio_path|text|speaker_id` (Grad-TTS LibriTTS) or `audio_path|speaker_id|text`.
  With `layout="auto"` a 3-field line is read by which of its last two fields is
  an integer speaker id. An audio path without an extension gets `.wav`
  (HiFi-GAN lists LJSpeech IDs). The utterance id is the audio file's stem.

  Args:
    path: the filelist.
    root: directory that relative audio paths are relative to; defaults to the
      filelist's own directory.
    layout: "auto" or one of `FILELIST_LAYOUTS` ("path_text", "path_text_speaker",
      "path_speaker_text").

  Returns:
    The utterances in file order; malformed lines are listed in `.problems`.

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if `layout` is unknown.
  """
  if layout != "auto" and layout not in FILELIST_LAYOUTS:
    raise ValueError(f"layout={layout!r} is not one of 'auto', {sorted(FILELIST_LAYOUTS)}")
  path = pathlib.Path(path).resolve()
  root = pathlib.Path(root).resolve() if root is not None else path.parent
  source = str(path)
  problems = []
  parsed = []
  for line_number, fields in _pipe_rows(path):
    columns = FILELIST_LAYOUTS.get(layout)
    if columns is None:  # auto
      if len(fields) == 2:
        columns = PATH_TEXT
      elif len(fields) == 3 and _is_speaker_id(fields[2]):
        columns = PATH_TEXT_SPEAKER
      elif len(fields) == 3 and _is_speaker_id(fields[1]):
        columns = PATH_SPEAKER_TEXT
      elif len(fields) == 3:
        problems.append(LineProblem(
            source, line_number, "ambiguous_layout",
            "3 fields but neither the 2nd nor the 3rd is an integer speaker id; pass "
            "layout='path_text_speaker' or 'path_speaker_text'", fields[0]))
        continue
    if columns is None or len(fields) != len(columns):
      expected = "2 (path|text) or 3 (path|text|speaker)" if columns is None else str(len(columns))
      problems.append(LineProblem(
          source, line_number, "wrong_field_count",
          f"expected {expected} `|`-separated fields, got {len(fields)}",
          fields[0] if fields else ""))
      continue
    entry = dict(zip(columns, fields))
    if not entry["path"]:
      problems.append(LineProblem(source, line_number, "empty_id", "the audio path field is empty"))
      continue
    audio_path = pathlib.Path(entry["path"])
    if not audio_path.suffix:
      audio_path = audio_path.with_name(audio_path.name + ".wav")
    if not audio_path.is_absolute():
      audio_path = root / audio_path
    speaker = entry.get("speaker") or None
    parsed.append((line_number,
                   Utterance(audio_path.stem, str(audio_path), entry["text"], speaker)))
  return UtteranceList(_dedupe(parsed, problems, source), problems)
