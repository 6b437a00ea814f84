"""Symbol tables: the vocabulary a text-to-speech model reads, and its id order.

The presets reproduce the `symbols` list of keithito's tacotron front end as
used by Grad-TTS (huawei-noah/Speech-Backbones `Grad-TTS/text/symbols.py`) and
FastPitch (`english_basic`), so ids line up with models trained by them:

  [pad] + ["-"] + list("!'(),.:;? ") + list(A..Z) + list(a..z) + ["@" + phone ...]

  id 0      "_"   pad
  id 1      "-"
  ids 2-11  "!", "'", "(", ")", ",", ".", ":", ";", "?", " "
  ids 12-37 "A".."Z"
  ids 38-63 "a".."z"             (english_characters ends here: 64 symbols)
  ids 64-147 "@AA" .. "@ZH"      (english_arpabet: 148 symbols)

Grad-TTS adds a blank token between symbols (`add_blank=True`) whose id is
`len(symbols)` = 148; `english_arpabet(add_blank=True)` appends it as
"<blank>" so the same ids come out.

A table also fixes how a sentence becomes ids, so that `metadata.json` of an
exported model tells a JS app everything it needs:
  ids = [bos] + token ids + [eos]     (bos / eos only when the table has them)
  then, when the table has a blank, the blank id goes before, between and
  after every id (Grad-TTS / glow-tts `intersperse`).
"""

import dataclasses
import json
from typing import Mapping, Optional, Tuple

# CMUdict phones with lexical stress, in the order of the reference
# `cmudict.valid_symbols` (84 entries).
ARPABET_PHONES: Tuple[str, ...] = (
    "AA", "AA0", "AA1", "AA2", "AE", "AE0", "AE1", "AE2", "AH", "AH0", "AH1", "AH2",
    "AO", "AO0", "AO1", "AO2", "AW", "AW0", "AW1", "AW2", "AY", "AY0", "AY1", "AY2",
    "B", "CH", "D", "DH", "EH", "EH0", "EH1", "EH2", "ER", "ER0", "ER1", "ER2", "EY",
    "EY0", "EY1", "EY2", "F", "G", "HH", "IH", "IH0", "IH1", "IH2", "IY", "IY0", "IY1",
    "IY2", "JH", "K", "L", "M", "N", "NG", "OW", "OW0", "OW1", "OW2", "OY", "OY0",
    "OY1", "OY2", "P", "R", "S", "SH", "T", "TH", "UH", "UH0", "UH1", "UH2", "UW",
    "UW0", "UW1", "UW2", "V", "W", "Y", "Z", "ZH",
)

# ARPAbet symbols carry this prefix so that e.g. phone "B" never collides with
# the letter "B".
ARPABET_PREFIX = "@"

# How phones are written in text: "{HH AH0 L OW1}". The same pattern works in
# Python `re` and TensorFlow's RE2; group 1 is the phone list.
ARPABET_GROUP_PATTERN = r"\{([^{}]*)\}"

ENGLISH_PAD = "_"
ENGLISH_SPECIAL = "-"
ENGLISH_PUNCTUATION = "!'(),.:;? "
ENGLISH_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEFAULT_BLANK = "<blank>"

