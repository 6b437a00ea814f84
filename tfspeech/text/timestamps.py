"""Word timestamps: the ids a model read, mapped back to the user's text and timed.

Every acoustic model reports `durations`, the mel frames it gave each input id. To say when
each word of the *input* text is spoken, `align_text` maps every id back to the characters it
came from, through the cleaners (numbers spelled out, abbreviations, transliteration,
emoji dropped), CMUdict ARPAbet, bos/eos and interspersed blanks; `durations_to_timestamps`
turns the durations of one or more chunks into seconds (frames x hop_length / sample_rate).

What is a word, and who owns the time between words:

  * A word is a whitespace-separated run of the input text (an ARPAbet group "{HH AH0 L OW1}"
    is a word of its own), without the punctuation at its ends that is spoken as
    punctuation: "Hello," is the word "Hello", but "Dr." stays "Dr." (its dot became part of
    "doctor") and "$3.50" is one word for all of "three dollars, fifty cents".
  * A word runs from the start of its first letter or phone to the end of its last; blanks
    and punctuation *inside* it (the blanks between its letters, the comma of "three
    dollars, fifty cents") are part of it.
  * Spaces, punctuation between words, the blanks at a word's edges and bos/eos belong to
    no word: their time is the pause between two words (their tokens have `word` None).
  * A word the model is given nothing to say for (an emoji, symbols missing from the
    table) is not listed: it has no time.

Each id gets the characters of the word (or whitespace) it came from, or its own character
when cleaning only lowercased the word; blanks, bos and eos get an empty span where they
sit. Offsets index the Python string (code points). The browser demo's tokenizer
(export/web/tokenizer.js) does the same mapping.

The mapping cleans the text word by word (the cleaners never act across whitespace), so its
ids are those of `encode_text`; when a caller's ids differ anyway (e.g. `p_arpabet` < 1 drew
differently), the ids of the common prefix and suffix keep their places and the ones
between share their characters (`TextAlignment.exact` is False).
"""

import collections
import dataclasses
import json
import re
import unicodedata
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from tfspeech.text import arpabet
from tfspeech.text.cleaners import split_arpabet_groups
from tfspeech.text.symbols import SymbolTable
from tfspeech.text import tokenizer

__all__ = ["TextAlignment", "Timestamps", "TokenTime", "Word", "WordTime", "align_text",
           "durations_to_timestamps", "is_spoken"]

# Raw words and the whitespace between them (`\s` as the cleaners' collapse_whitespace).
_SEGMENT_RE = re.compile(r"\s+|\S+")
_NO_WORD = -1


def is_spoken(symbol: str) -> bool:
  """A letter, digit or phone (what `TextFrontEnd.encode` requires), not punctuation."""
  return len(symbol) > 1 or symbol.isalnum()


def _is_punctuation(char: str) -> bool:
  return unicodedata.category(char).startswith("P")


@dataclasses.dataclass(frozen=True)
class Word:
  """A word of the input text: `text[char_start:char_end] == word`."""
  word: str
  char_start: int
  char_end: int


@dataclasses.dataclass(frozen=True)
class TextAlignment:
  """Where each id of an encoded text came from (see the module docstring).

  Attributes:
    ids: the ids, as `encode_text` gives them (blanks, bos, eos included).
    symbols: the symbol of each id.
    chars: `(char_start, char_end)` of each id in the text.
    token_words: index into `words` of each id, or -1 (between words).
    words: the words that have at least one id.
    exact: False when the ids were not those of the word-by-word mapping (see the module
      docstring).
  """
  ids: Tuple[int, ...]
  symbols: Tuple[str, ...]
  chars: Tuple[Tuple[int, int], ...]
  token_words: Tuple[int, ...]
  words: Tuple[Word, ...]
  exact: bool = True

  def shifted(self, char_offset: int) -> "TextAlignment":
    """The same alignment for the text placed at `char_offset` of a longer one (a chunk)."""
    return dataclasses.replace(
        self, chars=tuple((s + char_offset, e + char_offset) for s, e in self.chars),
        words=tuple(Word(w.word, w.char_start + char_offset, w.char_end + char_offset)
                    for w in self.words))


@dataclasses.dataclass
class _Entry:
  token: str
  start: int
  end: int
  segment: int  # Raw word index, or -1 for whitespace.
  own_char: bool = False  # Its own character, not the whole word's.


