"""Typed facts of a prepared corpus: what `dataset.json` holds.

`tfspeech.data.prepare` writes a `CorpusInfo`; training, inference and export read
one instead of rebuilding `MelConfig(**info["mel_config"])` from raw dicts:

  info = CorpusInfo.load("prepared/", require=("symbols",))
  info.mel_config            # tfspeech.audio.MelConfig
  info.symbols.pad_id        # tfspeech.text.SymbolTable
  problems = info.differences(run_info, facts=MEL_CONVENTION)   # [] when they agree

The same type reads the data facts a training run records (`config.json`
`data_info`: a subset of dataset.json plus the text pipeline's `add_blank` and
`blank_id`), so corpora and runs compare without raw dict comparison.

Most facts are optional (None or empty = not recorded), because hand-made or
older descriptions and run facts hold subsets; `load(..., require=...)` and
`from_dict(..., require=...)` fail with one clear error naming the file when a
consumer needs a fact the description lacks. Only the frame geometry (`n_mels`,
`hop_length`, given directly or through `mel_config`) is always required.
"""

import dataclasses
import json
import os
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from tfspeech import audio as audio_lib
from tfspeech import text as text_lib

PathLike = Union[str, os.PathLike]

DATASET_JSON = "dataset.json"

# Groups of facts for `CorpusInfo.differences`: what must agree for mels made from
# one corpus to suit a model or vocoder trained on another, and for text ids to mean
# the same symbols.
MEL_CONVENTION = ("sample_rate", "mel_config")
TEXT_CONVENTION = ("symbols", "cleaners", "arpabet", "add_blank", "blank_id")
CONVENTIONS = MEL_CONVENTION + TEXT_CONVENTION
# What a training run records of its corpus (`Task.data_info`, config.json `data_info`).
# Acoustic runs add the text pipeline's `add_blank`/`blank_id` where their pipeline sets them.
ACOUSTIC_RUN_FACTS = ("sample_rate", "hop_length", "n_mels", "mel_config", "mel_pad_value",
                      "symbols", "cleaners", "arpabet", "num_speakers", "counts")
VOCODER_RUN_FACTS = ("sample_rate", "hop_length", "n_mels", "mel_config", "mel_pad_value",
                     "counts", "gta")

_PREPARE_HINT = "re-run tfspeech-prepare (tfspeech.data.prepare.prepare_corpus) into it"


class CorpusInfoError(ValueError):
  """A dataset.json (or run data_info) that is malformed or lacks a required fact."""


