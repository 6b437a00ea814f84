"""Text -> symbol ids, in Python (`text_to_ids`) and in the graph (`GraphTokenizer`).

Both read text the same way, so a model trained on `text_to_ids` output can
take a string at inference through `GraphTokenizer`:

  * `{...}` is an ARPAbet group: its whitespace-separated phones become the
    symbols "@PHONE" (`{HH AH0 L OW1}` -> "@HH", "@AH0", "@L", "@OW1").
    A group is `{` + anything but braces + `}`; an unmatched brace is an
    ordinary character.
  * every other code point is one character symbol.
  * symbols missing from the table (and the table's pad/bos/eos/blank, which
    text cannot produce) are unknown: never used, always counted.
  * bos/eos are added when the table has them, then the blank is interspersed
    when the table has one (see `tfspeech.text.symbols`).

Differences from the reference `text_to_sequence` (Grad-TTS): unknown symbols
are reported instead of silently dropped, and ARPAbet lookup also happens in
text before a `{...}` group (the reference looks up only after the last group).
"""

import collections
import logging
import re
from typing import Iterable, List, NamedTuple, Optional, Sequence, Union

import tensorflow as tf

from tfspeech.text import arpabet, cleaners
from tfspeech.text.cleaners import split_arpabet_groups
from tfspeech.text.symbols import ARPABET_GROUP_PATTERN, ARPABET_PREFIX, SymbolTable

_LOG = logging.getLogger(__name__)

# Phones are separated by ASCII whitespace; spelled out because `\s` means
# Unicode whitespace in Python and ASCII whitespace in RE2.
_PHONE_SEPARATOR = "[ \t\n\r\f\v]+"
_PHONE_SEPARATOR_RE = re.compile(_PHONE_SEPARATOR)

ON_UNKNOWN_POLICIES = ("error", "warn", "drop")


class Encoding(NamedTuple):
  """Result of `encode_text`.

  Attributes:
    ids: symbol ids.
    unknown: Counter of the symbols that were not in the table (characters,
      or "@PHONE" for phones), with how often each was dropped.
    changes: the `cleaners.TextChange`s of cleaning, in text order: spans the
      cleaners dropped (emoji, ...) or transliterated (other scripts), to tell the user.
  """
  ids: List[int]
  unknown: collections.Counter
  changes: tuple = ()


def intersperse(ids: Sequence[int], item: int) -> List[int]:
  """Puts `item` before, between and after `ids`: [a, b] -> [item, a, item, b, item].

  Grad-TTS and glow-tts call this with the blank id (`add_blank=True`).
  """
  result = [item] * (2 * len(ids) + 1)
  result[1::2] = ids
  return result


def _phones(group: str) -> List[str]:
  return [ARPABET_PREFIX + p for p in _PHONE_SEPARATOR_RE.split(group) if p]


def _text_ids(table: SymbolTable):
  specials = set(table.special_symbols)
  return {s: i for i, s in enumerate(table.symbols) if s not in specials}


def text_tokens(piece: str, cleaner_names, cmudict: Optional[arpabet.CMUDict],
                p_arpabet: float, generator, word_boundaries: str, ambiguous: str,
                changes: Optional[list] = None) -> List[str]:
  """The symbol strings of text outside `{...}` groups: cleaned, then words to ARPAbet.

  `generator` is the `random.Random` of `p_arpabet` (None: no dictionary lookup); the
  cleaners' `TextChange`s are appended to `changes` when given. Tokens are not checked
  against a table (see `encode_text`); `tfspeech.text.timestamps` calls this word by word.
  """
  piece, piece_changes = cleaners.clean_text_with_changes(piece, cleaner_names)
  if changes is not None:
    changes.extend(piece_changes)
  if generator is None:
    return list(piece)
  converted = arpabet.words_to_arpabet(piece, cmudict, p_arpabet, generator,
                                       word_boundaries, ambiguous)
  tokens = []
  for sub_index, sub_piece in enumerate(split_arpabet_groups(converted)):
    tokens.extend(_phones(sub_piece) if sub_index % 2 else sub_piece)
  return tokens


