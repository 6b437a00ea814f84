"""tfspeech.text.timestamps: ids mapped back to the input's words and characters, then timed."""

import re

import pytest

from tfspeech import text
from tfspeech.text import chunking
from tfspeech.text import timestamps as ts

HOP, RATE = 256, 22050
# Texts whose cleaning changes, drops or inserts characters or spaces.
TRICKY = ["Hello, world.", "  Dr. Smith paid $3.50 for \"café\" — ok?  ", "hi 😀 there",
          "and/or  a / b", "capt.) 你好world 5™", "tab\there\nnew line",
          "Mrs. O'Neil (the capt.)",
          "It's 1,000 or 22nd; 3.14!", "good😀day …", "{HH AH0 L OW1} there{W ER1 L D}"]


def words_of(alignment):
  return [(w.word, w.char_start, w.char_end) for w in alignment.words]


def spoken_words(alignment):
  """Per word, the symbols of its ids (blanks dropped)."""
  result = [[] for _ in alignment.words]
  for symbol, word in zip(alignment.symbols, alignment.token_words):
    if word >= 0 and symbol != "<blank>":
      result[word].append(symbol)
  return ["".join(s) for s in result]


@pytest.mark.parametrize("cleaners", [("english_cleaners",), ("transliteration_cleaners",),
                                      ("basic_cleaners",), ()])
def test_ids_are_those_of_encode_text_and_words_are_the_input_text(cleaners):
  table = text.english_characters(add_blank=True)
  for raw in TRICKY:
    alignment = text.align_text(raw, table, cleaners)
    assert list(alignment.ids) == text.encode_text(raw, table, cleaners, on_unknown="drop").ids
    assert alignment.exact
    for word in alignment.words:
      assert raw[word.char_start:word.char_end] == word.word and word.word.strip() == word.word
    for start, end in alignment.chars:
      assert 0 <= start <= end <= len(raw)


def test_cleaned_words_keep_the_user_spelling_and_punctuation_is_between_words():
  table = text.english_characters(add_blank=True)
  raw = "Dr. Smith paid $3.50, \"café\"! Hi 😀 you."
  alignment = text.align_text(raw, table)
  assert words_of(alignment) == [("Dr.", 0, 3), ("Smith", 4, 9), ("paid", 10, 14),
                                 ("$3.50", 15, 20), ("café", 23, 27), ("Hi", 30, 32),
                                 ("you", 35, 38)]
  # The emoji is not a word (nothing of it is said); each word's ids are its cleaned form.
  assert spoken_words(alignment) == ["doctor", "smith", "paid",
                                     "three dollars, fifty cents", "cafe", "hi", "you"]
  by_symbol = {}
  for symbol, chars, word in zip(alignment.symbols, alignment.chars, alignment.token_words):
    by_symbol.setdefault(symbol, []).append((raw[chars[0]:chars[1]], word))
  # Commas, quotes, "!" and "." at word ends are pauses between words, not word time;
  # the comma inside "three dollars, fifty cents" belongs to $3.50.
  assert by_symbol[","] == [("$3.50", 3), (",", -1)]
  assert by_symbol["!"] == [("\"!", -1)] and by_symbol["."] == [(".", -1)]
  assert all(word == -1 for _, word in by_symbol[" "][:3])
  # A word cleaning only lowercased maps each id to its own character.
  assert [raw[s:e] for (s, e), w in zip(alignment.chars, alignment.token_words)
          if w == 1 and e > s] == list("Smith")


def test_blanks_inside_a_word_are_the_word_and_at_its_edges_the_pause():
  table = text.english_characters(add_blank=True)
  alignment = text.align_text("Hi, yo.", table)
  blank = table.blank_id
  assert alignment.ids[::2] == (blank,) * 8
  # [_ h _ i _ , _ " " _ y _ o _ . _]
  assert alignment.token_words == (-1, 0, 0, 0, -1, -1, -1, -1, -1, 1, 1, 1, -1, -1, -1)
  assert alignment.symbols[1::2] == tuple("hi, yo.")


