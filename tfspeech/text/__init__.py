"""Text front end: cleaners, symbol tables, CMUdict ARPAbet, Python and graph tokenizers.

Typical use:

  from tfspeech import text
  table = text.english_arpabet()
  ids = text.text_to_ids("Dr. Smith paid $3.50.", table, cmudict=text.load_cmudict())
  # In a SavedModel, on already-cleaned text:
  tokenizer = text.GraphTokenizer(table)
  ids, lengths, unknown_counts = tokenizer(tf.constant(["hello {W ER1 L D}."]))
  # Which characters and words of the input each id came from (for word timestamps):
  alignment = text.align_text("Dr. Smith paid $3.50.", table)
"""

from tfspeech.text.arpabet import CMUDict, load_cmudict, words_to_arpabet
from tfspeech.text.cleaners import (
    CLEANER_NAMES,
    TextChange,
    basic_cleaners,
    clean_text,
    clean_text_with_changes,
    english_cleaners,
    get_cleaner,
    transliteration_cleaners,
)
from tfspeech.text.numbers import normalize_numbers
from tfspeech.text.symbols import (
    ARPABET_PHONES,
    SymbolTable,
    english_arpabet,
    english_characters,
    get_symbol_table,
)
from tfspeech.text.timestamps import (
    TextAlignment,
    Timestamps,
    align_text,
    durations_to_timestamps,
)
from tfspeech.text.tokenizer import (
    Encoding,
    GraphTokenizer,
    encode_text,
    ids_to_text,
    intersperse,
    intersperse_blank,
    text_to_ids,
)

__all__ = [
    "ARPABET_PHONES",
    "CLEANER_NAMES",
    "CMUDict",
    "Encoding",
    "GraphTokenizer",
    "SymbolTable",
    "TextAlignment",
    "TextChange",
    "Timestamps",
    "align_text",
    "basic_cleaners",
    "clean_text",
    "clean_text_with_changes",
    "durations_to_timestamps",
    "encode_text",
    "english_arpabet",
    "english_characters",
    "english_cleaners",
    "get_cleaner",
    "get_symbol_table",
    "ids_to_text",
    "intersperse",
    "intersperse_blank",
    "load_cmudict",
    "normalize_numbers",
    "text_to_ids",
    "transliteration_cleaners",
    "words_to_arpabet",
]