def encode_text(text: str, symbols: SymbolTable,
                cleaner_names: Union[str, Iterable[str]] = ("english_cleaners",),
                cmudict: Optional[arpabet.CMUDict] = None, p_arpabet: float = 1.0,
                rng: arpabet.RandomLike = None, on_unknown: str = "warn",
                word_boundaries: str = "whitespace", ambiguous: str = "first") -> Encoding:
  """Like `text_to_ids`, and also returns the unknown symbols it dropped."""
  if not isinstance(text, str):
    raise TypeError(f"text must be str, got {type(text).__name__}: {text!r:.100}")
  if not isinstance(symbols, SymbolTable):
    raise TypeError(f"symbols must be a SymbolTable, got {type(symbols).__name__}")
  if on_unknown not in ON_UNKNOWN_POLICIES:
    raise ValueError(f"on_unknown must be one of {ON_UNKNOWN_POLICIES}, got {on_unknown!r}")
  if cmudict is not None and p_arpabet > 0 and not symbols.has_arpabet:
    raise ValueError(f"cmudict was given but SymbolTable {symbols.name!r} has no ARPAbet "
                     "symbols; use english_arpabet() or pass cmudict=None.")
  lookup = _text_ids(symbols)
  generator = arpabet.as_rng(rng) if cmudict is not None and p_arpabet > 0 else None
  tokens, changes = [], []
  for index, piece in enumerate(split_arpabet_groups(text)):
    if index % 2:
      tokens.extend(_phones(piece))
      continue
    tokens.extend(text_tokens(piece, cleaner_names, cmudict, p_arpabet, generator,
                              word_boundaries, ambiguous, changes))

  ids = [lookup[t] for t in tokens if t in lookup]
  unknown = collections.Counter(t for t in tokens if t not in lookup)
  if unknown:
    described = ", ".join(f"{s!r} x{n}" for s, n in sorted(unknown.items()))
    message = (f"{sum(unknown.values())} symbol(s) not in SymbolTable {symbols.name!r} "
               f"({described}) in text {text!r}")
    if on_unknown == "error":
      raise ValueError(message + "; clean the text, extend the table, or pass "
                       "on_unknown='warn'/'drop' to skip them.")
    if on_unknown == "warn":
      _LOG.warning("dropped %s", message)
    else:
      _LOG.debug("dropped %s", message)

  if symbols.bos is not None:
    ids.insert(0, symbols.bos_id)
  if symbols.eos is not None:
    ids.append(symbols.eos_id)
  if symbols.blank is not None:
    ids = intersperse(ids, symbols.blank_id)
  return Encoding(ids, unknown, tuple(changes))


def text_to_ids(text: str, symbols: SymbolTable,
                cleaner_names: Union[str, Iterable[str]] = ("english_cleaners",),
                cmudict: Optional[arpabet.CMUDict] = None, p_arpabet: float = 1.0,
                rng: arpabet.RandomLike = None, on_unknown: str = "warn",
                word_boundaries: str = "whitespace", ambiguous: str = "first") -> List[int]:
  """Converts text to symbol ids.

  Text outside `{...}` groups is cleaned; with a `cmudict`, words are then
  replaced by their pronunciation with probability `p_arpabet`.

  Args:
    text: raw text, may contain ARPAbet groups "{HH AH0 L OW1}".
    symbols: the `SymbolTable`.
    cleaner_names: cleaners to run (see `tfspeech.text.cleaners`); () for none.
    cmudict: optional `CMUDict` (e.g. `load_cmudict()`); needs an ARPAbet table.
    p_arpabet: probability that a dictionary word is replaced by its phones.
    rng: `random.Random`, int seed or None (unseeded), for `p_arpabet` < 1.
    on_unknown: symbols missing from the table: "error" raises ValueError
      naming them and the text; "warn" logs a warning and drops them; "drop"
      drops them (logged at debug level; `encode_text` returns the counts).
    word_boundaries: "whitespace" (Grad-TTS) or "letters" (FastPitch), see
      `tfspeech.text.arpabet`.
    ambiguous: "first" | "ignore" | "random" for words with several
      pronunciations.

  Returns:
    The ids, a list of int.
  """
  return encode_text(text, symbols, cleaner_names, cmudict, p_arpabet, rng, on_unknown,
                     word_boundaries, ambiguous).ids


def ids_to_text(ids: Iterable[int], symbols: SymbolTable) -> str:
  """Converts ids back to text; phones come back as "{HH AH0 L OW1}".

  pad, bos, eos and blank ids are skipped, so `text_to_ids(ids_to_text(ids),
  cleaner_names=())` gives `ids` back for ids that text can produce.
  """
  specials = set(symbols.special_symbols)
  pieces = []
  for symbol_id in ids:
    symbol = symbols.symbol_of(int(symbol_id))
    if symbol in specials:
      continue
    if len(symbol) > 1 and symbol.startswith(ARPABET_PREFIX):
      symbol = "{" + symbol[len(ARPABET_PREFIX):] + "}"
    pieces.append(symbol)
  return "".join(pieces).replace("}{", " ")


def _unused_code_points(table: SymbolTable, count: int) -> List[str]:
  """Control characters (not whitespace) that are not symbols of `table`, to use as markers."""
  found = [chr(c) for c in range(1, 32) if not chr(c).isspace() and chr(c) not in table]
  if len(found) < count:
    raise ValueError(f"SymbolTable {table.name!r} uses every control character; "
                     "GraphTokenizer needs two non-whitespace characters of U+0001..U+001F free as markers.")
  return found[:count]


