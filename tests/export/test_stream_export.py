"""`mel_chunk_to_audio`: a streaming window → its chunk's audio, in TF, SavedModel, TFLite
(LiteRT, builtins only, inputs resized per window), TFJS (Node) and the browser demo's
streaming player (export/web/stream_player.js in headless Chromium); chunks concatenate to
whole-utterance audio. One chunk graph and one frozen SavedModel serve every runtime."""
import json
import math
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import text as text_lib
from tfspeech.export import export_lib, inference_graphs, tfjs, tflite
from tfspeech.inference import streaming, synthesize_lib

LENGTHS = (30, 17)
NAME = inference_graphs.MEL_CHUNK_TO_AUDIO
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# TFJS (the page's wasm or cpu backend) against TF: error / the reference's peak.
FLOAT32_RTOL = 1e-4
# The page's chunked audio against TF's whole-utterance audio of the page's own mel (the
# vocoder's float error only): tight, as too little context changes the audio by ~1e-4.
STREAM_RTOL = 1e-5


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


@pytest.fixture(scope="module")
def tfjs_stream(stream, fastpitch_run, vocoder_run, tfjs_converter, tmp_path_factory):
  """(folder, graphs) of a TFJS streaming export: text_to_mel + mel_chunk_to_audio, the graphs
  the demo streams with (`tfspeech-export --stream` writes mel_to_audio and text_to_audio
  too), and metadata.json. The chunk graph's frozen SavedModel is `stream`'s."""
  graphs = inference_graphs.graphs_for_runs(
      fastpitch_run, vocoder_run, names=[inference_graphs.TEXT_TO_MEL, NAME], stream=True)
  out = str(tmp_path_factory.mktemp("stream_tfjs") / "export")
  tfjs.export_graphs(graphs, out, converter=tfjs_converter, frozen_dir=stream[-1])
  metadata = inference_graphs.export_metadata(
      "tfjs", graphs, {name: f"{name}/model.json" for name in graphs}, fastpitch_run,
      vocoder_run)
  inference_graphs.write_metadata(metadata, out)
  return out, graphs


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


def test_mel_chunk_to_audio_tfjs(stream, tfjs_stream, node):
  """The converted chunk graph in Node (wasm when it loads) equals TF on one window with
  context both sides; the chunking itself is checked in TF above and in the browser below."""
  del node
  graphs, mels, _, peak, _ = stream
  graph = graphs[NAME]
  folder = os.path.join(tfjs_stream[0], NAME)
  plan = streaming.plan_chunks(mels.shape[1], 7, graph.context_frames, first_chunk_frames=2,
                               growth=1)[2]
  assert plan.before == plan.after == graph.context_frames  # Both cuts exercised.
  inputs = _window(mels, plan)
  expected = graph.function(**inputs)
  run = tfjs.run_graph_model(folder, inputs)
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


