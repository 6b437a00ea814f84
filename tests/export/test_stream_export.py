"""`mel_chunk_to_audio`: a streaming window → its chunk's audio, in TF, SavedModel, TFLite
(LiteRT, builtins only, inputs resized per window) and TFJS (Node); chunks concatenate to
whole-utterance audio. One chunk graph and one frozen SavedModel serve every runtime."""
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.export import export_lib, inference_graphs, tfjs, tflite
from tfspeech.inference import streaming

LENGTHS = (30, 17)
NAME = inference_graphs.MEL_CHUNK_TO_AUDIO


def _window(mels, plan):
  """The named inputs of one planned window."""
  return {"mel": mels[:, plan.window_start:plan.window_end],
          "mel_lengths": np.clip(np.array(LENGTHS, np.int32) - plan.window_start, 0,
                                 plan.window_end - plan.window_start).astype(np.int32),
          "context_before": np.int32(plan.before), "context_after": np.int32(plan.after)}


def _chunked(call, mels, context):
  """Every window of 2-frame-first, 7-frame chunks through `call(**inputs)`, concatenated."""
  pieces, lengths = [], 0
  for plan in streaming.plan_chunks(mels.shape[1], 7, context, first_chunk_frames=2):
    out = call(**_window(mels, plan))
    pieces.append(np.asarray(out["audio"]))
    lengths = lengths + np.asarray(out["audio_lengths"])
  return np.concatenate(pieces, axis=1), lengths


@pytest.fixture(scope="module")
def stream(vocoder_run, tmp_path_factory):
  """(graphs with the chunk graph, mels [2, 30, n_mels] (the second item padded), whole audio
  of the mels, its peak, a folder for the frozen SavedModel both converters read)."""
  _, vocoder = inference_graphs.serving_models(vocoder_run=vocoder_run)
  graphs = inference_graphs.build_graphs(vocoder=vocoder, stream=True)
  rng = np.random.default_rng(0)
  mels = rng.normal(-4.0, 2.0, size=[2, max(LENGTHS), vocoder.n_mels]).astype(np.float32)
  mels[1, LENGTHS[1]:] = vocoder.mel_pad_value
  whole = vocoder.vocode(tf.constant(mels), tf.constant(LENGTHS))
  expected = whole["audio"].numpy()
  peak = np.max(np.abs(expected))
  assert peak > 0 and np.std(expected) > 0.05 * peak
  return graphs, mels, whole, peak, str(tmp_path_factory.mktemp("stream_frozen"))


def test_mel_chunk_to_audio_exports(stream, vocoder_run, tmp_path, fast_graphs):
  graphs, mels, whole, peak, frozen = stream
  vocoder = graphs[NAME].vocoder
  assert list(graphs) == [inference_graphs.MEL_TO_AUDIO, NAME]
  assert NAME not in inference_graphs.build_graphs(vocoder=vocoder)  # Opt-in.
  graph = graphs[NAME]
  assert graph.context_frames == vocoder.receptive_field > 0
  assert [s.name for s in graph.function.input_signature] == [
      "mel", "mel_lengths", "context_before", "context_after"]

  def check(audio, lengths, tolerance):
    np.testing.assert_array_equal(lengths, whole["audio_lengths"].numpy())
    assert np.max(np.abs(audio - whole["audio"].numpy())) <= tolerance * peak

  check(*_chunked(lambda **x: graph.function(**x), mels, graph.context_frames), 1e-5)

  saved = str(tmp_path / "saved_model")
  tf.saved_model.save(graph, saved, signatures={NAME: graph.concrete_function()})
  loaded = tf.saved_model.load(saved).signatures[NAME]
  check(*_chunked(lambda **x: loaded(**{k: tf.constant(v) for k, v in x.items()}), mels,
                  graph.context_frames), 1e-5)

  paths = tflite.export_graphs({NAME: graph}, str(tmp_path / "tflite"), frozen_dir=frozen)
  runner = tflite.TFLiteGraph(paths[NAME])
  # Windows of several lengths through one interpreter: resized inputs, same audio.
  check(*_chunked(runner, mels, graph.context_frames), 1e-4)
  metadata = inference_graphs.export_metadata("tflite", {NAME: graph}, paths,
                                              vocoder_run=vocoder_run)
  assert metadata["vocoder"]["context_frames"] == graph.context_frames
  assert set(metadata["graphs"][NAME]["inputs"]) >= {"context_before", "context_after"}
  # Without the chunk graph, no context is claimed (a vocoder may not declare one).
  mel_to_audio = inference_graphs.MEL_TO_AUDIO
  plain = inference_graphs.export_metadata("tflite", {mel_to_audio: graphs[mel_to_audio]},
                                           {mel_to_audio: "unused"}, vocoder_run=vocoder_run)
  assert "context_frames" not in plain["vocoder"]