def test_arpabet_words_and_groups():
  table = text.english_arpabet(add_blank=True)
  cmudict = text.CMUDict({"hello": ["HH AH0 L OW1"], "there": ["DH EH1 R"]})
  raw = "Hello there, {W ER1 L D} again."
  alignment = text.align_text(raw, table, cmudict=cmudict)
  assert list(alignment.ids) == text.encode_text(raw, table, cmudict=cmudict).ids
  # Whitespace lookup (Grad-TTS): "there," with its comma is not found and stays letters.
  assert words_of(alignment) == [("Hello", 0, 5), ("there", 6, 11),
                                 ("{W ER1 L D}", 13, 24), ("again", 25, 30)]
  assert spoken_words(alignment) == ["@HH@AH0@L@OW1", "there", "@W@ER1@L@D", "again"]
  phones = [raw[s:e] for sym, (s, e) in zip(alignment.symbols, alignment.chars)
            if sym.startswith("@")]
  assert phones == ["Hello"] * 4 + ["{W ER1 L D}"] * 4


def test_ids_that_differ_keep_both_ends_and_share_the_middle():
  table = text.english_characters()
  raw = "one two three"
  ids = list(text.align_text(raw, table).ids)
  changed = ids[:4] + [table.id_of("x"), table.id_of("y")] + ids[5:]  # "t" of two → "xy"
  alignment = text.align_text(raw, table, ids=changed)
  assert not alignment.exact and list(alignment.ids) == changed
  assert [raw[s:e] for s, e in alignment.chars] == (list("one ") + ["t"] * 2 +
                                                    list("wo three"))
  assert [w.word for w in alignment.words] == ["one", "two", "three"]
  assert alignment.token_words[4:6] == (1, 1)


def test_bos_and_eos_are_no_word():
  table = text.SymbolTable(symbols=("_", "<s>", "</s>", " ", "a", "b", ","), bos="<s>",
                           eos="</s>")
  alignment = text.align_text("ab, ba", table, ())
  assert alignment.symbols[0] == "<s>" and alignment.symbols[-1] == "</s>"
  assert alignment.chars[0] == (0, 0) and alignment.chars[-1] == (6, 6)
  assert alignment.token_words == (-1, 0, 0, -1, -1, 1, 1, -1)


def test_durations_become_seconds_across_chunks_with_pauses():
  table = text.english_characters(add_blank=True)
  raw = "First part here. Second one, then a verylongwordthatmustbecut."
  count = lambda piece: len(text.encode_text(piece, table, on_unknown="drop").ids)
  pieces = chunking.split_text(raw, 25, count)
  assert len(pieces) >= 4  # sentences, clauses, words, and the long word cut in two
  alignments, durations, position = [], [], 0
  for piece in pieces:
    offset = raw.index(piece, position)
    position = offset + len(piece)
    alignments.append(text.align_text(piece, table).shifted(offset))
    durations.append([1 + (i % 3) for i in range(len(alignments[-1].ids))])
  stamps = text.durations_to_timestamps(alignments, durations, HOP, RATE, pause_frames=10)
  # Every word once, in order, with the characters of the whole text; the cut word is one.
  assert [(w.word, w.char_start, w.char_end) for w in stamps.words] == [
      (m.group(), m.start(), m.end()) for m in re.finditer(r"[A-Za-z]+", raw)]
  frame = HOP / RATE
  assert stamps.tokens[0].start == 0
  assert stamps.tokens[-1].end == pytest.approx(
      (sum(map(sum, durations)) + 10 * (len(pieces) - 1)) * frame)
  # Chunk 2 starts after chunk 1 and a 10-frame pause.
  first_of_second = stamps.tokens[len(alignments[0].ids)]
  assert first_of_second.start == pytest.approx((sum(durations[0]) + 10) * frame)
  for word_index, word in enumerate(stamps.words):
    own = [t for t in stamps.tokens if t.word == word_index]
    assert (word.start, word.end) == (own[0].start, own[-1].end)
  starts = [w.start for w in stamps.words]
  assert starts == sorted(starts) and all(w.end > w.start for w in stamps.words)
  data = stamps.to_dict()
  assert set(data["words"][0]) == {"word", "start", "end", "char_start", "char_end"}
  assert data["tokens"][1] == {"token": "f", "id": table.id_of("f"),
                               "start": round(stamps.tokens[1].start, 6),
                               "end": round(stamps.tokens[1].end, 6), "char_start": 0,
                               "char_end": 1, "word": 0}
  with pytest.raises(ValueError, match="chunk 0 has 3 ids but 1 durations"):
    text.durations_to_timestamps([text.align_text("a", table)], [[1]], HOP, RATE)
