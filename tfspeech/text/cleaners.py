"""Text cleaners: normalize raw text before it is mapped to symbols.

The three pipelines are those of keithito's tacotron front end (used by
Tacotron 2, Grad-TTS, glow-tts, FastPitch):

  basic_cleaners           lowercase, collapse whitespace (no transliteration)
  transliteration_cleaners ASCII transliteration, lowercase, collapse whitespace
  english_cleaners         ASCII, lowercase, numbers, abbreviations, whitespace

Transliteration uses `anyascii` (ISC license) instead of the GPL `unidecode`
of the references; they agree on Latin letters with diacritics and on typographic
quotes and dashes ("café" -> "cafe", "’" -> "'", "—" -> "-").

Transliteration keeps what can be read and says what it changed: emoji and other
pictographs, control and private-use characters are dropped (anyascii would spell
"😀" as ":grinning:", which the symbol tables read as "grinning"), text of other
scripts ("你好" -> "NiHao", "Привет" -> "Privet") is transliterated, and both are
listed as `TextChange`s when a `changes` list is passed (`clean_text_with_changes`).
Accented Latin letters and typographic punctuation change silently, as in the reference.
"/" becomes a space so "twelve/twenty-five" stays two words (see `_SLASH_RE`).

Cleaners run in Python (regular expressions, inflect), outside the graph:
clean text while preparing a dataset or in the app, and feed cleaned text to
`GraphTokenizer`.
"""

import dataclasses
import re
import unicodedata
from typing import Callable, Iterable, List, Optional, Tuple, Union

from anyascii import anyascii

from tfspeech.text import numbers
from tfspeech.text.symbols import ARPABET_GROUP_PATTERN

_ARPABET_GROUP_RE = re.compile(ARPABET_GROUP_PATTERN)
_WHITESPACE_RE = re.compile(r"\s+")
# The reference cleaners leave "/" to the symbol table, which has no "/", so
# text_to_sequence drops it and "and/or" is read "andor". Those cleaners never spell a
# symbol out (only numbers, currency and abbreviations), so we do not say "slash"
# either: a space keeps the two words apart, which is how "and/or", "12/25" or
# "twelve/twenty-five" are read aloud ("and or", "twelve twenty-five").
_SLASH_RE = re.compile(r"\s*/\s*")
# anyascii writes emoji as their short names: "😀" -> ":grinning:".
_EMOJI_NAME_RE = re.compile(r":[^:\s]+:")
# Regional indicator letters (two make a flag emoji); anyascii reads them as "U", "S".
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)
# Invisible or unreadable: format (zero-width joiner, BOM), control, private use,
# unassigned, surrogates.
_UNREADABLE_CATEGORIES = ("Cf", "Cc", "Co", "Cn", "Cs")

# Reference order: "mrs" before "mr" so that "mrs." is not read as "mr" + "s.".
_ABBREVIATIONS = [(re.compile(rf"\b{short}\.", re.IGNORECASE), long) for short, long in [
    ("mrs", "misess"),
    ("mr", "mister"),
    ("dr", "doctor"),
    ("st", "saint"),
    ("co", "company"),
    ("jr", "junior"),
    ("maj", "major"),
    ("gen", "general"),
    ("drs", "doctors"),
    ("rev", "reverend"),
    ("lt", "lieutenant"),
    ("hon", "honorable"),
    ("sgt", "sergeant"),
    ("capt", "captain"),
    ("esq", "esquire"),
    ("ltd", "limited"),
    ("col", "colonel"),
    ("ft", "fort"),
]]


def expand_abbreviations(text: str) -> str:
  """"Dr. Who" -> "doctor Who" (the dot is consumed; case-insensitive)."""
  for pattern, replacement in _ABBREVIATIONS:
    text = pattern.sub(replacement, text)
  return text


def lowercase(text: str) -> str:
  return text.lower()


def collapse_whitespace(text: str) -> str:
  """Replaces every run of whitespace by one space (ends are not stripped, as in the reference)."""
  return _WHITESPACE_RE.sub(" ", text)


@dataclasses.dataclass(frozen=True)
class TextChange:
  """A span of input text that `convert_to_ascii` dropped or transliterated.

  Attributes:
    kind: "dropped" (emoji, pictographs, invisible or unassigned characters) or
      "transliterated" (another script or a symbol, spelled in ASCII letters).
    original: the characters of the span.
    replacement: what it became ("" when dropped).
  """
  kind: str
  original: str
  replacement: str

  def describe(self) -> str:
    if self.kind == "dropped":
      return f"dropped {self.original!r}"
    return f"transliterated {self.original!r} -> {self.replacement!r}"


def _char_kind(char: str) -> str:
  """'ascii', 'plain' (changes silently), 'mark', 'dropped' or 'transliterated'."""
  if char.isascii():
    return "ascii"
  category = unicodedata.category(char)
  if category in ("Mn", "Me"):
    return "mark"  # Belongs to the character before it (accent, emoji variation selector).
  if category.startswith("Z"):
    return "plain"  # No-break and other spaces.
  if category in _UNREADABLE_CATEGORIES or ord(char) in _REGIONAL_INDICATORS:
    return "dropped"
  ascii_form = anyascii(char)
  if not ascii_form or _EMOJI_NAME_RE.fullmatch(ascii_form):
    return "dropped"
  if category.startswith("P") and not any(c.isalnum() for c in ascii_form):
    return "plain"  # Typographic quotes, dashes, ellipses, CJK full stops.
  if category.startswith("L") and "LATIN" in unicodedata.name(char, ""):
    return "plain"  # "é" -> "e", "ß" -> "ss", full-width Latin letters.
  return "transliterated"


