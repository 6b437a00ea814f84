"""LiteRT.js (@litertjs/core, LiteRT in WebAssembly) running tfspeech's TFLite graphs in Node
(export/js/run_tflite.js) and in headless Chromium (export/web/litert_runtime.js, driven by
export/js/check_web_demo.js --litert_model).

Both load LiteRT.js 2.5.3 from export/node_modules. That version runs only
graphs whose inputs and outputs all have static shapes: it cannot resize an input, and an
output whose size depends on the data (Grad-TTS's mel after its durations) crashes it. So the
tiny HiFi-GAN's mel_to_audio (randomized weights, the conftest's vocoder_run) is converted here
at a fixed frame count and must match TF; the dynamic-shape file tfspeech-export writes must
be refused with a message saying why, not crash. Skips without node/npm (and Chromium for
the browser case).
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.export import frozen_graph, inference_graphs, tflite, tfjs

RUNNER = os.path.join(tfjs.EXPORT_DIR, "js", "run_tflite.js")
CHECK_JS = os.path.join(tfjs.EXPORT_DIR, "js", "check_web_demo.js")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FRAMES = 24
# float32 LiteRT.js (XNNPACK in wasm) vs TF: max |error| <= this * max |reference|; measured
# 5e-7 on the tiny vocoder (the float32 TFLite bound of test_tflite.py is 1e-4).
FLOAT32_RTOL = 1e-5


def static_tflite(graph, shapes, out_path):
  """`graph` (an InferenceGraph) converted to TFLite with every input at `shapes[name]`."""
  specs = [tf.TensorSpec(shapes[spec.name], spec.dtype, name=spec.name)
           for spec in graph.function.input_signature]
  fixed = inference_graphs.named_function(specs, graph.function)
  saved_model = frozen_graph.save_frozen_saved_model(
      {graph.name: fixed.get_concrete_function()}, out_path + ".saved_model")
  with open(out_path, "wb") as f:
    f.write(tflite.convert_saved_model(saved_model, graph.name))
  return out_path


def run_litertjs(node, model_path, inputs, scratch, succeeds=True, browser_flags=None):
  """Runs run_tflite.js (or check_web_demo.js --litert_model with `browser_flags`, a list);
  returns (outputs.json, {name: array}), or its stderr when it fails."""
  os.makedirs(scratch, exist_ok=True)
  spec = {}
  for name, value in inputs.items():
    value = np.asarray(value)  # graph-ok: host I/O
    value.tofile(os.path.join(scratch, f"{name}.bin"))
    spec[name] = {"dtype": str(value.dtype), "shape": list(value.shape), "file": f"{name}.bin"}
  with open(os.path.join(scratch, "inputs.json"), "w", encoding="utf-8") as f:
    json.dump(spec, f)
  out = os.path.join(scratch, "out")
  command = ([node, RUNNER, f"--model={model_path}"] if browser_flags is None
             else [node, CHECK_JS, f"--litert_model={model_path}", *browser_flags])
  result = subprocess.run(command + [f"--inputs={scratch}/inputs.json", f"--out={out}",
                                     "--repeat=2"],
                          capture_output=True, text=True, check=False, timeout=150,
                          cwd=tfjs.EXPORT_DIR)
  assert result.returncode == (0 if succeeds else 1), result.stderr[-3000:]
  if not succeeds:
    return result.stderr
  with open(os.path.join(out, "outputs.json"), encoding="utf-8") as f:
    description = json.load(f)
  arrays = {name: np.fromfile(os.path.join(out, entry["file"]), entry["dtype"]).reshape(
      entry["shape"]) for name, entry in description["outputs"].items()}
  return description, arrays


@pytest.fixture(scope="module")
def mel_to_audio(vocoder_run):
  return inference_graphs.graphs_for_runs(None, vocoder_run, {},
                                          names=["mel_to_audio"])["mel_to_audio"]


@pytest.fixture(scope="module")
def static_vocoder(mel_to_audio, tmp_path_factory):
  """(the tiny vocoder's mel_to_audio at FRAMES frames as .tflite, inputs, TF's outputs)."""
  path = static_tflite(mel_to_audio, {"mel": [1, FRAMES, 80], "mel_lengths": [1]},
                       str(tmp_path_factory.mktemp("litertjs") / "mel_to_audio.tflite"))
  rng = np.random.default_rng(5)
  # A padded mel: the graph zeros the audio past mel_lengths, as with dynamic shapes.
  inputs = {"mel": rng.normal(-5.0, 2.0, (1, FRAMES, 80)).astype(np.float32),
            "mel_lengths": np.array([FRAMES - 5], np.int32)}
  reference = {k: v.numpy() for k, v in mel_to_audio.function(**inputs).items()}
  return path, inputs, reference


def check_audio(description, out, reference):
  """The padded audio matches TF within FLOAT32_RTOL and is zero past mel_lengths."""
  assert len(description["seconds_per_call"]) == 2
  assert out["audio"].shape == (1, FRAMES * 256)
  np.testing.assert_array_equal(out["audio_lengths"], [(FRAMES - 5) * 256])
  assert not np.any(out["audio"][0, (FRAMES - 5) * 256:])
  error = np.max(np.abs(out["audio"] - reference["audio"]))
  assert np.max(np.abs(reference["audio"])) > 1e-3  # audible: a meaningful comparison
  relative = error / np.max(np.abs(reference["audio"]))
  print(f"LiteRT.js ({description['runtime']}, {description['wasm']}) vs TF: max relative "
        f"error {relative:.1e}")
  assert relative <= FLOAT32_RTOL, relative


def test_static_vocoder_matches_tf_in_node(static_vocoder, node, tmp_path):
  path, inputs, reference = static_vocoder
  description, out = run_litertjs(node, path, inputs, str(tmp_path))
  assert description["runtime"] == "litertjs" and description["litertjs_version"] == "2.5.3"
  # Node 20's V8 has no relaxed SIMD: LiteRT.js loads its compat build.
  assert description["wasm"].startswith("litert_wasm")
  check_audio(description, out, reference)


@pytest.mark.skipif(not os.path.isfile(CHROMIUM), reason="Chromium is not installed")
def test_static_vocoder_matches_tf_in_chromium(static_vocoder, node, tmp_path):
  """The browser path: served by serve_demo.js (cross-origin isolated), LiteRT.js picks its
  relaxed-SIMD build, here the threaded one (--threads)."""
  path, inputs, reference = static_vocoder
  description, out = run_litertjs(node, path, inputs, str(tmp_path),
                                  browser_flags=[f"--chromium={CHROMIUM}", "--threads"])
  assert description["runtime"] == "litertjs-browser"
  assert description["crossOriginIsolated"] is True
  assert description["wasm"] == "litert_wasm_threaded_internal" and description["threads"]
  check_audio(description, out, reference)


def test_dynamic_shape_export_is_refused_with_the_reason(mel_to_audio, node, tmp_path):
  """tfspeech-export's files keep batch and length dynamic: LiteRT.js 2.5.3 cannot run them
  (its run() rejects [-1, -1] inputs; bypassed, the wasm crashes), so the runner says so.
  (The page's litert_runtime.js refuses them with the same check; not launched again here,
  to keep the suite's time.)"""
  path = tflite.export_graphs({"mel_to_audio": mel_to_audio}, str(tmp_path))["mel_to_audio"]
  stderr = run_litertjs(node, path, {"mel": np.zeros((1, 3, 80), np.float32),
                                     "mel_lengths": np.array([3], np.int32)},
                        str(tmp_path / "run"), succeeds=False)
  assert "input mel [-1, -1, 80]" in stderr and "dynamic dimension" in stderr, stderr[-2000:]
  assert "static shapes" in stderr and "out of bounds" not in stderr, stderr[-2000:]