def test_mel_chunk_to_audio_tfjs(stream, tfjs_converter, node, tmp_path):
  """The converted chunk graph in Node (wasm when it loads) equals TF on one window with
  context both sides; the chunking itself is checked in TF above."""
  graphs, mels, _, peak, frozen = stream
  graph = graphs[NAME]
  folders = tfjs.export_graphs({NAME: graph}, str(tmp_path / "tfjs"), converter=tfjs_converter,
                               frozen_dir=frozen)
  plan = streaming.plan_chunks(mels.shape[1], 7, graph.context_frames, first_chunk_frames=2,
                               growth=1)[2]
  assert plan.before == plan.after == graph.context_frames  # Both cuts exercised.
  inputs = _window(mels, plan)
  expected = graph.function(**inputs)
  run = tfjs.run_graph_model(folders[NAME], inputs)
  np.testing.assert_array_equal(run.outputs["audio_lengths"], expected["audio_lengths"].numpy())
  assert run.outputs["audio"].shape == (2, 7 * graph.vocoder.hop_length)
  assert np.max(np.abs(run.outputs["audio"] - expected["audio"].numpy())) <= 1e-4 * peak


def test_stream_player_plans_as_python(node):
  """stream_player.js's planChunks is plan_chunks (growing x1.5 by default, fixed with growth
  1), or the browser's chunks would not concatenate to the audio; its start delay is 0 when a
  schedule keeps up and covers the shortfall when it does not."""
  cases = [(100, 32, 13, 8, None), (20, 4, 2, 1, None), (10, 4, 2, 1, 1), (37, 5, 3, 3, 3),
           (5, 8, 13, 16, None), (100, 32, 13, 16, 1.5), (50, 9, 2, 2, 1.3)]
  script = ("const p = require(process.argv[1]); console.log(JSON.stringify(" +
            json.dumps(cases) + ".map(([f, c, k, first, g]) => p.planChunks(f, c, k, first, " +
            "g === null ? undefined : g).map((q) => [q.start, q.end, q.windowStart, " +
            "q.windowEnd]))));")
  player = os.path.join(os.path.dirname(tfjs.__file__), "web", "stream_player.js")
  out = subprocess.run([node, "-e", script, player], check=True,
                       capture_output=True, text=True).stdout
  expected = [[[p.start, p.end, p.window_start, p.window_end]
               for p in streaming.plan_chunks(f, c, k, first, *([] if g is None else [g]))]
              for f, c, k, first, g in cases]
  assert json.loads(out) == expected
  # 16, 24, 32, ... with 13 context frames, 150 ms for the first (29-frame) window: the
  # 50-frame window after it takes 60 + 90 / 29 x 50 = 215 ms, 29 ms more than the 16 frames
  # before play, and later ones keep up; 8, 16, 32, ... at 90 ms for its 21-frame window by
  # 36 + 54 / 21 x 37 - 93 ms (the 8 frames' audio) at the second chunk.
  script = ("const p = require(process.argv[1]); console.log(JSON.stringify([" +
            "p.startDelayMs(p.planChunks(140, 32, 13, 16), 150, 256, 22050), " +
            "p.startDelayMs(p.planChunks(140, 32, 13, 8, 2), 90, 256, 22050), " +
            "p.startDelayMs(p.planChunks(140, 32, 13, 16), 600, 256, 22050)]));")
  out = subprocess.run([node, "-e", script, player], check=True, capture_output=True,
                       text=True).stdout
  fits, late, capped = json.loads(out)
  assert fits == pytest.approx(60 + 90 / 29 * 50 - 1000 * 16 * 256 / 22050)
  assert late == pytest.approx(36 + 54 / 21 * 37 - 1000 * 8 * 256 / 22050)
  # A slow first call (a busy machine) holds the audio back by at most the first chunk's.
  assert capped == pytest.approx(1000 * 16 * 256 / 22050)
  assert [q[1] - q[0] for q in expected[0]] == [8, 12, 18, 27, 32, 3]


def test_export_workdir_stream(vocoder_run, acoustic_run, run_saver, tmp_path):
  """`tfspeech-export --stream`'s path: the chunk graph beside mel_to_audio, with its context
  in metadata.json; refused without a vocoder."""
  workdir = run_saver(vocoder_run, str(tmp_path / "vocoder"))
  out = export_lib.export_workdir(workdir, "saved_model", str(tmp_path / "out"),
                                  stream=True)["saved_model"]
  with open(os.path.join(out, "metadata.json"), encoding="utf-8") as f:
    metadata = json.load(f)
  assert set(metadata["graphs"]) == {inference_graphs.MEL_TO_AUDIO, NAME}
  # HiFi-GAN's context is its receptive field.
  assert metadata["vocoder"]["context_frames"] == metadata["vocoder"]["receptive_field_frames"] > 0
  assert NAME in tf.saved_model.load(out).signatures
  with pytest.raises(ValueError, match="needs a vocoder"):
    inference_graphs.graphs_for_runs(acoustic_run, stream=True)