def _segment_entries(text: str, cleaner_names, cmudict, p_arpabet, generator,
                     word_boundaries, ambiguous):
  """(token entries before the table lookup, raw word spans) of `text`, word by word."""
  collapse = bool(cleaner_names)  # Every cleaner ends with collapse_whitespace.
  entries, segments, position = [], [], 0
  for index, piece in enumerate(split_arpabet_groups(text)):
    if index % 2:
      end = position + len(piece) + 2
      phones = tokenizer._phones(piece)  # pylint: disable=protected-access
      entries.extend(_Entry(p, position, end, len(segments)) for p in phones)
      segments.append((position, end))
      position = end
      continue
    piece_entries = []
    for match in _SEGMENT_RE.finditer(piece):
      raw = match.group()
      start, end = position + match.start(), position + match.end()
      tokens = tokenizer.text_tokens(raw, cleaner_names, cmudict, p_arpabet, generator,
                                     word_boundaries, ambiguous)
      segment = _NO_WORD
      if not raw[0].isspace():
        segment = len(segments)
        segments.append((start, end))
      if len(tokens) == len(raw) and "".join(tokens) == raw.lower():
        # Only lowercased: each id has its own character.
        piece_entries.extend(_Entry(t, start + i, start + i + 1, segment, True)
                             for i, t in enumerate(tokens))
      else:
        piece_entries.extend(_Entry(t, start, end, segment) for t in tokens)
    if collapse:
      # The whole piece's whitespace runs collapse across word joins too ("hi 😀 there":
      # the emoji cleans to nothing between two spaces): keep the first space of a run.
      piece_entries = [e for i, e in enumerate(piece_entries)
                       if not (e.token == " " and i and piece_entries[i - 1].token == " ")]
    entries.extend(piece_entries)
    position += len(piece)
  return entries, segments


def _trim(text: str, span, tokens: Sequence[str]) -> Tuple[int, int]:
  """The word's span without end punctuation that its tokens also have as non-spoken ends."""
  start, end = span
  raw = text[start:end]
  if not raw or raw[0] == "{":
    return start, end
  spoken = [is_spoken(t) for t in tokens]
  token_lead = spoken.index(True) if True in spoken else len(tokens)
  token_trail = spoken[::-1].index(True) if True in spoken else len(tokens)
  raw_lead = len(raw) - len(raw.lstrip("".join(c for c in raw if _is_punctuation(c))))
  raw_trail = len(raw) - len(raw.rstrip("".join(c for c in raw if _is_punctuation(c))))
  lead = min(raw_lead, token_lead)
  trail = min(raw_trail, token_trail)
  if lead + trail >= len(raw):
    return start, end
  return start + lead, end - trail


