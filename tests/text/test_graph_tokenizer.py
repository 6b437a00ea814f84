"""GraphTokenizer: parity with text_to_ids, graph-mode contract, SavedModel round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import text
from tfspeech.testing import assert_no_python_ops
from tfspeech.text import arpabet
from tfspeech.text.symbols import SymbolTable

EDGE_CASES = [
    "",
    " ",
    "hello {HH AH0 L OW1} world.",
    "{W ER1 L D}{HH AH0 L OW1}",
    "{}{ }{\tAA1\n  B }",
    "unmatched { brace",
    "unmatched } brace {",
    "nested {a {HH} b}",
    "{XX} unknown phone and {hh} lower-case phone",
    "café naïve ü 日本 😀",
    "under_score # hash \x01 control \x02",
    "{" * 3 + "}" * 3,
    "A-Z; (paren) 'quote': ok? yes!",
]


def python_batch(texts, table):
  encodings = [text.encode_text(t, table, cleaner_names=(), on_unknown="drop") for t in texts]
  ids = [e.ids for e in encodings]
  unknown = [sum(e.unknown.values()) for e in encodings]
  return ids, unknown


def assert_same_as_python(tokenizer, texts, table):
  ids, lengths, unknown = tokenizer(tf.constant(texts, tf.string))
  ids, lengths, unknown = ids.numpy(), lengths.numpy(), unknown.numpy()
  expected_ids, expected_unknown = python_batch(texts, table)
  assert ids.dtype == np.int32 and lengths.dtype == np.int32 and unknown.dtype == np.int32
  assert ids.shape == (len(texts), max(len(e) for e in expected_ids))
  for row, expected, length in zip(ids, expected_ids, lengths):
    assert length == len(expected)
    assert row[:length].tolist() == expected
    assert (row[length:] == table.pad_id).all()
  assert unknown.tolist() == expected_unknown


@pytest.fixture(scope="module")
def sentences(tiny_corpus):
  """Cleaned corpus sentences, half of their words turned into ARPAbet groups."""
  lines = (tiny_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
  raw = [line.split("|")[1] for line in lines if line]
  cleaned = [text.clean_text(s) for s in raw]
  dictionary = arpabet.load_cmudict()
  mixed = [arpabet.words_to_arpabet(s, dictionary, p_arpabet=0.5, rng=i,
                                    word_boundaries="letters") for i, s in enumerate(cleaned)]
  assert sum(s.count("{") for s in mixed) > 50
  return raw + cleaned + mixed


def test_parity_with_text_to_ids(sentences):
  table = text.english_arpabet()
  tokenizer = text.GraphTokenizer(table)
  assert_same_as_python(tokenizer, sentences + EDGE_CASES, table)


def test_edge_cases_one_at_a_time():
  table = text.english_arpabet()
  tokenizer = text.GraphTokenizer(table)
  for case in EDGE_CASES:
    assert_same_as_python(tokenizer, [case], table)


def test_known_unknown_counts():
  tokenizer = text.GraphTokenizer(text.english_characters())
  ids, lengths, unknown = tokenizer(tf.constant(["ab", "a_b{HH}", "\x01"]))
  assert lengths.numpy().tolist() == [2, 2, 0]
  assert unknown.numpy().tolist() == [0, 2, 1]  # "_" and "@HH"; the control character
  assert ids.numpy()[1].tolist() == [38, 39]


@pytest.mark.parametrize("table", [
    text.english_characters(add_blank=True),
    SymbolTable(("_", "^", "$", "~", "a", "b", "@AA"), pad="_", bos="^", eos="$", blank="~"),
    SymbolTable(("_", "^", "a", "b"), pad="_", eos="^"),
])
def test_parity_with_bos_eos_blank(sentences, table):
  tokenizer = text.GraphTokenizer(table)
  assert_same_as_python(tokenizer, sentences[:8] + EDGE_CASES + ["ab {AA}", "ba"], table)


def test_empty_batch():
  ids, lengths, unknown = text.GraphTokenizer(text.english_arpabet())(tf.constant([], tf.string))
  assert ids.shape == (0, 0) and lengths.shape == (0,) and unknown.shape == (0,)


def test_no_python_ops_and_unknown_batch_size():
  tokenizer = text.GraphTokenizer(text.english_arpabet(add_blank=True))
  concrete = tokenizer.__call__.get_concrete_function()
  assert_no_python_ops(concrete)
  assert concrete.structured_input_signature[0][0].shape.as_list() == [None]

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def model_input(texts):
    ids, lengths, _ = tokenizer(texts)
    return tf.one_hot(ids, len(tokenizer.symbols)) * tf.sequence_mask(lengths, dtype=tf.float32)[..., None]

  traced = model_input.get_concrete_function()
  assert_no_python_ops(traced)
  assert model_input(tf.constant(["ab", "a"])).shape == (2, 5, 149)


def test_saved_model_round_trip(tmp_path, sentences):
  table = text.english_arpabet(add_blank=True)
  tokenizer = text.GraphTokenizer(table)
  texts = tf.constant(sentences[-5:] + EDGE_CASES, tf.string)
  expected = [t.numpy() for t in tokenizer(texts)]
  path = str(tmp_path / "tokenizer")
  tf.saved_model.save(tokenizer, path)
  del tokenizer

  loaded = tf.saved_model.load(path)
  got = [t.numpy() for t in loaded(texts)]
  for e, g in zip(expected, got):
    np.testing.assert_array_equal(e, g)
  assert SymbolTable.from_json(loaded.symbols_json.numpy().decode("utf-8")) == table
  restored = loaded.__call__.get_concrete_function(tf.TensorSpec([None], tf.string))
  assert_no_python_ops(restored)


def test_rejects_non_tables():
  with pytest.raises(TypeError, match="SymbolTable"):
    text.GraphTokenizer(["a", "b"])
