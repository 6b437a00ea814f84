"""Streaming vocoding: concatenated chunks equal whole-utterance vocoding (HiFi-GAN V1/V2/V3
layouts, DiffWave), the generator API, the progressive WAV writer, `--stream`."""
import os
import struct

import numpy as np
import pytest
import scipy.io.wavfile
import tensorflow as tf

from tfspeech.inference import streaming, synthesize_lib, vocode_lib
from tfspeech.models import serving as serving_lib
from tfspeech.models.diffwave import diffwave_model, diffwave_presets
from tfspeech.models.diffwave.diffwave_serving import DiffWaveServing
from tfspeech.models.hifigan import HifiGanGenerator, hifigan_presets
from tfspeech.models.hifigan.hifigan_serving import HifiGanServing

# Two items, the second padded (its last 14 frames are padding of a made-up value).
LENGTHS = (37, 23)
# (chunk_frames, first_chunk_frames): 1-frame chunks; a 3-frame first chunk, then 5 each and a
# last one shorter (37 = 3 + 6 x 5 + 4).
CHUNKINGS = ((1, None), (5, 3))


def _randomize(variables, seed):
  """Random kernels (std 1 / sqrt(fan in): activations stay O(1), so float32 rounding stays
  < 1e-6 of the peak) and biases (std 0.1): far from any trained or initial function, so a
  missing frame of context shows (a zero-initialised kernel would hide it)."""
  rng = np.random.default_rng(seed)
  for variable in variables:
    shape = variable.shape
    scale = 0.1 if len(shape) == 1 else 1.0 / np.sqrt(np.prod(shape[:-1]))
    variable.assign(rng.normal(size=shape).astype(np.float32) * scale)


def _mels(n_mels, seed=0):
  rng = np.random.default_rng(seed)
  mels = rng.normal(-4.0, 2.0, size=[len(LENGTHS), max(LENGTHS), n_mels]).astype(np.float32)
  for row, length in enumerate(LENGTHS):
    mels[row, length:] = -7.5  # Padding, as whole-utterance vocoding would see it.
  return mels


def _hifigan(layout, channels):
  """A plain-kernel generator with a preset's kernel/dilation layout at `channels`."""
  config = hifigan_presets.get_preset(layout).replace(upsample_initial_channel=channels)
  generator = HifiGanGenerator(config, weight_norm=False)
  _randomize(generator.weights, seed=len(layout))
  return HifiGanServing(generator)


def _check_equal(chunks, whole_audio, whole_lengths, hop):
  audio, lengths = streaming.concatenate(chunks)
  np.testing.assert_array_equal(lengths, whole_lengths)
  assert audio.shape == (len(LENGTHS), max(LENGTHS) * hop)
  assert np.std(whole_audio) > 0.02  # Not a silent or constant network.
  peak = np.max(np.abs(whole_audio))
  error = np.max(np.abs(audio - whole_audio))
  assert error <= 1e-5 * peak, f"chunked audio differs by {error / peak:.2e} of the peak"


@pytest.fixture(scope="module")
def v3_vocoder():
  """V3's layout at a tiny width, shared: its chunk graph is traced once for the module."""
  return _hifigan("v3", 16)