def intersperse_blank(ids, lengths, blank_id: int, pad_id: int):
  """Graph-mode `intersperse` of a padded batch: [a, b] → [blank, a, blank, b, blank].

  Args:
    ids: `[batch, tokens]` int32 ids, padded past `lengths`.
    lengths: `[batch]` int32 valid tokens.
    blank_id: id put around every token.
    pad_id: id of the padding past the new lengths.

  Returns:
    (`[batch, 2 * tokens + 1]` ids, `[batch]` lengths `2 * lengths + 1`).
  """
  ids = tf.cast(ids, tf.int32)
  batch, width = tf.shape(ids)[0], tf.shape(ids)[1]
  blanks = tf.fill([batch, width + 1], tf.constant(blank_id, tf.int32))
  pairs = tf.reshape(tf.stack([blanks[:, :-1], ids], axis=2), [batch, 2 * width])
  spread = tf.concat([pairs, blanks[:, -1:]], axis=1)
  lengths = 2 * tf.cast(lengths, tf.int32) + 1
  valid = tf.sequence_mask(lengths, 2 * width + 1)
  return tf.where(valid, spread, tf.constant(pad_id, tf.int32)), lengths


class GraphTokenizer(tf.Module):
  """Maps cleaned text to padded ids inside a TensorFlow graph.

  Same reading as `text_to_ids(text, symbols, cleaner_names=())` (no cleaning,
  no dictionary lookup; `{...}` ARPAbet groups are honoured), built from
  `tf.strings` ops and a `tf.lookup.StaticHashTable`, so it traces with
  unknown batch size, exports in a SavedModel and runs without Python.

  Example:
    tokenizer = GraphTokenizer(english_arpabet())
    ids, lengths, unknown = tokenizer(tf.constant(["hello {W ER1 L D}."]))
  """

  def __init__(self, symbols: SymbolTable, name: Optional[str] = None):
    super().__init__(name=name)
    if not isinstance(symbols, SymbolTable):
      raise TypeError(f"GraphTokenizer needs a SymbolTable, got {type(symbols).__name__}")
    self.symbols = symbols
    # The JSON travels with the SavedModel so an app can read the vocabulary;
    # string variables only live on the CPU.
    with tf.device("CPU:0"):
      self.symbols_json = tf.Variable(symbols.to_json(), trainable=False, name="symbols_json")
    text_ids = _text_ids(symbols)
    self._table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(text_ids), tf.string),
            tf.constant(list(text_ids.values()), tf.int32)),
        default_value=-1)
    # Group contents are wrapped in `_marker` and the text split at it; a
    # marker already in the text is first replaced by `_stand_in`, another
    # character outside the table, so it still counts as one unknown.
    self._marker, self._stand_in = _unused_code_points(symbols, 2)

  def tokens(self, texts):
    """Splits texts into symbol strings.

    Args:
      texts: string tensor [batch].

    Returns:
      RaggedTensor of strings [batch, (tokens)].
    """
    texts = tf.strings.regex_replace(texts, re.escape(self._marker), self._stand_in)
    marked = tf.strings.regex_replace(texts, ARPABET_GROUP_PATTERN,
                                      self._marker + r"\1" + self._marker)
    segments = tf.strings.split(marked, sep=self._marker)  # [batch, (segments)]
    pieces = segments.flat_values  # [segments]
    # Splitting at markers alternates outside text (even) and group insides (odd).
    position = tf.ragged.range(segments.row_lengths()).flat_values
    is_group = tf.equal(position % 2, 1)
    empty = tf.zeros_like(pieces)
    characters = tf.strings.unicode_split(tf.where(is_group, empty, pieces), "UTF-8")
    phone_text = tf.strings.regex_replace(tf.where(is_group, pieces, empty), _PHONE_SEPARATOR, " ")
    phones = tf.strings.split(phone_text, sep=" ")
    phones = tf.ragged.boolean_mask(phones, tf.strings.length(phones) > 0)
    phones = tf.ragged.map_flat_values(lambda p: ARPABET_PREFIX + p, phones)
    # Each segment is all characters or all phones, so concatenating keeps order.
    per_segment = tf.concat([characters, phones], axis=1)  # [segments, (tokens)]
    return tf.RaggedTensor.from_row_splits(per_segment, segments.row_splits).merge_dims(1, 2)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def __call__(self, texts):
    """Tokenizes a batch of cleaned texts.

    Args:
      texts: string tensor [batch] (UTF-8).

    Returns:
      ids: int32 [batch, max_len], padded with the pad id.
      lengths: int32 [batch], number of ids per text.
      unknown_counts: int32 [batch], symbols per text not in the table (dropped).
    """
    ids = tf.ragged.map_flat_values(self._table.lookup, self.tokens(texts))
    known = ids >= 0
    unknown_counts = tf.reduce_sum(tf.cast(tf.logical_not(known), tf.int32), axis=1)
    ids = tf.ragged.boolean_mask(ids, known)
    batch = tf.shape(texts)[0]
    if self.symbols.bos is not None:
      ids = tf.concat([tf.fill([batch, 1], tf.constant(self.symbols.bos_id, tf.int32)), ids],
                      axis=1)
    if self.symbols.eos is not None:
      ids = tf.concat([ids, tf.fill([batch, 1], tf.constant(self.symbols.eos_id, tf.int32))],
                      axis=1)
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    ids = ids.to_tensor(default_value=self.symbols.pad_id)
    if self.symbols.blank is not None:
      ids, lengths = intersperse_blank(ids, lengths, self.symbols.blank_id,
                                       self.symbols.pad_id)
    return ids, lengths, unknown_counts