@dataclasses.dataclass(frozen=True)
class CorpusInfo:
  """The conventions and counts of a prepared corpus (one `dataset.json`).

  Treat the dict fields as read-only; derive changed copies with `replace`.

  Attributes:
    n_mels: mel bins per frame (from `mel_config` when not given).
    hop_length: audio samples per mel frame (from `mel_config` when not given).
    sample_rate: audio sample rate in Hz (from `mel_config` when not given).
    mel_config: the mel convention of the records' `mel` feature.
    mel_pad_value: log-mel of silence, which pads mels in batches.
    symbols: the symbol table the records' `text_ids` index.
    cleaners: text cleaner names applied before tokenizing.
    arpabet: whether transcripts were converted to ARPAbet with CMUdict.
    add_blank: whether model inputs carry blank ids; None (a prepared corpus):
      not recorded, the symbol table's blank decides (see `carries_blanks`).
    blank_id: the id the training pipeline intersperses beyond the records'
      ids (a run's Grad-TTS add_blank with a table without blank); None when it
      intersperses nothing. Recorded only with `add_blank`.
    num_speakers: speaker embedding rows needed (max speaker index + 1).
    speakers: speaker label -> index.
    counts: examples per split ("train", "validation") and "skipped" entries.
    audio_seconds: seconds of audio per split.
    total_audio_seconds: their sum.
    length_quantiles: per split, deciles of the mel frame counts.
    shards: per split, shard file names.
    schema_version: TFRecord schema version (`records.SCHEMA_VERSION`).
    tfspeech_version: version of tfspeech that prepared the corpus.
    audio_encoding: how audio is stored in the records.
    on_unknown: prepare's policy for symbols missing from the table.
    trim_silence_top_db: prepare's silence trimming (None: not trimmed).
    seed: seed of the train/validation split.
    corpus: the source corpus ("path", "format").
    extras: keys this version does not type (e.g. "gta" of a GTA corpus), kept
      so that reading and writing a file loses nothing.
    source: where the facts were read from (for messages; not written, not compared).
  """
  n_mels: Optional[int] = None
  hop_length: Optional[int] = None
  sample_rate: Optional[int] = None
  mel_config: Optional[audio_lib.MelConfig] = None
  mel_pad_value: Optional[float] = None
  symbols: Optional[text_lib.SymbolTable] = None
  cleaners: Tuple[str, ...] = ("english_cleaners",)
  arpabet: bool = False
  add_blank: Optional[bool] = None
  blank_id: Optional[int] = None
  num_speakers: int = 1
  speakers: Dict[str, int] = dataclasses.field(default_factory=dict)
  counts: Dict[str, int] = dataclasses.field(default_factory=dict)
  audio_seconds: Dict[str, float] = dataclasses.field(default_factory=dict)
  total_audio_seconds: Optional[float] = None
  length_quantiles: Dict[str, List[float]] = dataclasses.field(default_factory=dict)
  shards: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
  schema_version: Optional[int] = None
  tfspeech_version: Optional[str] = None
  audio_encoding: Optional[str] = None
  on_unknown: Optional[str] = None
  trim_silence_top_db: Optional[float] = None
  seed: Optional[int] = None
  corpus: Dict[str, str] = dataclasses.field(default_factory=dict)
  extras: Dict[str, Any] = dataclasses.field(default_factory=dict)
  source: str = dataclasses.field(default="", compare=False)

  def __post_init__(self):
    config = self.mel_config
    if config is not None:
      if not isinstance(config, audio_lib.MelConfig):
        raise CorpusInfoError(f"mel_config must be a tfspeech.audio.MelConfig, got {config!r}")
      # dataset.json repeats these next to mel_config; they must agree with it.
      for name in ("sample_rate", "n_mels", "hop_length"):
        value = getattr(self, name)
        if value is None:
          object.__setattr__(self, name, getattr(config, name))
        elif value != getattr(config, name):
          raise CorpusInfoError(f"{name}={value!r} disagrees with mel_config.{name}="
                                f"{getattr(config, name)!r}")
    for name in ("n_mels", "hop_length"):
      value = getattr(self, name)
      if value is None:
        raise CorpusInfoError(f"no {name} (nor a mel_config holding it); the frame geometry of "
                              "the records is required")
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CorpusInfoError(f"{name}={value!r} must be a positive integer")
    if self.symbols is not None and not isinstance(self.symbols, text_lib.SymbolTable):
      raise CorpusInfoError(f"symbols must be a tfspeech.text.SymbolTable, got {self.symbols!r}")
    cleaners = (self.cleaners,) if isinstance(self.cleaners, str) else tuple(self.cleaners)
    if not all(isinstance(c, str) for c in cleaners):
      raise CorpusInfoError(f"cleaners={list(cleaners)!r} must be cleaner names")
    object.__setattr__(self, "cleaners", cleaners)
    if self.add_blank is None and self.blank_id is not None:
      raise CorpusInfoError(f"blank_id={self.blank_id!r} without add_blank; record both or "
                            "neither")
    if isinstance(self.num_speakers, bool) or not isinstance(self.num_speakers, int) \
        or self.num_speakers < 1:
      raise CorpusInfoError(f"num_speakers={self.num_speakers!r} must be an integer >= 1")

  # ------------------------------------------------------------------ derived facts
  @property
  def text_pad_id(self) -> int:
    """Id that pads `text_ids` in batches: the table's pad (0 without a table)."""
    return 0 if self.symbols is None else self.symbols.pad_id

  @property
  def carries_blanks(self) -> bool:
    """Whether model inputs carry blank ids (recorded `add_blank`, else the table's blank)."""
    if self.add_blank is not None:
      return bool(self.add_blank)
    return self.symbols is not None and self.symbols.blank is not None

  @property
  def gta(self) -> Optional[dict]:
    """The "gta" entry of a corpus rewritten by `tfspeech-synthesize --gta`, else None."""
    return self.extras.get("gta")

  @property
  def pitch_extraction(self) -> Optional[dict]:
    """How prepare extracted the records' pitch/energy (dataset.json "pitch_extraction":
    method, fmin, fmax, frame_length, hop_length, thresholds), None without pitch."""
    return self.extras.get("pitch_extraction")

  @property
  def stats(self) -> Dict[str, Any]:
    """dataset.json "stats": {"pitch": {"mean", "std", "frames"} in Hz over the train
    split's voiced frames, "energy": {...} over all its frames}; {} without pitch."""
    return self.extras.get("stats") or {}

  def count(self, split: str) -> int:
    """Examples of `split` ("train" / "validation"); 0 when not recorded."""
    return int(self.counts.get(split, 0))

  def replace(self, **changes) -> "CorpusInfo":
    """A copy with some facts changed (validated again)."""
    return dataclasses.replace(self, **changes)

  # ------------------------------------------------------------------ JSON
  def to_dict(self, keys: Optional[Sequence[str]] = None) -> dict:
    """The JSON object of dataset.json, keys in the order prepare has always written.

    `add_blank`/`blank_id` appear only when recorded, then `extras`. With `keys`,
    only those keys (e.g. the facts a training run records).
    """
    data = {
        "schema_version": self.schema_version,
        "tfspeech_version": self.tfspeech_version,
        "audio_encoding": self.audio_encoding,
        "sample_rate": self.sample_rate,
        "mel_config": None if self.mel_config is None else dataclasses.asdict(self.mel_config),
        "n_mels": self.n_mels,
        "hop_length": self.hop_length,
        "mel_pad_value": self.mel_pad_value,
        "symbols": None if self.symbols is None else self.symbols.to_dict(),
        "cleaners": list(self.cleaners),
        "arpabet": self.arpabet,
        "on_unknown": self.on_unknown,
        "trim_silence_top_db": self.trim_silence_top_db,
        "speakers": dict(self.speakers),
        "num_speakers": self.num_speakers,
        "counts": dict(self.counts),
        "audio_seconds": dict(self.audio_seconds),
        "total_audio_seconds": self.total_audio_seconds,
        "length_quantiles": {k: list(v) for k, v in self.length_quantiles.items()},
        "shards": {k: list(v) for k, v in self.shards.items()},
        "seed": self.seed,
        "corpus": dict(self.corpus),
    }
    if self.add_blank is not None:
      data["add_blank"] = self.add_blank
      data["blank_id"] = self.blank_id
    for key, value in self.extras.items():
      data.setdefault(key, value)
    if keys is not None:
      data = {k: data[k] for k in keys if k in data}
    return data

  @classmethod
  def from_dict(cls, data: Mapping[str, Any], source: str = "",
                require: Sequence[str] = ()) -> "CorpusInfo":
    """Reads the JSON object of a dataset.json (or of a run's data_info).

    Args:
      data: the parsed JSON object.
      source: where it came from, named in errors (e.g. the file path).
      require: facts that must be recorded (not None / empty), e.g.
        ("mel_config", "symbols").

    Raises:
      CorpusInfoError: naming `source` and the bad or missing fact.
    """
    where = source or "corpus facts"
    if not isinstance(data, Mapping):
      raise CorpusInfoError(f"{where}: expected a JSON object, got {type(data).__name__}")
    typed = {f.name for f in dataclasses.fields(cls)} - {"extras", "source"}
    # null = not recorded: the field keeps its default.
    kwargs = {k: v for k, v in data.items() if k in typed and v is not None}
    extras = {k: v for k, v in data.items() if k not in typed}
    try:
      if "mel_config" in kwargs:
        kwargs["mel_config"] = _mel_config_from_dict(kwargs["mel_config"])
      if "symbols" in kwargs:
        kwargs["symbols"] = _symbols_from_dict(kwargs["symbols"])
      if not isinstance(kwargs.get("cleaners", ()), (list, tuple, str)):
        raise CorpusInfoError(f"cleaners={kwargs['cleaners']!r} must be a list of cleaner names")
      for name in ("speakers", "counts", "audio_seconds", "length_quantiles", "shards", "corpus"):
        if not isinstance(kwargs.get(name, {}), Mapping):
          raise CorpusInfoError(f"{name}={kwargs[name]!r} must be a JSON object")
      info = cls(**kwargs, extras=extras, source=source)
    except (CorpusInfoError, ValueError, TypeError) as e:
      raise CorpusInfoError(f"{where}: {e}") from None
    info.check_recorded(require)
    return info

  def check_recorded(self, facts: Sequence[str]) -> None:
    """Raises CorpusInfoError naming the source unless every fact in `facts` is recorded."""
    missing = [name for name in facts if _unrecorded(self._fact(name))]
    if missing:
      raise CorpusInfoError(
          f"{self.source or 'corpus facts'}: does not record {missing}; it was written by "
          "something other than tfspeech-prepare (or an older tfspeech); re-prepare the corpus")

  def _fact(self, name: str):
    if name in self.extras:
      return self.extras[name]
    if name not in {f.name for f in dataclasses.fields(self)}:
      raise ValueError(f"{name!r} is not a corpus fact; known: "
                       f"{[f.name for f in dataclasses.fields(self)]}")
    return getattr(self, name)

  @classmethod
  def load(cls, data_dir: PathLike, require: Sequence[str] = ()) -> "CorpusInfo":
    """Reads `data_dir/dataset.json`.

    Raises:
      FileNotFoundError: if `data_dir` was not prepared (no dataset.json).
      CorpusInfoError: (a ValueError) if the file is not valid JSON, a fact is
        malformed, or a `require`d fact is not recorded; the message names the file.
    """
    path = pathlib.Path(data_dir) / DATASET_JSON
    return cls.from_dict(read_dataset_json(data_dir), source=str(path), require=require)

  def write(self, data_dir: PathLike) -> pathlib.Path:
    """Writes `data_dir/dataset.json` atomically (the bytes prepare has always written)."""
    path = pathlib.Path(data_dir) / DATASET_JSON
    write_json(path, self.to_dict())
    return path

  # ------------------------------------------------------------------ comparison
  def differences(self, other: "CorpusInfo", facts: Sequence[str] = CONVENTIONS) -> List[str]:
    """How `other` differs from this in `facts`, one readable line each ([] = alike).

    A fact that either side does not record (None) is not compared: run facts
    of a vocoder have no symbols, a prepared corpus records no add_blank.

    Args:
      other: the facts to compare with (another corpus, a run's data_info).
      facts: field names; `MEL_CONVENTION`, `TEXT_CONVENTION` or `CONVENTIONS`
        (both, the default).

    Returns:
      Lines such as "mel_config.fmax: 8000.0 here, None in run/config.json".
    """
    here = f"in {self.source}" if self.source else "here"
    there = f"in {other.source}" if other.source else "in the other"
    lines = []
    for name in facts:
      mine, theirs = self._fact(name), other._fact(name)
      if mine is None or theirs is None or mine == theirs:
        continue
      if name == "mel_config":
        for field in dataclasses.fields(audio_lib.MelConfig):
          a, b = getattr(mine, field.name), getattr(theirs, field.name)
          if a != b:
            lines.append(f"mel_config.{field.name}: {a!r} {here}, {b!r} {there}")
      elif name == "symbols":
        lines.append(f"symbols: {_describe_table_difference(mine, theirs, here, there)}")
      else:
        lines.append(f"{name}: {_plain(mine)!r} {here}, {_plain(theirs)!r} {there}")
    return lines

  def equivalent_for(self, other: "CorpusInfo", facts: Sequence[str] = CONVENTIONS) -> bool:
    """True when `differences(other, facts)` is empty."""
    return not self.differences(other, facts)


