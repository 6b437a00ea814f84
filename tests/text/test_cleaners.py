"""Cleaners against outputs of the reference front end.

Expected strings were produced by running keithito's tacotron cleaners as
shipped in huawei-noah/Speech-Backbones Grad-TTS/text (cleaners.py,
numbers.py) with inflect 7.6 and with `unidecode` swapped for `anyascii`
(which agrees with it on these inputs). Hyphens and group commas are part of
the reference output.
"""

import pytest

from tfspeech.text import cleaners, numbers

REFERENCE_ENGLISH = [
    ("Mr. Smith paid $3.50 for 2 apples.",
     "mister smith paid three dollars, fifty cents for two apples."),
    ("1984", "nineteen eighty-four"),
    ("In 1999, the 1st and 22nd.", "in nineteen ninety-nine, the first and twenty-second."),
    ("3.14", "three point fourteen"),
    ("1,000,000 people", "one million people"),
    ("$1", "one dollar"),
    ("$0.01", "one cent"),
    ("$1.01", "one dollar, one cent"),
    ("$0", "zero dollars"),
    ("$1,234.56", "twelve thirty-four dollars, fifty-six cents"),
    ("$1.2.3", "one point two.three dollars"),
    ("2000", "two thousand"),
    ("2005", "two thousand five"),
    ("2010", "twenty ten"),
    ("1900", "nineteen hundred"),
    ("1100", "eleven hundred"),
    ("1001", "ten oh one"),
    ("2999", "twenty-nine ninety-nine"),
    ("3000", "three thousand"),
    ("1000", "one thousand"),
    ("1234567", "one million, two hundred thirty-four thousand, five hundred sixty-seven"),
    ("101st", "one hundred and first"),
    ("0", "zero"),
    ("7", "seven"),
    ("13", "thirteen"),
    ("100", "one hundred"),
    ("10000", "ten thousand"),
    ("42nd Street", "forty-second street"),
    ("the 3rd time", "the third time"),
    ("café naïve", "cafe naive"),
    ("“Hello,” she said—it’s fine…", "\"hello,\" she said-it's fine..."),
    ("Dr. Who, St. Paul, Capt. Hook, Ft. Worth", "doctor who, saint paul, captain hook, fort worth"),
    ("Mrs. Jones and Mr. Jones", "misess jones and mister jones"),
    ("Drs. Lee, Rev. Green, Lt. Dan, Hon. Judge, Sgt. Pepper, Esq. Co. Ltd. Col. Maj. Gen. Jr.",
     "doctors lee, reverend green, lieutenant dan, honorable judge, sergeant pepper, esquire "
     "company limited colonel major general junior"),
    ("hello   world\n\tfoo ", "hello world foo "),
    ("Ñandú Zürich Straße", "nandu zurich strasse"),
    ("It cost 99 cents in 1850.", "it cost ninety-nine cents in eighteen fifty."),
    ("Mr Smith", "mr smith"),
    ("version 2.0.1", "version two point zero.one"),
]


@pytest.mark.parametrize("raw, expected", REFERENCE_ENGLISH)
def test_english_cleaners_match_reference(raw, expected):
  assert cleaners.english_cleaners(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    # The reference transliterates first and reads "£5" as "gbpfive"; we read
    # "£" and "€" like "$" (documented deviation).
    ("£5", "five pounds"),
    ("£1", "one pound"),
    ("£1,000.25", "one thousand pounds, twenty-five pence"),
    ("£0.01", "one penny"),
    ("€3.50 each", "three euros, fifty cents each"),
])
def test_pounds_and_euros(raw, expected):
  assert cleaners.english_cleaners(raw) == expected


def test_numbers_past_inflect_range_are_read_digit_by_digit():
  # The reference raises inflect.NumOutOfRangeError here.
  assert cleaners.english_cleaners("1" + "0" * 36 + "7") == "one " + "zero " * 36 + "seven"
  assert cleaners.english_cleaners("9" * 5000).count("nine") == 5000
  assert cleaners.english_cleaners("1" + "0" * 35) == "one hundred decillion"


def test_basic_and_transliteration_cleaners_match_reference():
  assert cleaners.basic_cleaners("Café  NAÏVE\n") == "café naïve "
  assert cleaners.transliteration_cleaners("Café  NAÏVE\n") == "cafe naive "
  assert cleaners.basic_cleaners("“Quote” — ok") == "“quote” — ok"
  assert cleaners.transliteration_cleaners("“Quote” — ok") == "\"quote\" - ok"


