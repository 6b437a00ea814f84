"""Symbol tables against the reference `symbols` lists."""

import dataclasses
import json

import pytest

from tfspeech.text import symbols as symbols_lib
from tfspeech.text.symbols import SymbolTable

# Transcribed from Grad-TTS/text/cmudict.py `valid_symbols` (same in FastPitch).
REFERENCE_VALID_SYMBOLS = """
  AA AA0 AA1 AA2 AE AE0 AE1 AE2 AH AH0 AH1 AH2 AO AO0 AO1 AO2 AW AW0 AW1 AW2 AY AY0 AY1 AY2
  B CH D DH EH EH0 EH1 EH2 ER ER0 ER1 ER2 EY EY0 EY1 EY2 F G HH IH IH0 IH1 IH2 IY IY0 IY1
  IY2 JH K L M N NG OW OW0 OW1 OW2 OY OY0 OY1 OY2 P R S SH T TH UH UH0 UH1 UH2 UW
  UW0 UW1 UW2 V W Y Z ZH""".split()


def reference_grad_tts_symbols():
  """Grad-TTS/text/symbols.py: [_pad] + list(_special) + list(_punctuation) + list(_letters) + _arpabet."""
  pad = "_"
  punctuation = "!'(),.:;? "
  special = "-"
  letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
  arpabet = ["@" + s for s in REFERENCE_VALID_SYMBOLS]
  return [pad] + list(special) + list(punctuation) + list(letters) + arpabet


def test_english_arpabet_equals_reference_list():
  reference = reference_grad_tts_symbols()
  table = symbols_lib.english_arpabet()
  assert len(REFERENCE_VALID_SYMBOLS) == 84
  assert len(table) == 148
  assert list(table.symbols) == reference
  for known in ["_", "-", "!", " ", "A", "z", "@AA", "@HH", "@ZH"]:
    assert table.id_of(known) == reference.index(known)
  assert table.pad_id == 0


def test_english_characters_is_the_reference_prefix():
  table = symbols_lib.english_characters()
  assert len(table) == 64
  assert list(table.symbols) == reference_grad_tts_symbols()[:64]
  assert not table.has_arpabet
  assert symbols_lib.english_arpabet().has_arpabet


def test_blank_gets_grad_tts_id():
  # Grad-TTS: intersperse(text_norm, len(symbols)) -> blank id 148, n_vocab 149.
  table = symbols_lib.english_arpabet(add_blank=True)
  assert len(table) == 149
  assert table.blank_id == 148
  assert table.symbols[:148] == symbols_lib.english_arpabet().symbols
  assert "<blank>" not in table.text_symbols
  assert "_" not in table.text_symbols


@pytest.mark.parametrize("table", [
    symbols_lib.english_characters(),
    symbols_lib.english_arpabet(add_blank=True),
    SymbolTable(("<pad>", "<s>", "</s>", "a", "b", "@AA"), pad="<pad>", bos="<s>", eos="</s>",
                name="tiny"),
])
def test_json_round_trip(table):
  text = table.to_json()
  restored = SymbolTable.from_json(text)
  assert restored == table
  assert restored.id_of(table.symbols[-1]) == len(table) - 1
  data = json.loads(text)
  assert data["symbols"] == list(table.symbols)
  assert data["pad"] == table.pad and data["blank"] == table.blank


def test_table_is_frozen_and_hashable():
  table = symbols_lib.english_characters()
  with pytest.raises(dataclasses.FrozenInstanceError):
    table.pad = "x"
  assert hash(table) == hash(symbols_lib.english_characters())


@pytest.mark.parametrize("kwargs, message", [
    (dict(symbols=("_", "a", "a")), "appears twice"),
    (dict(symbols=("a", "b")), "pad symbol '_' is not in symbols"),
    (dict(symbols=("_", "a"), eos="~"), "eos symbol '~' is not in symbols"),
    (dict(symbols=("_", "")), "non-empty string"),
    (dict(symbols=("_", "a"), bos="_"), "distinct"),
])
def test_invalid_tables_raise(kwargs, message):
  with pytest.raises(ValueError, match=message):
    SymbolTable(**kwargs)


def test_lookups_fail_clearly():
  table = symbols_lib.english_characters()
  with pytest.raises(KeyError, match="'@HH' is not in SymbolTable 'english_characters'"):
    table.id_of("@HH")
  with pytest.raises(ValueError, match="out of range"):
    table.symbol_of(64)
  with pytest.raises(ValueError, match="not a SymbolTable"):
    SymbolTable.from_json('{"symbols": ["_"]}')
  with pytest.raises(ValueError, match="english_arpabet, english_characters"):
    symbols_lib.get_symbol_table("english_phones")
  assert symbols_lib.get_symbol_table("english_arpabet") == symbols_lib.english_arpabet()