# --------------------------------------------------------------------------- helpers


def read_dataset_json(data_dir: PathLike) -> dict:
  """The raw JSON object of `data_dir/dataset.json`, with clear errors.

  Raises:
    FileNotFoundError: if the directory was not prepared (no dataset.json).
    CorpusInfoError: if the file is unreadable, not JSON, or not a JSON object.
  """
  path = pathlib.Path(data_dir) / DATASET_JSON
  if not path.is_file():
    raise FileNotFoundError(
        f"{path} not found: {data_dir} is not a prepared corpus; run "
        "tfspeech-prepare (tfspeech.data.prepare.prepare_corpus) on the corpus first")
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as e:
    raise CorpusInfoError(f"{path}: not a readable JSON file ({type(e).__name__}: {e}); "
                          f"{_PREPARE_HINT}") from None
  if not isinstance(data, dict):
    raise CorpusInfoError(f"{path}: expected a JSON object, got {type(data).__name__}; "
                          f"{_PREPARE_HINT}")
  return data


def write_json(path: PathLike, data) -> None:
  """Writes `data` as JSON (indent 1, UTF-8) through a temp file, so readers never see half."""
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
  os.replace(tmp, path)


def _mel_config_from_dict(data) -> audio_lib.MelConfig:
  if not isinstance(data, Mapping):
    raise CorpusInfoError(f"mel_config={data!r} must be a JSON object of MelConfig fields")
  known = {f.name for f in dataclasses.fields(audio_lib.MelConfig)}
  unknown = sorted(set(data) - known)
  if unknown:
    raise CorpusInfoError(f"mel_config has fields {unknown} this tfspeech does not know "
                          "(prepared by a newer tfspeech?)")
  try:
    return audio_lib.MelConfig(**data)
  except (TypeError, ValueError) as e:
    raise CorpusInfoError(f"mel_config: {e}") from None