def align_text(text: str, symbols: SymbolTable,
               cleaner_names: Union[str, Iterable[str]] = ("english_cleaners",),
               cmudict: Optional[arpabet.CMUDict] = None, p_arpabet: float = 1.0,
               rng: arpabet.RandomLike = None, word_boundaries: str = "whitespace",
               ambiguous: str = "first", ids: Optional[Sequence[int]] = None
               ) -> TextAlignment:
  """Maps the ids of `text` (as `encode_text` makes them) to its characters and words.

  Args:
    text: the raw text (what the user typed, before cleaning).
    symbols, cleaner_names, cmudict, p_arpabet, rng, word_boundaries, ambiguous: as for
      `encode_text`.
    ids: the ids the model read, when the caller has them (default: the mapping's own,
      which equal `encode_text`'s for `p_arpabet` 0 or 1).

  Returns:
    A `TextAlignment` of `ids`.
  """
  if isinstance(cleaner_names, str):
    cleaner_names = (cleaner_names,)
  cleaner_names = tuple(cleaner_names)
  generator = arpabet.as_rng(rng) if cmudict is not None and p_arpabet > 0 else None
  entries, segments = _segment_entries(text, cleaner_names, cmudict, p_arpabet, generator,
                                       word_boundaries, ambiguous)
  lookup = tokenizer._text_ids(symbols)  # pylint: disable=protected-access
  tokens_of = collections.defaultdict(list)
  for entry in entries:
    tokens_of[entry.segment].append(entry.token)
  known = [e for e in entries if e.token in lookup]

  # A word's ids run from its first spoken id to its last; words without one are unspoken.
  spoken_of = collections.defaultdict(list)
  for i, entry in enumerate(known):
    if is_spoken(entry.token):
      spoken_of[entry.segment].append(i)
  words, word_of_segment = [], {}
  for segment, (start, end) in enumerate(segments):
    spoken = spoken_of.get(segment)
    if spoken:
      word_start, word_end = _trim(text, (start, end), tokens_of[segment])
      word_of_segment[segment] = (len(words), spoken[0], spoken[-1])
      words.append(Word(text[word_start:word_end], word_start, word_end))
  core = []  # (id, symbol, chars, word)
  for i, entry in enumerate(known):
    word, chars = _NO_WORD, (entry.start, entry.end)
    if entry.segment in word_of_segment:
      index, first, last = word_of_segment[entry.segment]
      word = index if first <= i <= last else _NO_WORD
      if not entry.own_char:
        # Cleaned ids of a word get the word's characters; those before or after it (the
        # punctuation trimmed off its ends) the characters trimmed there.
        found = words[index]
        if word == index:
          chars = (found.char_start, found.char_end)
        elif i < first and found.char_start > entry.start:
          chars = (entry.start, found.char_start)
        elif i > last and found.char_end < entry.end:
          chars = (found.char_end, entry.end)
    core.append((lookup[entry.token], entry.token, chars, word))

  def special(symbol_id, symbol, at):
    return (symbol_id, symbol, (at, at), _NO_WORD)
  if symbols.bos is not None:
    core.insert(0, special(symbols.bos_id, symbols.bos, 0))
  if symbols.eos is not None:
    core.append(special(symbols.eos_id, symbols.eos, len(text)))
  full = core
  if symbols.blank is not None:
    full = []
    for i in range(len(core) + 1):
      before = core[i - 1] if i else None
      after = core[i] if i < len(core) else None
      at = before[2][1] if before else (after[2][0] if after else 0)
      same = before and after and before[3] == after[3]
      full.append((symbols.blank_id, symbols.blank, (at, at),
                   before[3] if same else _NO_WORD))
      if after:
        full.append(after)
  exact = True
  if ids is not None and [int(i) for i in ids] != [f[0] for f in full]:
    full, exact = _fallback([int(i) for i in ids], full, symbols), False
    used = sorted({f[3] for f in full if f[3] != _NO_WORD})
    renumber = {old: new for new, old in enumerate(used)}
    words = [words[old] for old in used]
    full = [(a, b, c, renumber.get(w, _NO_WORD)) for a, b, c, w in full]
  return TextAlignment(ids=tuple(f[0] for f in full), symbols=tuple(f[1] for f in full),
                       chars=tuple(f[2] for f in full), token_words=tuple(f[3] for f in full),
                       words=tuple(words), exact=exact)


def _fallback(ids: List[int], mapped: list, symbols: SymbolTable) -> list:
  """`ids` mapped like `mapped` where they agree at both ends; the middle shares its span."""
  prefix = 0
  while prefix < min(len(ids), len(mapped)) and ids[prefix] == mapped[prefix][0]:
    prefix += 1
  suffix = 0
  while (suffix < min(len(ids), len(mapped)) - prefix
         and ids[-1 - suffix] == mapped[-1 - suffix][0]):
    suffix += 1
  middle = mapped[prefix:len(mapped) - suffix]
  if middle:
    span = (min(m[2][0] for m in middle), max(m[2][1] for m in middle))
  else:
    at = mapped[prefix - 1][2][1] if prefix else 0
    span = (at, at)
  middle_words = {m[3] for m in middle}
  word = middle_words.pop() if len(middle_words) == 1 else _NO_WORD
  result = list(mapped[:prefix])
  for symbol_id in ids[prefix:len(ids) - suffix]:
    result.append((symbol_id, symbols.symbol_of(symbol_id), span, word))
  result.extend(mapped[len(mapped) - suffix:] if suffix else [])
  return result


# --------------------------------------------------------------------------- #
# Durations → seconds.


@dataclasses.dataclass(frozen=True)
class WordTime:
  """When a word of the input is spoken, in seconds from the start of the audio."""
  word: str
  start: float
  end: float
  char_start: int
  char_end: int