def transliterate(text: str) -> Tuple[str, List[TextChange]]:
  """ASCII text and the spans that were dropped or transliterated on the way.

  Runs of characters of the same kind form one span (with their combining marks).
  A dropped span between two non-space characters becomes a space, so "good😀day"
  stays two words; elsewhere it vanishes.
  """
  pieces, changes = [], []
  index = 0
  while index < len(text):
    kind = _char_kind(text[index])
    end = index + 1
    if kind in ("dropped", "transliterated"):
      while end < len(text) and _char_kind(text[end]) in (kind, "mark"):
        end += 1
    span = text[index:end]
    if kind == "dropped":
      inside = 0 < index and end < len(text)
      pieces.append(" " if inside and not (text[index - 1].isspace() or text[end].isspace())
                    else "")
      changes.append(TextChange("dropped", span, ""))
    elif kind == "transliterated":
      replacement = anyascii(span)
      # "5™" -> "5 TM", "我爱你world" -> "WoAiNi world": a span of another script or a
      # symbol is its own word.
      before = " " if index and text[index - 1].isalnum() else ""
      after = " " if end < len(text) and text[end].isalnum() else ""
      pieces.append(before + replacement + after)
      changes.append(TextChange("transliterated", span, replacement))
    else:
      pieces.append(anyascii(span))
    index = end
  return "".join(pieces), changes


def convert_to_ascii(text: str, changes: Optional[List[TextChange]] = None) -> str:
  """`transliterate(text)`'s ASCII text; its `TextChange`s are appended to `changes`."""
  converted, found = transliterate(text)
  if changes is not None:
    changes.extend(found)
  return converted


def separate_slashes(text: str) -> str:
  """"twelve/twenty-five" -> "twelve twenty-five" (see `_SLASH_RE` for why a space)."""
  return _SLASH_RE.sub(" ", text)


def basic_cleaners(text: str, changes: Optional[List[TextChange]] = None) -> str:
  """Lowercase and collapse whitespace; keeps non-ASCII characters (`changes` unused)."""
  del changes  # Nothing is dropped or transliterated.
  return collapse_whitespace(lowercase(text))


def transliteration_cleaners(text: str, changes: Optional[List[TextChange]] = None) -> str:
  """Transliterate to ASCII, separate slashes, lowercase, collapse whitespace.

  Dropped and transliterated spans are appended to `changes` when given.
  """
  return collapse_whitespace(lowercase(separate_slashes(convert_to_ascii(text, changes))))


def english_cleaners(text: str, changes: Optional[List[TextChange]] = None) -> str:
  """English pipeline: ASCII, lowercase, numbers and abbreviations spelled out.

  Currency is expanded first because transliteration would otherwise turn "£"
  into "GBP" (see `tfspeech.text.numbers`). Dropped and transliterated spans are
  appended to `changes` when given.
  """
  text = numbers.expand_currency(text)
  text = separate_slashes(convert_to_ascii(text, changes))
  text = lowercase(text)
  text = numbers.normalize_numbers(text)
  text = expand_abbreviations(text)
  return collapse_whitespace(text)


_CLEANERS = {
    "basic_cleaners": basic_cleaners,
    "transliteration_cleaners": transliteration_cleaners,
    "english_cleaners": english_cleaners,
}

CLEANER_NAMES = tuple(sorted(_CLEANERS))


def get_cleaner(name: str) -> Callable[[str], str]:
  """Returns the cleaner called `name`; ValueError listing valid names otherwise."""
  try:
    return _CLEANERS[name]
  except (KeyError, TypeError):
    raise ValueError(f"unknown cleaner {name!r}; valid cleaner names: "
                     f"{', '.join(CLEANER_NAMES)}") from None


def split_arpabet_groups(text: str) -> List[str]:
  """[outside, group, outside, ..., outside]: odd items are the insides of `{...}`."""
  return _ARPABET_GROUP_RE.split(text)


def clean_text(text: str, cleaner_names: Union[str, Iterable[str]] = ("english_cleaners",)) -> str:
  """Runs `text` through the named cleaners in order.

  ARPAbet groups such as "{HH AH0 L OW1}" are kept verbatim; the text around
  them is cleaned piece by piece (as the reference does), so the result can
  go straight to `GraphTokenizer`.

  Args:
    text: raw text.
    cleaner_names: a cleaner name or a sequence of names; empty = no cleaning.

  Returns:
    The cleaned text.
  """
  return clean_text_with_changes(text, cleaner_names)[0]


def clean_text_with_changes(
    text: str, cleaner_names: Union[str, Iterable[str]] = ("english_cleaners",)
) -> Tuple[str, List[TextChange]]:
  """`clean_text`, and the spans the cleaners dropped or transliterated, in text order.

  The changes are what a caller should tell the user: "dropped '😀'", "transliterated
  '你好' -> 'NiHao'" (see `TextChange.describe`).
  """
  if not isinstance(text, str):
    raise TypeError(f"clean_text: text must be str, got {type(text).__name__}")
  if isinstance(cleaner_names, str):
    cleaner_names = (cleaner_names,)
  functions = [get_cleaner(name) for name in cleaner_names]
  changes = []
  pieces = split_arpabet_groups(text)
  for index in range(0, len(pieces), 2):
    for function in functions:
      pieces[index] = function(pieces[index], changes)
  cleaned = "".join(piece if index % 2 == 0 else "{" + piece + "}"
                    for index, piece in enumerate(pieces))
  return cleaned, changes
