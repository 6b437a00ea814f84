"""LiteRT.js (@litertjs/core, LiteRT in WebAssembly) running tfspeech's TFLite graphs in Node
(export/js/run_tflite.js) and in headless Chromium (export/web/litert_runtime.js, driven by
export/js/check_web_demo.js --litert_model).

Both load LiteRT.js 2.5.3 from export/node_modules. That version runs only
graphs whose inputs and outputs all have static shapes: it cannot resize an input, and an
output whose size depends on the data (Grad-TTS's mel after its durations) crashes it. A
tensor of data-dependent size INSIDE the graph it runs, so `tfspeech-export --fixed_shapes`
pads and cuts at the graph's edges: the tiny Grad-TTS + HiFi-GAN text_to_audio (randomized
weights, the conftest's runs) exported so must match TF in Node and in Chromium; the
dynamic-shape file of a plain export must be refused with a message saying why, not crash.
Skips without node/npm (and Chromium for the browser case).
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.export import export_lib, inference_graphs, tflite, tfjs

RUNNER = os.path.join(tfjs.EXPORT_DIR, "js", "run_tflite.js")
CHECK_JS = os.path.join(tfjs.EXPORT_DIR, "js", "check_web_demo.js")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKENS = 16
# One diffusion step: the shapes are what this file tests, and freezing + converting the
# pair takes ~35 s with it against ~55 s with the suite's two.
N_TIMESTEPS = 1
FRAMES = 48
# float32 LiteRT.js (XNNPACK in wasm) vs TF: max |error| <= this * max |reference|; measured
# 5e-7 on the tiny vocoder (the float32 TFLite bound of test_tflite.py is 1e-4).
FLOAT32_RTOL = 1e-5


def run_litertjs(node, model_path, inputs, scratch, succeeds=True, browser_flags=None):
  """Runs run_tflite.js (or check_web_demo.js --litert_model with `browser_flags`, a list);
  returns (outputs.json, {name: array}), or its stderr when it fails."""
  inputs_json = tfjs.write_runner_inputs(inputs, scratch)
  out = os.path.join(scratch, "out")
  command = ([node, RUNNER, f"--model={model_path}"] if browser_flags is None
             else [node, CHECK_JS, f"--litert_model={model_path}", *browser_flags])
  result = subprocess.run(command + [f"--inputs={inputs_json}", f"--out={out}", "--repeat=2"],
                          capture_output=True, text=True, check=False, timeout=150,
                          cwd=tfjs.EXPORT_DIR)
  assert result.returncode == (0 if succeeds else 1), result.stderr[-3000:]
  if not succeeds:
    return result.stderr
  return tfjs.read_runner_outputs(out)


@pytest.fixture(scope="module")
def fixed_pair(acoustic_run, vocoder_run, tmp_path_factory):
  """The tiny Grad-TTS + HiFi-GAN text_to_audio exported with fixed_shapes (tokens=TOKENS,
  frames=FRAMES): (its .tflite, metadata.json, inputs of one utterance padded, TF's outputs
  of the same fixed-shape graph)."""
  sizes = {"tokens": TOKENS, "frames": FRAMES}
  # export_run's steps, with the graph kept: TF's reference reuses its trace.
  graph = inference_graphs.fix_shapes(inference_graphs.graphs_for_runs(
      acoustic_run, vocoder_run, {"n_timesteps": N_TIMESTEPS}, ["text_to_audio"]),
                                      TOKENS, FRAMES)["text_to_audio"]
  paths = tflite.export_built_graphs({"text_to_audio": graph},
                                     str(tmp_path_factory.mktemp("litertjs") / "fixed"),
                                     acoustic_run, vocoder_run)
  with open(paths["metadata"], encoding="utf-8") as f:
    metadata = json.load(f)
  rng = np.random.default_rng(5)
  inputs = tflite.fixed_shape_inputs(
      sizes, text_ids=rng.integers(1, 60, (1, 9)).astype(np.int32),
      text_lengths=np.array([9], np.int32),
      noise=rng.normal(size=(1, FRAMES - 10, 80)).astype(np.float32),
      temperature=np.float32(1.0), length_scale=np.float32(1.0))
  reference = {k: v.numpy() for k, v in graph.function(**inputs).items()}
  return paths["text_to_audio"], metadata, inputs, reference, graph


def test_fixed_shape_export_is_static_and_recorded(fixed_pair):
  """Every input and output static at batch 1 (metadata.json and the .tflite agree); the
  padded utterance keeps its length; a longer one is cut at FRAMES and flagged."""
  path, metadata, inputs, reference, graph = fixed_pair
  assert metadata["fixed_shapes"] == {"batch": 1, "tokens": TOKENS, "frames": FRAMES}
  described = metadata["graphs"]["text_to_audio"]
  assert described["inputs"]["text_ids"]["shape"] == [1, TOKENS]
  assert described["inputs"]["noise"]["shape"] == [1, FRAMES, 80]
  assert described["outputs"]["audio"]["shape"] == [1, FRAMES * 256]
  assert described["outputs"]["clipped"]["shape"] == [1]
  interpreter = tf.lite.Interpreter(model_path=path)
  for detail in interpreter.get_input_details() + interpreter.get_output_details():
    assert list(detail["shape_signature"]) == list(detail["shape"]), detail
  length = int(reference["mel_lengths"][0])
  assert 9 < length < FRAMES and reference["clipped"][0] == 0
  assert reference["audio_lengths"][0] == length * 256
  assert not np.any(reference["mel"][0, length:])
  assert not np.any(reference["audio"][0, length * 256:])
  # Slower speech needs more than FRAMES frames: cut, flagged, and a clear error in Python.
  long = {k: v.numpy() for k, v in graph.function(**dict(inputs, length_scale=np.float32(
      3.0 * FRAMES / length))).items()}
  assert long["clipped"][0] == 1 and long["mel_lengths"][0] == FRAMES
  assert long["audio_lengths"][0] == FRAMES * 256 and long["audio"].shape == (1, FRAMES * 256)
  with pytest.raises(ValueError, match=f"more than frames={FRAMES}"):
    tflite.check_not_clipped(long, metadata["fixed_shapes"])
  tflite.check_not_clipped(reference, metadata["fixed_shapes"])
  with pytest.raises(ValueError, match=f"at most tokens={TOKENS}"):
    tflite.fixed_shape_inputs(metadata["fixed_shapes"],
                              text_ids=np.ones((1, TOKENS + 1), np.int32))


@pytest.mark.parametrize("value", ["tokens=16", "tokens=16,frames=0", "frames=8,tokens=x",
                                   "tokens=16,frames=48,batch=2", "16,48"])
def test_bad_fixed_shapes_are_refused(value, tmp_path):
  with pytest.raises(ValueError, match="--fixed_shapes: give tokens=T,frames=F"):
    export_lib.check_options("tflite", str(tmp_path / "out"), fixed_shapes=value)


def test_fixed_shapes_only_for_tflite(tmp_path):
  assert export_lib.check_options("tflite", str(tmp_path), fixed_shapes="tokens=4,frames=8") \
      == {"tokens": 4, "frames": 8}
  with pytest.raises(ValueError, match="--fixed_shapes applies to --format=tflite"):
    export_lib.check_options("tfjs", str(tmp_path), fixed_shapes="tokens=4,frames=8")


def check_pair(description, out, reference):
  """LiteRT.js's outputs equal TF's: lengths and durations exactly, mel and audio within
  FLOAT32_RTOL of their peaks."""
  assert len(description["seconds_per_call"]) == 2
  for name in ("mel_lengths", "durations", "audio_lengths", "clipped"):
    np.testing.assert_array_equal(out[name], reference[name], err_msg=name)
  for name in ("mel", "audio"):
    assert out[name].shape == reference[name].shape, name
    peak = np.max(np.abs(reference[name]))
    assert peak > 1e-3  # audible / non-silent: a meaningful comparison
    relative = np.max(np.abs(out[name] - reference[name])) / peak
    print(f"LiteRT.js ({description['runtime']}, {description['wasm']}) vs TF: {name} max "
          f"relative error {relative:.1e}; {description['seconds_per_call']} s per call")
    assert relative <= FLOAT32_RTOL, (name, relative)


def test_fixed_shape_pair_matches_tf_in_node(fixed_pair, node, tmp_path):
  """Grad-TTS's mel length stays data-dependent inside the graph; LiteRT.js runs it once
  the graph's inputs and outputs are static."""
  path, _, inputs, reference, _ = fixed_pair
  description, out = run_litertjs(node, path, inputs, str(tmp_path))
  assert description["runtime"] == "litertjs" and description["litertjs_version"] == "2.5.3"
  # Node 20's V8 has no relaxed SIMD: LiteRT.js loads its compat build.
  assert description["wasm"].startswith("litert_wasm")
  check_pair(description, out, reference)


