"""DC-TTS config, layers, losses and decoding: per-item end, forcibly incremental attention,
item alone == item in batch, graph purity, TFLite builtins."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspeech.models import registry
from tfspeech.models import dctts
from tfspeech.models.dctts import DCTTSConfig, DCTTSServing, SSRN, Text2Mel
from tfspeech.models.dctts import losses
from tfspeech.testing import assert_no_python_ops

TEXTS = [[5, 9, 12], [17, 4, 40, 8, 8, 25, 60], [8, 25, 60, 33, 21, 3, 9, 30, 7, 44, 12]]
STEPS = 40


def _batch(texts):
  lengths = [len(t) for t in texts]
  ids = np.zeros([len(texts), max(lengths)], np.int32)
  for row, text in enumerate(texts):
    ids[row, :len(text)] = text
  return tf.constant(ids), tf.constant(lengths, tf.int32)


def _count(model):
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.fixture(scope="module")
def served():
  keras.utils.set_random_seed(3)
  config = dctts.tiny()
  serving = DCTTSServing(Text2Mel(config), SSRN(config))
  spec = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32),
          tf.TensorSpec([], tf.int32)]

  def synthesize(ids, lengths, steps):
    return serving.synthesize(ids, lengths, max_decoder_steps=steps)
  concrete = tf.function(synthesize, input_signature=spec).get_concrete_function()
  run = lambda ids, lengths, steps=STEPS: concrete(ids, lengths, tf.constant(steps, tf.int32))
  return serving, concrete, run


def test_registered_presets_and_config_checks():
  cls = registry.get("dctts")
  assert cls is dctts.DCTTSTask and cls.serving_role == "acoustic"
  assert set(cls.presets) == {"tiny", "ljspeech"}
  paper = dctts.ljspeech()
  assert (paper.embedding_dim, paper.d, paper.c, paper.reduction, paper.n_mels,
          paper.n_linear, paper.dropout, paper.guided_attention_g) == (
              128, 256, 512, 4, 80, 513, 0.05, 0.2)
  assert (paper.hop, paper.fft_size) == (256, 1024)
  # Derived frame sizes follow the sample rate (same durations as at 22050 Hz).
  assert (DCTTSConfig(sample_rate=16000).hop, DCTTSConfig(sample_rate=16000).fft_size) == (
      186, 1024)
  assert (DCTTSConfig(sample_rate=44100).hop, DCTTSConfig(sample_rate=44100).n_linear) == (
      512, 1025)
  assert dctts.tiny(alpha=0.5).d == 8
  for changes, message in (({"reduction": 3}, "reduction: SSRN upsamples"),
                           ({"stage": "vocoder"}, "stage: got 'vocoder'"),
                           ({"conv_type": "grouped", "conv_groups": 3}, "conv_groups"),
                           ({"sample_rate": 4000}, "sample_rate"),
                           ({"norm": "group"}, "norm"),
                           ({"attention_window": 1}, "never lets the attention advance"),
                           ({"n_fft": 128, "hop_length": 256}, "hop_length")):
    with pytest.raises(ValueError, match=message):
      dctts.tiny(**changes)
  with pytest.raises(ValueError, match="unknown DC-TTS preset"):
    dctts.preset("paper")


def test_conv_options_change_size_and_keep_shapes():
  ids, lengths = _batch(TEXTS[:2])
  mel = tf.random.stateless_uniform([2, 9, 80], [0, 1])
  counts = {}
  for name, changes in (("plain", {}), ("separable", {"conv_type": "separable"}),
                        ("grouped", {"conv_type": "grouped", "conv_groups": 4}),
                        ("thin", {"alpha": 0.5}), ("batch", {"norm": "batch"}),
                        ("none", {"norm": "none"})):
    config = dctts.tiny(**changes)
    text2mel, ssrn = Text2Mel(config), SSRN(config)
    out = text2mel.teacher_forced(ids, lengths, mel, training=True, seed=[1, 2])
    assert out["mel"].shape == (2, 9, 80) and out["alignments"].shape == (2, 9, 7)
    np.testing.assert_allclose(tf.reduce_sum(out["alignments"], -1), 1.0, atol=1e-5)
    assert np.all(out["alignments"].numpy()[0, :, 3:] == 0)  # Padding is never attended.
    assert ssrn(mel, tf.constant([9, 5])).shape == (2, 36, 513)
    counts[name] = _count(text2mel)
  assert counts["separable"] < counts["plain"] and counts["grouped"] < counts["plain"]
  assert counts["thin"] < counts["plain"] / 3


def test_audio_side_is_causal_and_chunks_shift_the_input():
  config = dctts.tiny(chunk_size=2)
  text2mel = Text2Mel(config)
  ids, lengths = _batch(TEXTS[:1])
  mel = tf.random.stateless_uniform([1, 12, 80], [0, 2])
  changed = tf.concat([mel[:, :7], 1.0 - mel[:, 7:]], axis=1)
  first = text2mel.teacher_forced(ids, lengths, mel)["logits"].numpy()
  second = text2mel.teacher_forced(ids, lengths, changed)["logits"].numpy()
  # Frame t reads frames <= t - chunk_size: frames up to 8 ignore a change from frame 7 on.
  np.testing.assert_allclose(first[:, :9], second[:, :9], atol=1e-6)
  assert not np.allclose(first[:, 9], second[:, 9])


def test_guided_attention_loss_prefers_the_diagonal_and_ignores_padding():
  weights = losses.guided_attention_weights(tf.constant([4]), tf.constant([8]), 4, 8, 0.2)
  diagonal = np.zeros([1, 8, 4], np.float32)
  diagonal[0, np.arange(8), np.arange(8) // 2] = 1.0
  assert float(tf.reduce_mean(tf.reduce_sum(weights * diagonal, -1))) < 0.1
  uniform = np.full([1, 8, 4], 0.25, np.float32)
  for_diagonal = losses.guided_attention_loss(tf.constant(diagonal), [4], [8], 0.2)
  for_uniform = losses.guided_attention_loss(tf.constant(uniform), [4], [8], 0.2)
  assert float(for_diagonal) < 0.3 * float(for_uniform)
  assert float(losses.diagonality(tf.constant(diagonal), [4], [8])) > 0.9
  assert float(losses.diagonality(tf.constant(uniform), [4], [8])) < 0.5
  # Padded frames and tokens count in neither numerator nor denominator.
  padded = np.pad(diagonal, [[0, 0], [0, 3], [0, 2]], constant_values=1.0)
  np.testing.assert_allclose(losses.guided_attention_loss(tf.constant(padded), [4], [8], 0.2),
                             for_diagonal, rtol=1e-6)
  l1, divergence = losses.spectral_losses(tf.zeros([1, 3, 2]), tf.fill([1, 3, 2], 0.5),
                                          tf.ones([1, 3, 1]))
  np.testing.assert_allclose([l1, divergence], [0.0, np.log(2.0)], rtol=1e-6)


def test_decoding_ends_per_item_and_keeps_the_attention_incremental(served):
  serving, _, run = served
  config = serving.config
  ids, lengths = _batch(TEXTS)
  out = run(ids, lengths)
  coarse_lengths = out["mel_lengths"].numpy() // config.reduction
  positions = np.argmax(out["alignments"].numpy(), axis=-1)
  assert len(set(coarse_lengths)) == 3 and coarse_lengths.max() < STEPS, coarse_lengths
  assert out["mel"].shape[1] == coarse_lengths.max() * config.reduction
  for row, text in enumerate(TEXTS):
    length, path = coarse_lengths[row], positions[row, :coarse_lengths[row]]
    # Forcibly incremental: starts within the first window, then stays or moves forward by
    # less than the window, never past the text.
    steps = np.diff(np.concatenate([[0], path]))
    assert np.all(steps >= 0) and np.all(steps < config.attention_window), path
    assert path.max() == len(text) - 1
    # The item ended at the frame where end_frames frames had attended its last token.
    at_end = np.cumsum(path == len(text) - 1)
    assert at_end[-1] == config.end_frames and np.all(at_end[:-1] < config.end_frames)
    mel = out["mel"].numpy()[row]
    assert np.all(mel[length * config.reduction:] == 0)
    assert np.all(np.isfinite(mel)) and np.all(np.abs(mel[:length * config.reduction]).sum(-1) > 0)
    assert np.all(out["magnitudes"].numpy()[row, length * config.reduction:] == 0)
    durations = out["durations"].numpy()[row]
    assert durations.sum() == length * config.reduction and np.all(durations[len(text):] == 0)
  # The step guard: nobody reaches the end in 3 steps, every item gets 3 chunks.
  short = run(ids, lengths, 3)
  np.testing.assert_array_equal(short["mel_lengths"], [3 * config.reduction] * 3)


def test_an_item_alone_equals_the_same_item_in_a_batch(served):
  _, _, run = served
  ids, lengths = _batch(TEXTS)
  together = run(ids, lengths)
  for row, text in enumerate(TEXTS):
    alone = run(*_batch([text]))
    length = int(alone["mel_lengths"][0])
    assert length == int(together["mel_lengths"][row])
    np.testing.assert_allclose(alone["mel"][0], together["mel"][row, :length], atol=1e-4)
    np.testing.assert_allclose(alone["alignments"][0],
                               together["alignments"][row, :length // 4, :len(text)], atol=1e-5)
    np.testing.assert_array_equal(alone["durations"][0], together["durations"][row, :len(text)])


def test_decoding_graph_is_pure(served):
  # Its export (SavedModel, TFLite builtins with one WHILE, TFJS) is tested in
  # tests/export/test_looped_export.py.
  _, concrete, _ = served
  assert_no_python_ops(concrete)
