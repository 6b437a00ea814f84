"""text_to_ids / ids_to_text against a transcription of the reference text_to_sequence."""

import logging
import re

import pytest

from tfspeech import text
from tfspeech.text import arpabet
from tfspeech.text.symbols import SymbolTable

_VALID = """AA AA0 AA1 AA2 AE AE0 AE1 AE2 AH AH0 AH1 AH2 AO AO0 AO1 AO2 AW AW0 AW1 AW2 AY AY0 AY1
  AY2 B CH D DH EH EH0 EH1 EH2 ER ER0 ER1 ER2 EY EY0 EY1 EY2 F G HH IH IH0 IH1 IH2 IY IY0 IY1 IY2
  JH K L M N NG OW OW0 OW1 OW2 OY OY0 OY1 OY2 P R S SH T TH UH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z
  ZH""".split()
# Grad-TTS/text/symbols.py
REFERENCE_SYMBOLS = (["_"] + list("-") + list("!'(),.:;? ")
                     + list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
                     + ["@" + s for s in _VALID])


def reference_text_to_sequence(raw, cleaner_names, dictionary):
  """Transcription of Grad-TTS/text/__init__.py text_to_sequence (cleaning is ours)."""
  symbol_to_id = {s: i for i, s in enumerate(REFERENCE_SYMBOLS)}

  def symbols_to_sequence(symbols):
    return [symbol_to_id[s] for s in symbols if s in symbol_to_id and s not in ("_", "~")]

  def arpabet_to_sequence(phones):
    return symbols_to_sequence(["@" + s for s in phones.split()])

  curly = re.compile(r"(.*?)\{(.+?)\}(.*)")
  space = symbols_to_sequence(" ")
  sequence = []
  while raw:
    match = curly.match(raw)
    if not match:
      cleaned = text.clean_text(raw, cleaner_names)
      if dictionary is not None:
        for word in cleaned.split(" "):
          pronunciations = dictionary.lookup(word) if word else None
          if pronunciations:
            sequence += arpabet_to_sequence(pronunciations[0])
          else:
            sequence += symbols_to_sequence(word)
          sequence += space
      else:
        sequence += symbols_to_sequence(cleaned)
      break
    sequence += symbols_to_sequence(text.clean_text(match.group(1), cleaner_names))
    sequence += arpabet_to_sequence(match.group(2))
    raw = match.group(3)
  if dictionary is not None and sequence and sequence[-1] == space[0]:
    sequence = sequence[:-1]
  return sequence


def reference_intersperse(lst, item):
  """Grad-TTS/utils.py intersperse."""
  result = [item] * (len(lst) * 2 + 1)
  result[1::2] = lst
  return result


EXTRA_SENTENCES = [
    "Turn left on {HH AW1 S T AH0 N} Street.",
    "{HH AH0 L OW1}, World!",
    "Café owners said “no” — twice…",
    "She bought 1,000 shares at $12.75 in 1987.",
    "A_B; (c) d: e? f! 'g' - h.",
    "  spaces   and\ttabs\n",
    "",
]