@pytest.mark.skipif(not os.path.isfile(CHROMIUM), reason="Chromium is not installed")
def test_fixed_shape_pair_matches_tf_in_chromium(fixed_pair, node, tmp_path):
  """The browser path: served by serve_demo.js (cross-origin isolated), LiteRT.js picks its
  relaxed-SIMD build, here the threaded one (--threads)."""
  path, _, inputs, reference, _ = fixed_pair
  description, out = run_litertjs(node, path, inputs, str(tmp_path),
                                  browser_flags=[f"--chromium={CHROMIUM}", "--threads"])
  assert description["runtime"] == "litertjs-browser"
  assert description["crossOriginIsolated"] is True
  assert description["wasm"] == "litert_wasm_threaded_internal" and description["threads"]
  check_pair(description, out, reference)


class _DynamicMelToAudio(inference_graphs.InferenceGraph):
  """A stand-in mel_to_audio with tfspeech-export's dynamic signature (one cheap op instead of
  a vocoder: the runner's check reads only the signature)."""
  name = "mel_to_audio"

  def __init__(self):
    super().__init__()
    self.function = inference_graphs.named_function(
        [tf.TensorSpec([None, None, 80], tf.float32, name="mel"),
         tf.TensorSpec([None], tf.int32, name="mel_lengths")],
        lambda mel, lengths: {"audio": tf.reduce_sum(mel, -1), "audio_lengths": lengths})