_JSON_FORMAT = "tfspeech.SymbolTable"
_JSON_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SymbolTable:
  """An ordered, immutable vocabulary; a symbol's id is its index in `symbols`.

  Symbols of length one are characters that may appear in (cleaned) text.
  Symbols starting with `ARPABET_PREFIX` and longer than one character are
  phones, written in text as `{HH AH0 L OW1}`. The special symbols (`pad`,
  `bos`, `eos`, `blank`) are never read from text: a "_" in text is an unknown
  character, not padding.

  Attributes:
    symbols: every symbol, in id order.
    pad: the padding symbol (must be in `symbols`).
    bos: optional symbol put before every sentence.
    eos: optional symbol put after every sentence.
    blank: optional symbol interspersed between all ids (Grad-TTS add_blank).
    name: a label stored in JSON, e.g. "english_arpabet".
  """
  symbols: Tuple[str, ...]
  pad: str = ENGLISH_PAD
  bos: Optional[str] = None
  eos: Optional[str] = None
  blank: Optional[str] = None
  name: str = "custom"
  _ids: Mapping[str, int] = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    symbols = tuple(self.symbols)
    for index, symbol in enumerate(symbols):
      if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"SymbolTable {self.name!r}: symbol {index} is {symbol!r}; "
                         "every symbol must be a non-empty string.")
    ids = {}
    for index, symbol in enumerate(symbols):
      if symbol in ids:
        raise ValueError(f"SymbolTable {self.name!r}: symbol {symbol!r} appears twice "
                         f"(ids {ids[symbol]} and {index}); symbols must be unique.")
      ids[symbol] = index
    for role in ("pad", "bos", "eos", "blank"):
      value = getattr(self, role)
      if role == "pad" and value is None:
        raise ValueError(f"SymbolTable {self.name!r}: pad is required (used to pad batches).")
      if value is not None and value not in ids:
        raise ValueError(f"SymbolTable {self.name!r}: {role} symbol {value!r} is not in "
                         "symbols; add it to the symbol list.")
    specials = [s for s in (self.pad, self.bos, self.eos, self.blank) if s is not None]
    if len(set(specials)) != len(specials):
      raise ValueError(f"SymbolTable {self.name!r}: pad/bos/eos/blank must be distinct, "
                       f"got {specials}.")
    object.__setattr__(self, "symbols", symbols)
    object.__setattr__(self, "_ids", ids)

  def __len__(self):
    return len(self.symbols)

  def __contains__(self, symbol):
    return symbol in self._ids

  @property
  def special_symbols(self) -> Tuple[str, ...]:
    """pad, bos, eos and blank (those set): symbols that text cannot produce."""
    return tuple(s for s in (self.pad, self.bos, self.eos, self.blank) if s is not None)

  @property
  def text_symbols(self) -> Tuple[str, ...]:
    """Symbols reachable from text: characters and prefixed phones, in id order."""
    specials = set(self.special_symbols)
    return tuple(s for s in self.symbols if s not in specials)

  @property
  def has_arpabet(self) -> bool:
    return any(_is_phone(s) for s in self.symbols)

  def id_of(self, symbol: str) -> int:
    """Returns the id of `symbol`; KeyError naming the table if it is absent."""
    try:
      return self._ids[symbol]
    except KeyError:
      raise KeyError(f"symbol {symbol!r} is not in SymbolTable {self.name!r} "
                     f"({len(self)} symbols)") from None

  def symbol_of(self, symbol_id: int) -> str:
    """Returns the symbol with id `symbol_id`; ValueError when out of range."""
    if not 0 <= int(symbol_id) < len(self.symbols):
      raise ValueError(f"id {symbol_id} is out of range for SymbolTable {self.name!r} "
                       f"(ids 0..{len(self) - 1}).")
    return self.symbols[int(symbol_id)]

  def _optional_id(self, symbol):
    return None if symbol is None else self._ids[symbol]

  @property
  def pad_id(self) -> int:
    return self._ids[self.pad]

  @property
  def bos_id(self) -> Optional[int]:
    return self._optional_id(self.bos)

  @property
  def eos_id(self) -> Optional[int]:
    return self._optional_id(self.eos)

  @property
  def blank_id(self) -> Optional[int]:
    return self._optional_id(self.blank)

  def with_blank(self, blank: str = DEFAULT_BLANK) -> "SymbolTable":
    """Returns a copy with `blank` appended as the last id (Grad-TTS add_blank)."""
    if self.blank is not None:
      raise ValueError(f"SymbolTable {self.name!r} already has blank {self.blank!r}.")
    return dataclasses.replace(self, symbols=self.symbols + (blank,), blank=blank)

  def to_dict(self) -> dict:
    return {
        "format": _JSON_FORMAT,
        "version": _JSON_VERSION,
        "name": self.name,
        "symbols": list(self.symbols),
        "pad": self.pad,
        "bos": self.bos,
        "eos": self.eos,
        "blank": self.blank,
        "arpabet_prefix": ARPABET_PREFIX,
    }

  def to_json(self, indent: Optional[int] = None) -> str:
    """Serializes the table as JSON (see `to_dict`; ids are list indices)."""
    return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

  @classmethod
  def from_dict(cls, data: Mapping) -> "SymbolTable":
    if not isinstance(data, Mapping) or data.get("format") != _JSON_FORMAT:
      raise ValueError(f"not a SymbolTable description: expected a JSON object with "
                       f"\"format\": \"{_JSON_FORMAT}\", got {str(data)[:200]!r}")
    missing = [key for key in ("symbols", "pad") if key not in data]
    if missing:
      raise ValueError(f"SymbolTable JSON lacks {missing}; it needs at least symbols and pad.")
    if data.get("version") != _JSON_VERSION:
      raise ValueError(f"SymbolTable JSON version {data.get('version')!r} is not supported "
                       f"(this tfspeech reads version {_JSON_VERSION}).")
    if data.get("arpabet_prefix", ARPABET_PREFIX) != ARPABET_PREFIX:
      raise ValueError(f"SymbolTable JSON uses arpabet_prefix {data['arpabet_prefix']!r}; "
                       f"only {ARPABET_PREFIX!r} is supported.")
    return cls(symbols=tuple(data["symbols"]), pad=data["pad"], bos=data.get("bos"),
               eos=data.get("eos"), blank=data.get("blank"), name=data.get("name", "custom"))

  @classmethod
  def from_json(cls, text: str) -> "SymbolTable":
    """Inverse of `to_json`."""
    return cls.from_dict(json.loads(text))


def _is_phone(symbol: str) -> bool:
  return len(symbol) > 1 and symbol.startswith(ARPABET_PREFIX)


def english_characters(add_blank: bool = False) -> SymbolTable:
  """The reference character set: 64 symbols, ids as in Grad-TTS/FastPitch."""
  table = SymbolTable(
      symbols=tuple(ENGLISH_PAD + ENGLISH_SPECIAL + ENGLISH_PUNCTUATION + ENGLISH_LETTERS),
      pad=ENGLISH_PAD, name="english_characters")
  return table.with_blank() if add_blank else table


def english_arpabet(add_blank: bool = False) -> SymbolTable:
  """Characters plus 84 "@"-prefixed ARPAbet phones: 148 symbols (149 with blank)."""
  characters = english_characters()
  table = SymbolTable(
      symbols=characters.symbols + tuple(ARPABET_PREFIX + p for p in ARPABET_PHONES),
      pad=ENGLISH_PAD, name="english_arpabet")
  return table.with_blank() if add_blank else table


_PRESETS = {
    "english_characters": english_characters,
    "english_arpabet": english_arpabet,
}


def get_symbol_table(name: str, add_blank: bool = False) -> SymbolTable:
  """Returns a preset table by name ("english_characters", "english_arpabet")."""
  try:
    preset = _PRESETS[name]
  except KeyError:
    raise ValueError(f"unknown symbol table {name!r}; valid names: "
                     f"{', '.join(sorted(_PRESETS))}") from None
  return preset(add_blank=add_blank)
