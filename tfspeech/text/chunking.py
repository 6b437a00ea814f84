"""Splitting long text into chunks of bounded token count, for synthesis in bounded memory.

An acoustic model's memory grows with the length of what it synthesizes at once (Grad-TTS
on 5,000 characters: one 232 s utterance, ~10.9 GB). `split_text` cuts text into chunks
of at most `max_tokens` tokens at the coarsest boundary that makes them fit: sentence
ends first, then clause punctuation (, ; : and spaced dashes), then spaces between words,
and characters only for a "word" longer than a chunk. Neighbouring pieces are packed
greedily, so short sentences share a chunk. ARPAbet groups ("{HH AH0 L OW1}") are never
cut.

Host-side text preprocessing in plain Python (like the cleaners): it runs before ids
reach the graph.
"""

import re
from typing import Callable, List

__all__ = ["split_text", "LEVELS"]

# Each level's pattern matches the separator after which text may be cut; the separator
# stays with the piece before it.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"')\]\u2019\u201d]*\s+")
_CLAUSE_END = re.compile(r"[,;:]+[\"')\]\u2019\u201d]*\s+|\s+[-\u2013\u2014]+\s+")
# Whitespace outside an ARPAbet group "{...}".
_WORD_END = re.compile(r"\s+(?![^{}]*\})")
# The smallest units: an ARPAbet group or one character.
_UNITS = re.compile(r"\{[^{}]*\}|.", re.DOTALL)
LEVELS = ("sentence", "clause", "word")
_PATTERNS = (_SENTENCE_END, _CLAUSE_END, _WORD_END)


def _cut(text: str, pattern) -> List[str]:
  """`text` cut after every match of `pattern` (pieces joined give `text` back)."""
  pieces, start = [], 0
  for match in pattern.finditer(text):
    if match.end() < len(text):
      pieces.append(text[start:match.end()])
      start = match.end()
  pieces.append(text[start:])
  return pieces


def _cut_characters(text: str, max_tokens: int, count: Callable[[str], int]) -> List[str]:
  """Greedy character cuts, for a single "word" longer than a chunk (groups kept whole)."""
  chunks, current = [], ""
  for unit in _UNITS.findall(text):
    if current and count(current + unit) > max_tokens:
      chunks.append(current)
      current = ""
    current += unit
  if current:
    chunks.append(current)
  return chunks


def _split(text: str, level: int, max_tokens: int, count: Callable[[str], int]) -> List[str]:
  if count(text) <= max_tokens:
    return [text]
  if level == len(_PATTERNS):
    return _cut_characters(text, max_tokens, count)
  pieces = _cut(text, _PATTERNS[level])
  if len(pieces) == 1:
    return _split(text, level + 1, max_tokens, count)
  chunks, current = [], ""
  for piece in pieces:
    if count((current + piece).strip()) <= max_tokens:
      current += piece
      continue
    if current.strip():
      chunks.append(current.strip())
    current = ""
    if count(piece.strip()) <= max_tokens:
      current = piece
    else:
      chunks.extend(_split(piece.strip(), level + 1, max_tokens, count))
  if current.strip():
    chunks.append(current.strip())
  return chunks


def split_text(text: str, max_tokens: int, count_tokens: Callable[[str], int]) -> List[str]:
  """Cuts `text` into chunks of at most `max_tokens` tokens, at sentence, clause or word ends.

  Args:
    text: raw text (before cleaning: the cut points are found in it, and each chunk is
      cleaned on its own later).
    max_tokens: most tokens per chunk, as counted by `count_tokens` (>= 1).
    count_tokens: tokens of a piece of text, e.g. the model's ids after cleaning,
      blanks included.

  Returns:
    Chunks with their surrounding whitespace stripped, in order; `[text.strip()]` when
    the whole text fits. Every chunk has `count_tokens(chunk) <= max_tokens` unless a
    single character alone counts more.
  """
  if max_tokens < 1:
    raise ValueError(f"split_text: max_tokens must be >= 1, got {max_tokens}")
  text = text.strip()
  if not text:
    return []
  return [chunk for chunk in _split(text, 0, max_tokens, count_tokens) if chunk]
