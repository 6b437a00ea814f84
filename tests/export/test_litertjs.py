"""LiteRT.js (@litertjs/core, LiteRT in WebAssembly) running tfspeech's TFLite graphs in Node.

export/js/run_tflite.js loads LiteRT.js 2.5.3 from export/node_modules. That version runs only
graphs whose inputs and outputs all have static shapes: it cannot resize an input, and an
output whose size depends on the data (Grad-TTS's mel after its durations) crashes it. So the
tiny HiFi-GAN's mel_to_audio (randomized weights, the conftest's vocoder_run) is converted here
at a fixed frame count and must match TF; the dynamic-shape file tfspeech-export writes must
be refused with a message saying why, not crash. Skips without node/npm.
"""

import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.export import frozen_graph, inference_graphs, tflite, tfjs

RUNNER = os.path.join(tfjs.EXPORT_DIR, "js", "run_tflite.js")
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


def run_litertjs(node, model_path, inputs, scratch, succeeds=True):
  """Runs run_tflite.js; returns (outputs.json, {name: array}) or its stderr when it fails."""
  os.makedirs(scratch, exist_ok=True)
  spec = {}
  for name, value in inputs.items():
    value = np.asarray(value)  # graph-ok: host I/O
    value.tofile(os.path.join(scratch, f"{name}.bin"))
    spec[name] = {"dtype": str(value.dtype), "shape": list(value.shape), "file": f"{name}.bin"}
  with open(os.path.join(scratch, "inputs.json"), "w", encoding="utf-8") as f:
    json.dump(spec, f)
  out = os.path.join(scratch, "out")
  result = subprocess.run([node, RUNNER, f"--model={model_path}",
                           f"--inputs={scratch}/inputs.json", f"--out={out}", "--repeat=2"],
                          capture_output=True, text=True, check=False, timeout=120)
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


def test_static_vocoder_matches_tf(mel_to_audio, node, tmp_path):
  path = static_tflite(mel_to_audio, {"mel": [1, FRAMES, 80], "mel_lengths": [1]},
                       str(tmp_path / "mel_to_audio.tflite"))
  rng = np.random.default_rng(5)
  # A padded mel: the graph zeros the audio past mel_lengths, as with dynamic shapes.
  inputs = {"mel": rng.normal(-5.0, 2.0, (1, FRAMES, 80)).astype(np.float32),
            "mel_lengths": np.array([FRAMES - 5], np.int32)}
  description, out = run_litertjs(node, path, inputs, str(tmp_path / "run"))
  reference = {k: v.numpy() for k, v in mel_to_audio.function(**inputs).items()}
  assert description["runtime"] == "litertjs" and description["litertjs_version"] == "2.5.3"
  assert description["wasm"].startswith("litert_wasm") and len(
      description["seconds_per_call"]) == 2
  assert out["audio"].shape == (1, FRAMES * 256)
  np.testing.assert_array_equal(out["audio_lengths"], [(FRAMES - 5) * 256])
  assert not np.any(out["audio"][0, (FRAMES - 5) * 256:])
  error = np.max(np.abs(out["audio"] - reference["audio"]))
  assert np.max(np.abs(reference["audio"])) > 1e-3  # audible: a meaningful comparison
  relative = error / np.max(np.abs(reference["audio"]))
  print(f"LiteRT.js ({description['wasm']}) vs TF: max relative error {relative:.1e}")
  assert relative <= FLOAT32_RTOL, relative


def test_dynamic_shape_export_is_refused_with_the_reason(mel_to_audio, node, tmp_path):
  """tfspeech-export's files keep batch and length dynamic: LiteRT.js 2.5.3 cannot run them
  (its run() rejects [-1, -1] inputs; bypassed, the wasm crashes), so the runner says so."""
  path = tflite.export_graphs({"mel_to_audio": mel_to_audio}, str(tmp_path))["mel_to_audio"]
  stderr = run_litertjs(node, path, {"mel": np.zeros((1, 3, 80), np.float32),
                                     "mel_lengths": np.array([3], np.int32)},
                        str(tmp_path / "run"), succeeds=False)
  assert "input mel [-1, -1, 80]" in stderr and "dynamic dimension" in stderr, stderr[-2000:]
  assert "static shapes" in stderr and "memory access out of bounds" not in stderr
