"""Tests of tfspeech.data.records: the TFRecord schema round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import testing
from tfspeech.data import records


def _example(rng, frames=7, n_mels=5, samples=300, tokens=4, **optional):
  return dict(
      id="utt-1", text="hello, world.", text_ids=rng.integers(0, 60, tokens),
      audio=rng.uniform(-1, 1, samples).astype(np.float32),
      mel=rng.normal(size=(frames, n_mels)).astype(np.float32), speaker=3, **optional)


def test_round_trip_all_features():
  rng = np.random.default_rng(0)
  values = _example(rng, pitch=rng.uniform(50, 300, 7), energy=rng.uniform(0, 1, 7),
                    durations=[1, 2, 3, 1])
  serialized = records.serialize_example(**values)
  parsed = records.parse_example(tf.constant(serialized), n_mels=5)
  assert set(parsed) == set(records.ALL_FEATURES)
  assert parsed["id"].numpy() == b"utt-1"
  assert parsed["text"].numpy().decode() == "hello, world."
  np.testing.assert_array_equal(parsed["text_ids"].numpy(), values["text_ids"])
  assert parsed["text_ids"].dtype == tf.int32
  # 16-bit PCM: within half a quantization step of the float input.
  np.testing.assert_allclose(parsed["audio"].numpy(), values["audio"], atol=0.5 / 32768 + 1e-9)
  np.testing.assert_array_equal(parsed["mel"].numpy(), values["mel"])
  np.testing.assert_allclose(parsed["pitch"].numpy(), values["pitch"], rtol=1e-6)
  np.testing.assert_allclose(parsed["energy"].numpy(), values["energy"], rtol=1e-6)
  np.testing.assert_array_equal(parsed["durations"].numpy(), [1, 2, 3, 1])
  assert [int(parsed[k]) for k in ("num_samples", "num_frames", "num_tokens", "speaker")] == [
      300, 7, 4, 3]


def test_int16_audio_is_stored_exactly():
  rng = np.random.default_rng(1)
  pcm = rng.integers(-32768, 32767, 50).astype(np.int16)
  serialized = records.serialize_example(**{**_example(rng), "audio": pcm})
  audio = records.parse_example(tf.constant(serialized), ["audio"])["audio"].numpy()
  np.testing.assert_array_equal(np.round(audio * 32768).astype(np.int16), pcm)


def test_quantize_clips_out_of_range():
  np.testing.assert_array_equal(records.quantize_pcm16([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0]),
                                [-32768, -32768, 0, 16384, 32767, 32767])


def test_absent_optional_features_parse_empty():
  serialized = records.serialize_example(**_example(np.random.default_rng(2)))
  parsed = records.parse_example(tf.constant(serialized), records.OPTIONAL_FEATURES)
  for name in records.OPTIONAL_FEATURES:
    assert parsed[name].shape == (0,), name


def test_graph_mode_static_ranks_and_no_python_ops():
  features = ("text_ids", "audio", "mel", "num_frames", "pitch", "id")
  parse = tf.function(lambda s: records.parse_example(s, features, n_mels=5),
                      input_signature=[tf.TensorSpec([], tf.string)])
  concrete = parse.get_concrete_function()
  testing.assert_no_python_ops(concrete)
  shapes = {k: v.shape.as_list() for k, v in concrete.structured_outputs.items()}
  assert shapes == {"text_ids": [None], "audio": [None], "mel": [None, 5], "num_frames": [],
                    "pitch": [None], "id": []}
  serialized = records.serialize_example(**_example(np.random.default_rng(3)))
  assert parse(tf.constant(serialized))["mel"].shape == (7, 5)


def test_bad_inputs_raise():
  rng = np.random.default_rng(4)
  with pytest.raises(ValueError, match="unknown record features"):
    records.parse_example(tf.constant(b""), ["mels"])
  with pytest.raises(ValueError, match="mel of 'utt-1'"):
    records.serialize_example(**{**_example(rng), "mel": np.zeros(5)})
  with pytest.raises(ValueError, match="pitch of 'utt-1' has 3 values"):
    records.serialize_example(**_example(rng, pitch=[1.0, 2.0, 3.0]))
  with pytest.raises(ValueError, match="durations"):
    records.serialize_example(**_example(rng, durations=[1]))