def test_normalize_numbers_leaves_words_alone():
  assert numbers.normalize_numbers("no digits here.") == "no digits here."
  assert numbers.expand_currency("$2 and £3") == "2 dollars and 3 pounds"


def test_clean_text_runs_cleaners_in_order_and_accepts_a_single_name():
  assert cleaners.clean_text("Dr.  5", ("basic_cleaners",)) == "dr. 5"
  assert cleaners.clean_text("Dr.  5", "english_cleaners") == "doctor five"
  assert cleaners.clean_text("Dr.  5", ()) == "Dr.  5"


def test_clean_text_keeps_arpabet_groups_verbatim():
  cleaned = cleaners.clean_text("Turn LEFT on {HH AW1 S T AH0 N} St. 2", ("english_cleaners",))
  assert cleaned == "turn left on {HH AW1 S T AH0 N} saint two"
  assert cleaners.split_arpabet_groups(cleaned) == ["turn left on ", "HH AW1 S T AH0 N", " saint two"]


def test_unknown_cleaner_lists_valid_names():
  with pytest.raises(ValueError, match="english_clenaers.*basic_cleaners, english_cleaners, "
                     "transliteration_cleaners"):
    cleaners.clean_text("hi", ["english_clenaers"])
  with pytest.raises(ValueError, match="valid cleaner names"):
    cleaners.get_cleaner("nope")
  assert cleaners.get_cleaner("english_cleaners") is cleaners.english_cleaners


def test_clean_text_rejects_non_strings():
  with pytest.raises(TypeError, match="must be str"):
    cleaners.clean_text(b"bytes")


def test_emoji_are_dropped_and_reported_not_spelled_out():
  # anyascii spells 😀 as ":grinning:"; the colons were dropped and the name was read.
  cleaned, changes = cleaners.clean_text_with_changes("I won 😀🎉👍!", "english_cleaners")
  assert cleaned == "i won !"
  assert [(c.kind, c.original, c.replacement) for c in changes] == [("dropped", "😀🎉👍", "")]
  assert changes[0].describe() == "dropped '😀🎉👍'"
  # Between two letters the emoji leaves a word boundary; ZWJ sequences, flags and skin
  # tones go as one span.
  assert cleaners.english_cleaners("good😀day") == "good day"
  cleaned, changes = cleaners.clean_text_with_changes("we 👨\u200d👩\u200d👧 🇺🇸 👍🏽 ok",
                                                      "transliteration_cleaners")
  assert cleaned == "we ok"
  assert [c.original for c in changes] == ["👨\u200d👩\u200d👧", "🇺🇸", "👍🏽"]


def test_other_scripts_are_transliterated_and_reported():
  cleaned, changes = cleaners.clean_text_with_changes("Say 你好 to Привет.", "english_cleaners")
  assert cleaned == "say nihao to privet."
  assert [(c.kind, c.original, c.replacement) for c in changes] == [
      ("transliterated", "你好", "NiHao"), ("transliterated", "Привет", "Privet")]
  assert changes[0].describe() == "transliterated '你好' -> 'NiHao'"
  # A transliterated span is its own word.
  assert cleaners.english_cleaners("5™") == "five tm"
  # Accented Latin and typographic punctuation change silently, as in the reference.
  assert cleaners.clean_text_with_changes("Café “naïve” Straße—ok", "english_cleaners") == (
      "cafe \"naive\" strasse-ok", [])
  # basic_cleaners keeps non-ASCII text as it is, so it reports nothing.
  assert cleaners.clean_text_with_changes("你好 😀", "basic_cleaners") == ("你好 😀", [])


def test_slash_keeps_the_words_apart():
  assert cleaners.english_cleaners("twelve/twenty-five") == "twelve twenty-five"
  assert cleaners.english_cleaners("and / or, 12/25") == "and or, twelve twenty-five"
  assert cleaners.transliteration_cleaners("A/B") == "a b"


def test_encode_text_returns_the_changes():
  from tfspeech import text
  table = text.english_characters()
  encoding = text.encode_text("Hi 😀 你好/there {HH AY1}", text.english_arpabet(),
                              on_unknown="drop")
  assert [c.original for c in encoding.changes] == ["😀", "你好"]
  plain = text.encode_text("Hi 😀 there", table, on_unknown="error")  # Nothing unknown left.
  assert text.ids_to_text(plain.ids, table) == "hi there"
  assert [c.kind for c in plain.changes] == ["dropped"]
