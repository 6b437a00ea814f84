"""Text cleaners: normalize raw text before it is mapped to symbols.

The three pipelines are those of keithito's tacotron front end (used by
Tacotron 2, Grad-TTS, glow-tts, FastPitch):

  basic_cleaners           lowercase, collapse whitespace (no transliteration)
  transliteration_cleaners ASCII transliteration, lowercase, collapse whitespace
  english_cleaners         ASCII, lowercase, numbers, abbreviations, whitespace

Transliteration uses `anyascii` (ISC license) instead of the GPL `unidecode`
of the references; they agree on Latin letters with diacritics and on typographic
quotes and dashes ("café" -> "cafe", "’" -> "'", "—" -> "-").

Cleaners run in Python (regular expressions, inflect), outside the graph:
clean text while preparing a dataset or in the app, and feed cleaned text to
`GraphTokenizer`.
"""

import re
from typing import Callable, Iterable, List, Union

from anyascii import anyascii

from tfspeech.text import numbers
from tfspeech.text.symbols import ARPABET_GROUP_PATTERN

_ARPABET_GROUP_RE = re.compile(ARPABET_GROUP_PATTERN)
_WHITESPACE_RE = re.compile(r"\s+")

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


def convert_to_ascii(text: str) -> str:
  return anyascii(text)


def basic_cleaners(text: str) -> str:
  """Lowercase and collapse whitespace; keeps non-ASCII characters."""
  return collapse_whitespace(lowercase(text))


def transliteration_cleaners(text: str) -> str:
  """Transliterate to ASCII, lowercase, collapse whitespace."""
  return collapse_whitespace(lowercase(convert_to_ascii(text)))


def english_cleaners(text: str) -> str:
  """English pipeline: ASCII, lowercase, numbers and abbreviations spelled out.

  Currency is expanded first because transliteration would otherwise turn "£"
  into "GBP" (see `tfspeech.text.numbers`).
  """
  text = numbers.expand_currency(text)
  text = convert_to_ascii(text)
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
  if not isinstance(text, str):
    raise TypeError(f"clean_text: text must be str, got {type(text).__name__}")
  if isinstance(cleaner_names, str):
    cleaner_names = (cleaner_names,)
  functions = [get_cleaner(name) for name in cleaner_names]
  pieces = split_arpabet_groups(text)
  for index in range(0, len(pieces), 2):
    for function in functions:
      pieces[index] = function(pieces[index])
  return "".join(piece if index % 2 == 0 else "{" + piece + "}"
                 for index, piece in enumerate(pieces))