@pytest.fixture(scope="module")
def corpus_sentences(tiny_corpus):
  lines = (tiny_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
  return [line.split("|")[1] for line in lines if line]


@pytest.fixture(scope="module")
def dictionary():
  return arpabet.load_cmudict()


def test_characters_match_reference(corpus_sentences):
  table = text.english_arpabet()
  for sentence in corpus_sentences + EXTRA_SENTENCES:
    expected = reference_text_to_sequence(sentence, ["english_cleaners"], None)
    assert text.text_to_ids(sentence, table, on_unknown="drop") == expected, sentence


def test_dictionary_lookup_matches_reference(corpus_sentences, dictionary):
  table = text.english_arpabet()
  phone_ids = 0
  for sentence in corpus_sentences + EXTRA_SENTENCES[2:]:  # the reference looks up only after the last {...}
    expected = reference_text_to_sequence(sentence, ["english_cleaners"], dictionary)
    got = text.text_to_ids(sentence, table, cmudict=dictionary, on_unknown="drop")
    assert got == expected, sentence
    phone_ids += sum(i >= 64 for i in got)
  assert phone_ids > 500


def test_hello_world_ids(dictionary):
  table = text.english_arpabet()
  ids = text.text_to_ids("Hello world", table, cmudict=dictionary)
  assert ids == [table.id_of(s) for s in
                 ["@HH", "@AH0", "@L", "@OW1", " ", "@W", "@ER1", "@L", "@D"]]
  assert text.ids_to_text(ids, table) == "{HH AH0 L OW1} {W ER1 L D}"


def test_p_arpabet_zero_keeps_characters_and_seed_is_deterministic(dictionary):
  table = text.english_arpabet()
  sentence = "the quick brown fox jumps over the lazy dog " * 4
  assert (text.text_to_ids(sentence, table, cmudict=dictionary, p_arpabet=0.0)
          == text.text_to_ids(sentence, table))
  first = text.text_to_ids(sentence, table, cmudict=dictionary, p_arpabet=0.5, rng=3)
  assert first == text.text_to_ids(sentence, table, cmudict=dictionary, p_arpabet=0.5, rng=3)
  assert first != text.text_to_ids(sentence, table, cmudict=dictionary, p_arpabet=0.5, rng=4)
  assert any(i >= 64 for i in first) and any(i < 64 for i in first if i != table.id_of(" "))


@pytest.mark.parametrize("sentence", [
    "hello, world.", "{HH AH0 L OW1} {W ER1 L D}!", "a-b (c): d; e? f'g", "{AA0}x{ZH}",
])
def test_round_trip(sentence):
  table = text.english_arpabet()
  ids = text.text_to_ids(sentence, table, cleaner_names=(), on_unknown="error")
  back = text.ids_to_text(ids, table)
  assert text.text_to_ids(back, table, cleaner_names=(), on_unknown="error") == ids
  if "}{" not in sentence:
    assert back == sentence


def test_ids_to_text_skips_special_ids_and_rejects_bad_ids():
  table = text.english_arpabet(add_blank=True)
  ids = text.text_to_ids("hi", table, cleaner_names=())
  assert ids == [148, table.id_of("h"), 148, table.id_of("i"), 148]
  assert text.ids_to_text(ids + [0, 0], table) == "hi"
  with pytest.raises(ValueError, match="out of range"):
    text.ids_to_text([149], table)


def test_intersperse_matches_reference():
  for ids in ([], [5], [1, 2, 3]):
    assert text.intersperse(ids, 148) == reference_intersperse(ids, 148)


def test_bos_eos_are_added_before_blank():
  table = SymbolTable(("_", "^", "$", "~", "a", "b"), pad="_", bos="^", eos="$", blank="~")
  assert text.text_to_ids("ab", table, cleaner_names=()) == [3, 1, 3, 4, 3, 5, 3, 2, 3]


def test_unknown_error_names_characters_and_text():
  table = text.english_characters()
  with pytest.raises(ValueError, match=r"2 symbol\(s\).*'\"' x2.*in text 'say \"hi\"'"):
    text.text_to_ids('say "hi"', table, cleaner_names=(), on_unknown="error")
  with pytest.raises(ValueError, match="'@HH' x1"):
    text.text_to_ids("{HH}", table, cleaner_names=(), on_unknown="error")
  with pytest.raises(ValueError, match="'_' x1"):  # pad is never read from text
    text.text_to_ids("a_b", table, cleaner_names=(), on_unknown="error")


def test_unknown_warn_and_drop_report_counts(caplog):
  table = text.english_characters()
  with caplog.at_level(logging.DEBUG, logger="tfspeech.text.tokenizer"):
    warned = text.text_to_ids("a#b#", table, cleaner_names=(), on_unknown="warn")
    assert warned == [table.id_of("a"), table.id_of("b")]
    assert caplog.records[-1].levelno == logging.WARNING and "'#' x2" in caplog.text
    encoding = text.encode_text("a#b€", table, cleaner_names=(), on_unknown="drop")
    assert encoding.ids == warned
    assert encoding.unknown == {"#": 1, "€": 1}
    assert caplog.records[-1].levelno == logging.DEBUG


def test_bad_arguments(dictionary):
  with pytest.raises(ValueError, match="on_unknown"):
    text.text_to_ids("a", text.english_characters(), on_unknown="ignore")
  with pytest.raises(ValueError, match="no ARPAbet symbols"):
    text.text_to_ids("a", text.english_characters(), cmudict=dictionary)
  with pytest.raises(TypeError, match="SymbolTable"):
    text.text_to_ids("a", list("abc"))
  with pytest.raises(ValueError, match="valid cleaner names"):
    text.text_to_ids("a", text.english_characters(), cleaner_names=["english"])