def _symbols_from_dict(data) -> text_lib.SymbolTable:
  if isinstance(data, Mapping) and "format" not in data and "symbols" in data \
      and "pad" in data:
    # A hand-written table without the JSON header (minimal test corpora): read it
    # as the current format.
    return text_lib.SymbolTable(symbols=tuple(data["symbols"]), pad=data["pad"],
                                bos=data.get("bos"), eos=data.get("eos"),
                                blank=data.get("blank"), name=data.get("name", "custom"))
  try:
    return text_lib.SymbolTable.from_dict(data)
  except (KeyError, TypeError, ValueError) as e:
    raise CorpusInfoError(f"symbols: {e}") from None


def _unrecorded(value) -> bool:
  return value is None or (isinstance(value, (dict, list, tuple)) and not value)


def _plain(value):
  return list(value) if isinstance(value, tuple) else value


def _describe_table_difference(mine, theirs, here, there) -> str:
  """The first way two symbol tables differ, e.g. a size or an id's symbol."""
  if len(mine) != len(theirs):
    return (f"table {mine.name!r} of {len(mine)} symbols {here}, {theirs.name!r} of "
            f"{len(theirs)} symbols {there}")
  for index, (a, b) in enumerate(zip(mine.symbols, theirs.symbols)):
    if a != b:
      return f"id {index} is {a!r} {here}, {b!r} {there}"
  for role in ("pad", "bos", "eos", "blank", "name"):
    a, b = getattr(mine, role), getattr(theirs, role)
    if a != b:
      return f"{role} {a!r} {here}, {b!r} {there}"
  return f"{mine!r} {here}, {theirs!r} {there}"  # Unreachable for equal-comparing fields.