def test_dynamic_shape_export_is_refused_with_the_reason(node, tmp_path):
  """tfspeech-export's files keep batch and length dynamic unless --fixed_shapes: LiteRT.js
  2.5.3 cannot run them (its run() rejects [-1, -1] inputs; bypassed, the wasm crashes), so
  the runner says so and how to export instead. (The page's litert_runtime.js refuses them
  with the same check; not launched again here, to keep the suite's time.)"""
  path = tflite.export_graphs({"mel_to_audio": _DynamicMelToAudio()},
                              str(tmp_path))["mel_to_audio"]
  stderr = run_litertjs(node, path, {"mel": np.zeros((1, 3, 80), np.float32),
                                     "mel_lengths": np.array([3], np.int32)},
                        str(tmp_path / "run"), succeeds=False)
  assert "input mel [-1, -1, 80]" in stderr and "dynamic dimension" in stderr, stderr[-2000:]
  assert "static shapes" in stderr and "out of bounds" not in stderr, stderr[-2000:]
  assert "--fixed_shapes=tokens=T,frames=F" in stderr, stderr[-2000:]


@pytest.mark.skipif(not os.path.isfile(CHROMIUM), reason="Chromium is not installed")
def test_demo_page_runs_fixed_shape_export_with_litertjs(fixed_pair, node):
  """The demo page, given the fixed-shape export's folder, runs it with LiteRT.js, says so,
  and speaks: its durations (noise-free in Grad-TTS) and mel length are TF's for its ids."""
  path, _, _, _, graph = fixed_pair
  result = subprocess.run([node, CHECK_JS, f"--model={os.path.dirname(path)}", "--text=Hi.",
                           f"--chromium={CHROMIUM}"], capture_output=True, text=True,
                          check=False, timeout=150, cwd=tfjs.EXPORT_DIR)
  assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
  page = json.loads(result.stdout.strip().splitlines()[-1])
  assert page["result"]["runtime"] == "litertjs" and not page["problems"]
  assert page["backendText"].startswith("Runtime: LiteRT.js (litert_wasm"), page["backendText"]
  ids = page["result"]["ids"]
  inputs = tflite.fixed_shape_inputs(
      {"tokens": TOKENS, "frames": FRAMES}, text_ids=np.array([ids], np.int32),
      text_lengths=np.array([len(ids)], np.int32), noise=np.zeros((1, FRAMES, 80), np.float32),
      temperature=np.float32(1.5), length_scale=np.float32(1.0))
  reference = graph.function(**inputs)
  assert page["result"]["durations"] == reference["durations"].numpy()[0, :len(ids)].tolist()
  assert page["result"]["melFrames"] == int(reference["mel_lengths"][0])
  assert page["result"]["clipped"] is bool(reference["clipped"][0])
  assert page["wav"]["valid"] and page["wav"]["samples"] == page["result"]["melFrames"] * 256