def test_streaming_page_plays_the_whole_audio_chunk_by_chunk(stream, tfjs_stream, node,
                                                             fastpitch_run, tmp_path):
  """The browser demo on a streaming export (FastPitch + HiFi-GAN) in headless Chromium
  (default backend and chunk schedule): it streams (several chunks, first audio reported),
  its durations and mel are TF text_to_mel's for the page's ids, and the audio it assembled
  from the chunks (float, before the WAV's 16 bits) is the whole-utterance mel_to_audio of
  that mel within STREAM_RTOL of its peak (measured 4e-7 on wasm): a chunk cut at the wrong
  place fails the length check, one vocoded with 2 context frames too few is off by 1.3e-4
  (HiFi-GAN's receptive field is a conservative bound: its edge frames weigh little)."""
  if not os.path.isfile(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install chromium); skipping the browser "
                "streaming test")
  out_dir, graphs = tfjs_stream
  text = "Hello world, this is a test."
  arrays_dir = str(tmp_path / "page")
  command = [node, os.path.join(tfjs.EXPORT_DIR, "js", "check_web_demo.js"),
             f"--model={out_dir}", f"--text={text}", f"--chromium={CHROMIUM}",
             f"--out={arrays_dir}", "--timeout_s=100"]
  result = subprocess.run(command, capture_output=True, text=True, check=False,
                          cwd=tfjs.EXPORT_DIR, timeout=150)
  assert result.returncode == 0, result.stderr[-3000:]
  outcome = json.loads(result.stdout.strip().splitlines()[-1])
  assert outcome["problems"] == [] and outcome["error"] is None, outcome
  page = outcome["result"]
  _, arrays = tfjs.read_runner_outputs(arrays_dir)
  with open(os.path.join(out_dir, "metadata.json"), encoding="utf-8") as f:
    metadata = json.load(f)
  hop, rate = metadata["hop_length"], metadata["sample_rate"]
  context = metadata["vocoder"]["context_frames"]
  frames = page["melFrames"]
  front_end = synthesize_lib.text_front_end(fastpitch_run)
  assert page["ids"] == front_end.encode(text) == arrays["text_ids"][0].tolist()

  # It streamed: stream_player.js's default schedule (plan_chunks, 16 frames growing to 32).
  plans = streaming.plan_chunks(frames, 32, context, first_chunk_frames=16, growth=1.5)
  assert len(plans) >= 3 and page["chunks"] == len(plans)
  assert page["chunkFrames"] == [p.end - p.start for p in plans]
  assert len(page["chunkMs"]) == len(plans) and all(ms > 0 for ms in page["chunkMs"])
  assert 0 < page["melMs"] < page["firstAudioMs"] < 1000 * page["seconds"]
  # The page rounds with JavaScript's Math.round (half up), Python's round() halves to even.
  assert outcome["stream"].startswith(
      f"Streaming: first audio after {math.floor(page['firstAudioMs'] + 0.5)} ms")
  assert f"{len(plans)} chunks, {context} context frames each side" in outcome["stream"]
  assert page["played"]

  # text_to_mel as TF computes it from the page's inputs (its noise, for a model that takes
  # noise) and its controls (the recommended values).
  inputs = {"text_ids": arrays["text_ids"],
            "text_lengths": np.array([arrays["text_ids"].shape[1]], np.int32)}
  if metadata["noise"]:
    inputs["noise"] = arrays["noise"]
  for name, control in metadata["controls"].items():
    if not control.get("static"):
      inputs[name] = np.array(control["recommended"], control["dtype"])
  expected = {k: v.numpy() for k, v in
              graphs[inference_graphs.TEXT_TO_MEL].function(**inputs).items()}
  assert int(expected["mel_lengths"][0]) == frames
  assert page["durations"] == expected["durations"][0].tolist()
  mel = arrays["mel"]
  assert mel.shape == (1, frames, metadata["n_mels"])
  reference_mel = expected["mel"][:, :frames]
  assert np.max(np.abs(mel - reference_mel)) <= FLOAT32_RTOL * np.max(np.abs(reference_mel))

  # The chunks, concatenated, are the whole utterance's audio from the page's mel.
  whole = stream[0][inference_graphs.MEL_TO_AUDIO].function(
      mel=mel, mel_lengths=np.array([frames], np.int32))
  reference_audio = whole["audio"].numpy()
  peak = np.max(np.abs(reference_audio))
  audio = arrays["audio"]
  assert audio.shape == reference_audio.shape == (1, frames * hop) and peak > 0
  error = np.max(np.abs(audio - reference_audio))
  assert error <= STREAM_RTOL * peak, f"chunked audio off by {error / peak:.1e} of its peak"
  wav = outcome["wav"]
  assert wav["valid"] and wav["samples"] == frames * hop and wav["sampleRate"] == rate
  assert wav["peak"] == pytest.approx(min(float(np.max(np.abs(audio))), 1.0), abs=1e-4)

  # Word highlighting from the durations, as the Python mapping times them.
  alignment = front_end.alignment(text, page["ids"])
  stamps = text_lib.durations_to_timestamps([alignment], [page["durations"]], hop, rate)
  assert [w["word"] for w in page["words"]] == ["Hello", "world", "this", "is", "a", "test"]
  for js, py in zip(page["words"], stamps.words, strict=True):
    assert (js["word"], js["char_start"], js["char_end"]) == (py.word, py.char_start,
                                                              py.char_end)
    assert (js["start"], js["end"]) == (pytest.approx(py.start), pytest.approx(py.end))
  assert page["wordSpans"] == 6
  assert page["highlighted"] == [i if w.end > w.start else -1 for i, w in enumerate(stamps.words)]
  print(f"browser streaming ({page['backend']}): first audio after "
        f"{page['firstAudioMs']:.0f} ms (text_to_mel {page['melMs']:.0f} ms), {len(plans)} "
        f"chunks {page['chunkFrames']}, chunk ms {[round(ms) for ms in page['chunkMs']]}, "
        f"underruns {page['underruns']}, audio error {error / peak:.1e} of peak")


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