# V2's layout (V1 is the same at 4x the width; the layout sets the receptive field) and V3's,
# both at a small width.
@pytest.mark.parametrize("layout,channels", [("v2", 32), ("v3", 16)])
def test_hifigan_chunks_equal_whole(layout, channels, v3_vocoder, fast_graphs):
  vocoder = v3_vocoder if layout == "v3" else _hifigan(layout, channels)
  mels = _mels(vocoder.n_mels)
  whole = vocoder.vocode(tf.constant(mels), tf.constant(LENGTHS))
  assert streaming.context_frames(vocoder) == vocoder.receptive_field > 0
  for chunk_frames, first in CHUNKINGS:
    chunks = list(streaming.stream_vocode(vocoder, mels, LENGTHS, chunk_frames=chunk_frames,
                                          first_chunk_frames=first))
    assert [c.end - c.start for c in chunks][:2] == [first or chunk_frames, chunk_frames]
    _check_equal(chunks, whole["audio"].numpy(), whole["audio_lengths"].numpy(),
                 vocoder.hop_length)
  if layout == "v3":
    # The test can fail: half the context gives different chunk edges (~5% of the peak).
    chunks = list(streaming.stream_vocode(vocoder, mels, LENGTHS, chunk_frames=4,
                                          context=vocoder.receptive_field // 2))
    audio, _ = streaming.concatenate(chunks)
    assert np.max(np.abs(audio - whole["audio"].numpy())) > 1e-2 * np.max(np.abs(audio))
    # One trace (None dims) served every window length and chunking.
    assert streaming.ChunkVocoder.get(vocoder).chunk.experimental_get_tracing_count() == 1


def test_diffwave_chunks_equal_whole(fast_graphs):
  """8 steps (a fast schedule with two more betas): more draws than the 6 noise channels, so
  draws 6 and 7 rotate within each item's whole length (`stream_noise` makes them once)."""
  betas = (1e-4, 1e-3, 5e-3, 1e-2, 0.03, 0.05, 0.2, 0.5)
  # 2 residual layers (tiny has 4): half the graph to trace, the same reach arithmetic.
  config = diffwave_presets.get_preset("tiny").replace(inference_noise_schedule=betas,
                                                       residual_layers=2)
  model = diffwave_model.build_model(config)
  _randomize(model.weights, seed=3)
  vocoder = DiffWaveServing(model)
  mels = _mels(vocoder.n_mels, seed=1)
  context = streaming.context_frames(vocoder, {"steps": 8})
  assert context == streaming.context_frames(vocoder, {"steps": 8})
  assert 0 < context < vocoder.receptive_field
  # Noise drawn from item seeds, as `vocode_lib.make_vocode_fn` draws it.
  seeds = tf.constant([[4, 0], [4, 1]], tf.int32)
  noise = vocode_lib.vocoder_noise(vocoder, seeds, max(LENGTHS))
  whole = vocoder.vocode(mels, tf.constant(LENGTHS), noise, steps=8)
  # 5-frame chunks after a 3-frame one (1-frame chunks: HiFi-GAN's test; here 8 steps each).
  chunks = list(streaming.stream_vocode(vocoder, mels, LENGTHS, chunk_frames=5,
                                        first_chunk_frames=3, item_seeds=seeds,
                                        controls={"steps": 8}))
  _check_equal(chunks, whole["audio"].numpy(), whole["audio_lengths"].numpy(),
               vocoder.hop_length)
  # Given noise, shorter than the utterance: repeated, as `vocode` repeats it.
  noise = tf.random.stateless_normal([2, 3000, 6], [1, 2])
  whole = vocoder.vocode(mels, tf.constant(LENGTHS), noise, steps=8)
  chunks = list(streaming.stream_vocode(vocoder, mels, LENGTHS, chunk_frames=9, noise=noise,
                                        controls={"steps": 8}))
  _check_equal(chunks, whole["audio"].numpy(), whole["audio_lengths"].numpy(),
               vocoder.hop_length)


def test_plan_and_bad_sizes():
  plans = streaming.plan_chunks(10, 4, 2, first_chunk_frames=1, growth=1)
  assert [(p.start, p.end, p.window_start, p.window_end) for p in plans] == [
      (0, 1, 0, 3), (1, 5, 0, 7), (5, 9, 3, 10), (9, 10, 7, 10)]
  # Each chunk grows (here doubles), capped at chunk_frames, so none outgrows the audio queued.
  plans = streaming.plan_chunks(20, 4, 2, first_chunk_frames=1, growth=2)
  assert [(p.start, p.end, p.window_start, p.window_end) for p in plans] == [
      (0, 1, 0, 3), (1, 3, 0, 5), (3, 7, 1, 9), (7, 11, 5, 13), (11, 15, 9, 17),
      (15, 19, 13, 20), (19, 20, 17, 20)]
  assert [p.end - p.start for p in streaming.plan_chunks(100, 32, 13, 8, growth=2)] == [
      8, 16, 32, 32, 12]
  # By default x1.5, rounded up: 16, 24, 32, ... (the browser demo's schedule).
  assert [p.end - p.start for p in streaming.plan_chunks(100, 32, 13, 16)] == [16, 24, 32, 28]
  with pytest.raises(ValueError, match="growth"):
    streaming.plan_chunks(10, 4, 2, growth=0)
  with pytest.raises(ValueError, match="chunk_frames"):
    streaming.plan_chunks(10, 0, 2)
  # A vocoder that does not declare its context cannot stream (no silent receptive_field).
  with pytest.raises(NotImplementedError, match="context_frames"):
    streaming.context_frames(serving_lib.Vocoder())


def test_streaming_wav_header_valid_after_each_chunk(tmp_path):
  path = str(tmp_path / "a.wav")
  rng = np.random.default_rng(0)
  parts = [rng.uniform(-1, 1, n).astype(np.float32) for n in (256, 1, 700)]
  with streaming.StreamingWavWriter(path, 22050) as writer:
    for count, part in enumerate(parts, 1):
      writer.write(part)
      rate, data = scipy.io.wavfile.read(path)  # Readable mid-stream, sizes consistent.
      assert rate == 22050 and data.shape[0] == sum(p.shape[0] for p in parts[:count])
      with open(path, "rb") as f:
        header = f.read(44)
      assert struct.unpack("<I", header[4:8])[0] == os.path.getsize(path) - 8
  expected = tf.audio.encode_wav(tf.constant(np.concatenate(parts))[:, None], 22050).numpy()
  with open(path, "rb") as f:
    assert f.read() == expected


def test_stream_texts_follow_synthesize_texts(tiny_grad_tts_run, v3_vocoder, tmp_path,
                                              fast_graphs):
  """Text chunks, seeds and pauses as `synthesize_texts` makes them (its mel file; Griffin-Lim
  at 1 iteration, so no vocoder run is needed), each text chunk's pieces its whole audio."""
  from tfspeech import inference  # pylint: disable=import-outside-toplevel
  # max_tokens splits the text in two: its pieces include the pause between them.
  texts = ["Hello there. How are you?"]
  result = inference.synthesize_texts(tiny_grad_tts_run, texts, seed=3, out_dir=str(tmp_path),
                                      max_tokens=40, griffin_lim_iters=1)
  assert not result.failures and result.items[0].num_chunks == 2
  mel = np.load(result.items[0].mel_path)  # Text chunks joined by pause frames.
  vocoder = vocode_lib.Vocoder.for_serving(v3_vocoder)
  pieces = list(inference.stream_texts(tiny_grad_tts_run, texts, vocoder, seed=3,
                                       max_tokens=40, chunk_frames=6, first_chunk_frames=2,
                                       warm_up=False))
  hop = v3_vocoder.hop_length
  assert {p.index for p in pieces} == {0} and pieces[0].audio.shape == (2 * hop,)
  rate = synthesize_lib.run_facts(tiny_grad_tts_run).sample_rate
  pause = int(round(synthesize_lib.DEFAULT_CHUNK_PAUSE * rate / hop))
  segments, start = [[]], 0
  for piece in pieces:
    if piece.audio.shape == (pause * hop,) and not np.any(piece.audio):
      segments.append([])
    else:
      segments[-1].append(piece.audio)
  assert len(segments) == 2 and all(len(s) > 1 for s in segments)  # Streamed in pieces.
  for segment in segments:
    audio = np.concatenate(segment)
    frames = audio.shape[0] // hop
    whole = v3_vocoder.vocode(tf.constant(mel[None, start:start + frames]),
                              tf.constant([frames]))["audio"].numpy()[0]
    assert np.std(whole) > 0.02  # Not silence.
    np.testing.assert_allclose(audio, whole, atol=1e-5 * np.max(np.abs(whole)))
    start += frames + pause
  assert start - pause == mel.shape[0]
