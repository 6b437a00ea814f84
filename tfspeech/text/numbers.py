"""Spelling out numbers for English text, following keithito's tacotron rules.

The rules (and their quirks) match the reference `normalize_numbers` used by
Grad-TTS, Tacotron 2 and glow-tts, so that text cleaned here reads like the
text those models were trained on:

  "1,000"  -> "one thousand"           (commas inside numbers are dropped)
  "$3.50"  -> "three dollars, fifty cents"
  "3.14"   -> "three point fourteen"   (digits after the point read as a number)
  "22nd"   -> "twenty-second"
  "1984"   -> "nineteen eighty-four"   (1001-2999 read as years)
  "2005"   -> "two thousand five"
  "1900"   -> "nineteen hundred"
  "123"    -> "one hundred twenty-three"

inflect keeps hyphens and the commas between groups ("one million, two
hundred ..."); the reference keeps them too, and "-" and "," are symbols.

Currency differs from the reference on purpose: the reference reads "£" only
as "<digits> pounds" and runs after ASCII transliteration, which has already
turned "£" into "PS"/"GBP", so "£5" came out as "gbpfive". Here "£" and "€"
are read like "$" (pounds/pence, euros/cents), and `english_cleaners` expands
currency before transliterating.

Numbers longer than 36 digits (past inflect's "decillion"; the reference
crashes on them) are read digit by digit.
"""

import functools
import re

_COMMA_NUMBER_RE = re.compile(r"([0-9][0-9,]+[0-9])")
_DECIMAL_NUMBER_RE = re.compile(r"([0-9]+\.[0-9]+)")
_CURRENCY_RE = re.compile(r"([$£€])([0-9.,]*[0-9]+)")
_ORDINAL_RE = re.compile(r"[0-9]+(st|nd|rd|th)")
_NUMBER_RE = re.compile(r"[0-9]+")
# inflect names groups up to decillions (10**33); longer numbers are read digit by digit.
_MAX_DIGITS = 36

# symbol -> (major singular, major plural, minor singular, minor plural)
_CURRENCY_UNITS = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}


@functools.lru_cache(maxsize=None)
def _inflect():
  # inflect takes seconds to import (typeguard); load it on first use only.
  import inflect  # pylint: disable=import-outside-toplevel
  return inflect


@functools.lru_cache(maxsize=None)
def _engine():
  return _inflect().engine()


def _words(number, **kwargs):
  """inflect's words for `number` (int or "22nd"); digit by digit past its range (~10**36)."""
  try:
    return _engine().number_to_words(number, **kwargs)
  except _inflect().NumOutOfRangeError:
    return _digit_words(str(number))


def _digit_words(digits):
  """ "1024" -> "one zero two four" (ordinal suffixes dropped)."""
  return " ".join(_engine().number_to_words(d) for d in re.sub(r"[^0-9]", "", digits))


def _remove_commas(match):
  return match.group(1).replace(",", "")


def _expand_decimal_point(match):
  return match.group(1).replace(".", " point ")


def _expand_currency(match):
  """Returns "<major> <unit>, <minor> <unit>" with digits; numbers are spelled later."""
  major_one, major_many, minor_one, minor_many = _CURRENCY_UNITS[match.group(1)]
  amount = match.group(2).replace(",", "")
  parts = amount.split(".")
  if len(parts) > 2:  # "1.2.3": not an amount; keep the digits, name the unit
    return f"{amount} {major_many}"
  major = int(parts[0]) if parts[0] else 0
  minor = int(parts[1]) if len(parts) > 1 and parts[1] else 0
  major_text = f"{major} {major_one if major == 1 else major_many}"
  minor_text = f"{minor} {minor_one if minor == 1 else minor_many}"
  if major and minor:
    return f"{major_text}, {minor_text}"
  if major:
    return major_text
  if minor:
    return minor_text
  return f"zero {major_many}"


def _expand_ordinal(match):
  return _words(match.group(0))


def _expand_cardinal(match):
  if len(match.group(0)) > _MAX_DIGITS:  # beyond inflect (and int() past 4300 digits)
    return _digit_words(match.group(0))
  number = int(match.group(0))
  if 1000 < number < 3000:
    # Read like a year: "nineteen eighty-four", "two thousand five".
    if number == 2000:
      return "two thousand"
    if 2000 < number < 2010:
      return "two thousand " + _words(number % 100)
    if number % 100 == 0:
      return _words(number // 100) + " hundred"
    return _words(number, andword="", zero="oh", group=2).replace(", ", " ")
  return _words(number, andword="")


def expand_currency(text: str) -> str:
  """Rewrites "$3.50", "£1,000", "€0.05" as amounts with unit words (digits kept)."""
  return _CURRENCY_RE.sub(_expand_currency, text)


def normalize_numbers(text: str) -> str:
  """Spells out every number in `text` (see the module docstring for the rules)."""
  text = _COMMA_NUMBER_RE.sub(_remove_commas, text)
  text = expand_currency(text)
  text = _DECIMAL_NUMBER_RE.sub(_expand_decimal_point, text)
  text = _ORDINAL_RE.sub(_expand_ordinal, text)
  text = _NUMBER_RE.sub(_expand_cardinal, text)
  return text
