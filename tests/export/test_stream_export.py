"""`mel_chunk_to_audio`: a streaming window → its chunk's audio, in TF, SavedModel and TFLite
(LiteRT, builtins only, inputs resized per window); chunks concatenate to whole-utterance
audio."""
import numpy as np
import tensorflow as tf

from tfspeech.export import inference_graphs, tflite
from tfspeech.inference import streaming

LENGTHS = (30, 17)
NAME = inference_graphs.MEL_CHUNK_TO_AUDIO


def _chunked(call, mels, context):
  """Every window of 2-frame-first, 7-frame chunks through `call(**inputs)`, concatenated."""
  pieces, lengths = [], 0
  for plan in streaming.plan_chunks(mels.shape[1], 7, context, first_chunk_frames=2):
    out = call(mel=mels[:, plan.window_start:plan.window_end],
               mel_lengths=np.clip(np.array(LENGTHS, np.int32) - plan.window_start, 0,
                                   plan.window_end - plan.window_start).astype(np.int32),
               context_before=np.int32(plan.before), context_after=np.int32(plan.after))
    pieces.append(np.asarray(out["audio"]))
    lengths = lengths + np.asarray(out["audio_lengths"])
  return np.concatenate(pieces, axis=1), lengths


def test_mel_chunk_to_audio_exports(vocoder_run, tmp_path, fast_graphs):
  _, vocoder = inference_graphs.serving_models(vocoder_run=vocoder_run)
  graphs = inference_graphs.build_graphs(vocoder=vocoder, stream=True)
  assert list(graphs) == [inference_graphs.MEL_TO_AUDIO, NAME]
  assert NAME not in inference_graphs.build_graphs(vocoder=vocoder)  # Opt-in.
  graph = graphs[NAME]
  assert graph.context_frames == vocoder.receptive_field > 0
  assert [s.name for s in graph.function.input_signature] == [
      "mel", "mel_lengths", "context_before", "context_after"]
  rng = np.random.default_rng(0)
  mels = rng.normal(-4.0, 2.0, size=[2, max(LENGTHS), vocoder.n_mels]).astype(np.float32)
  mels[1, LENGTHS[1]:] = vocoder.mel_pad_value
  whole = vocoder.vocode(tf.constant(mels), tf.constant(LENGTHS))
  expected = whole["audio"].numpy()
  peak = np.max(np.abs(expected))
  assert peak > 0 and np.std(expected) > 0.05 * peak

  def check(audio, lengths, tolerance):
    np.testing.assert_array_equal(lengths, whole["audio_lengths"].numpy())
    assert np.max(np.abs(audio - expected)) <= tolerance * peak

  check(*_chunked(lambda **x: graph.function(**x), mels, graph.context_frames), 1e-5)

  saved = str(tmp_path / "saved_model")
  tf.saved_model.save(graph, saved, signatures={NAME: graph.concrete_function()})
  loaded = tf.saved_model.load(saved).signatures[NAME]
  check(*_chunked(lambda **x: loaded(**{k: tf.constant(v) for k, v in x.items()}), mels,
                  graph.context_frames), 1e-5)

  paths = tflite.export_graphs({NAME: graph}, str(tmp_path / "tflite"))
  runner = tflite.TFLiteGraph(paths[NAME])
  # Windows of several lengths through one interpreter: resized inputs, same audio.
  check(*_chunked(runner, mels, graph.context_frames), 1e-4)
  metadata = inference_graphs.export_metadata("tflite", {NAME: graph}, paths,
                                              vocoder_run=vocoder_run)
  assert metadata["vocoder"]["context_frames"] == graph.context_frames
  assert set(metadata["graphs"][NAME]["inputs"]) >= {"context_before", "context_after"}