@dataclasses.dataclass(frozen=True)
class TokenTime:
  """One id the model read: its symbol, seconds, characters, and word (index or None)."""
  token: str
  id: int
  start: float
  end: float
  char_start: int
  char_end: int
  word: Optional[int]


def _rounded(value: float) -> float:
  return round(value, 6)


@dataclasses.dataclass(frozen=True)
class Timestamps:
  """Word and token timestamps of one synthesized text (see `durations_to_timestamps`).

  Attributes:
    words: `WordTime` of each spoken word, in text order.
    tokens: `TokenTime` of each id the model read, chunks in order.
    seconds_per_frame: `hop_length / sample_rate`.
  """
  words: Tuple[WordTime, ...]
  tokens: Tuple[TokenTime, ...]
  seconds_per_frame: float

  def to_dict(self) -> dict:
    """{"words": [{"word", "start", "end", "char_start", "char_end"}], "tokens": [...]}
    with seconds rounded to microseconds (the layout of `tfspeech-synthesize --timestamps`)."""
    def row(item):
      values = dataclasses.asdict(item)
      values["start"], values["end"] = _rounded(item.start), _rounded(item.end)
      return values
    return {"words": [row(w) for w in self.words], "tokens": [row(t) for t in self.tokens],
            "seconds_per_frame": self.seconds_per_frame}

  def to_json(self, **extra) -> str:
    """`to_dict()` (plus `extra` keys, e.g. the text) as JSON."""
    return json.dumps(dict(extra, **self.to_dict()), ensure_ascii=False, indent=1)


def durations_to_timestamps(alignments: Sequence[TextAlignment], durations: Sequence[Sequence[int]],
               hop_length: int, sample_rate: int, pause_frames: int = 0,
               chunk_frames: Optional[Sequence[int]] = None) -> Timestamps:
  """Seconds of every word and id of a text synthesized in one or more chunks.

  Args:
    alignments: one `TextAlignment` per chunk, in order, shifted to the chunk's place in
      the text (`TextAlignment.shifted`).
    durations: the frames of each id of each chunk (the model's `durations`, cut to the
      chunk's ids).
    hop_length, sample_rate: samples per frame and per second.
    pause_frames: frames of silence put between two chunks.
    chunk_frames: the mel frames of each chunk, when known (default: its durations' sum,
      which every acoustic model's serving output matches).

  Returns:
    `Timestamps`. A word cut in two by chunking (one longer than a chunk) is one word from
    the start of its first part to the end of its last.
  """
  if len(alignments) != len(durations):
    raise ValueError(f"durations_to_timestamps: {len(alignments)} alignments for {len(durations)} "
                     "duration lists")
  per_frame = hop_length / sample_rate
  words, tokens, chunk_start = [], [], 0
  for part, (alignment, frames) in enumerate(zip(alignments, durations)):
    frames = [int(f) for f in frames]
    if len(frames) != len(alignment.ids):
      raise ValueError(f"durations_to_timestamps: chunk {part} has {len(alignment.ids)} ids but "
                       f"{len(frames)} durations")
    frame = chunk_start
    first_word = len(words)
    for index, word in enumerate(alignment.words):
      if not index and words and word.char_start == words[-1].char_end:
        # A word longer than a chunk was cut: its second part continues the first.
        previous = words.pop()
        words.append(Word(previous.word + word.word, previous.char_start, word.char_end))
        first_word -= 1
        continue
      words.append(word)
    for symbol_id, symbol, (char_start, char_end), word, count in zip(
        alignment.ids, alignment.symbols, alignment.chars, alignment.token_words, frames):
      index = None if word == _NO_WORD else first_word + word
      tokens.append(TokenTime(symbol, int(symbol_id), frame * per_frame,
                              (frame + count) * per_frame, char_start, char_end, index))
      frame += count
    chunk_start += (sum(frames) if chunk_frames is None else int(chunk_frames[part])) + pause_frames
  word_times = []
  for index, word in enumerate(words):
    own = [t for t in tokens if t.word == index]
    word_times.append(WordTime(word.word, own[0].start, own[-1].end, word.char_start,
                               word.char_end))
  return Timestamps(tuple(word_times), tuple(tokens), per_frame)
