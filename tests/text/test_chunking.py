"""split_text: long text cut into chunks of bounded token count at the coarsest boundaries."""

import pytest

from tfspeech import text
from tfspeech.text.chunking import split_text

STORY = ("The quick brown fox jumps over the lazy dog. Then it runs away! Does it come back? "
         "Nobody knows, and nobody asks; the dog sleeps on - undisturbed, calm, content.")


def test_short_text_is_one_chunk():
  assert split_text("  Hello there.  ", 100, len) == ["Hello there."]
  assert split_text("   ", 100, len) == []


def test_sentences_first_and_packed_greedily():
  assert split_text(STORY, 90, len) == [
      "The quick brown fox jumps over the lazy dog. Then it runs away! Does it come back?",
      "Nobody knows, and nobody asks; the dog sleeps on - undisturbed, calm, content."]
  # The last sentence alone is 78 characters: cut at its last clause end that fits.
  assert split_text(STORY, 70, len) == [
      "The quick brown fox jumps over the lazy dog. Then it runs away!",
      "Does it come back?",
      "Nobody knows, and nobody asks; the dog sleeps on - undisturbed, calm,",
      "content."]


def test_long_sentences_are_cut_at_clauses_then_words_then_characters():
  chunks = split_text(STORY, 40, len)
  # Clause ends.
  assert "Nobody knows, and nobody asks;" in chunks
  assert "the dog sleeps on - undisturbed, calm," in chunks
  assert "The quick brown fox jumps over the lazy" in chunks  # words
  assert all(len(c) <= 40 for c in chunks)
  # Nothing is lost or reordered: the chunks are the words of the text.
  assert " ".join(chunks).split() == STORY.split()
  assert split_text("abcdefghij", 4, len) == ["abcd", "efgh", "ij"]
  # An ARPAbet group is never cut, not even at its inner spaces.
  assert split_text("say {HH AH0 L OW1} now please", 12, len) == [
      "say", "{HH AH0 L OW1}", "now please"]


def test_counts_model_tokens_and_bounds_every_chunk():
  table = text.english_characters(add_blank=True)

  def count(piece):
    return len(text.text_to_ids(piece, table, on_unknown="drop"))

  long_text = " ".join([STORY] * 40) + " It cost $3.50 in 1999."  # ~7,000 characters.
  chunks = split_text(long_text, 200, count)
  assert len(chunks) > 20 and max(map(count, chunks)) <= 200
  # Numbers are spelled out by the cleaners, so the bound is on the ids, not characters.
  assert chunks[-1].endswith("It cost $3.50 in 1999.")
  with pytest.raises(ValueError, match="max_tokens must be >= 1"):
    split_text("x", 0, len)
