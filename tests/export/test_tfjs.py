"""TFJS export: graph models converted in the converter's own virtualenv, run in Node.

The Node runs use @tensorflow/tfjs 4.22 through export/js/run_graph_model.js on both backends
the project ships: WebAssembly (@tensorflow/tfjs-backend-wasm) and pure-JS CPU. References are
the trained Keras modules (Grad-TTS `synthesize` with its while-loop decoder, the weight-norm
HiFi-GAN generator). Skips when the converter or node/npm are unavailable; the wasm cases skip
alone when @tensorflow/tfjs-backend-wasm is not installed in export/node_modules.
"""

import json
import os
import subprocess

import numpy as np
import pytest

from tfspeech.export import inference_graphs, tfjs

N_TIMESTEPS = 2  # the conftest's n_timesteps
FLOAT32_RTOL = 1e-4
FLOAT16_RTOL = 1e-2


def relative_error(actual, reference):
  reference = np.asarray(reference)
  error = np.max(np.abs(np.asarray(actual) - reference))
  return float(error / max(np.max(np.abs(reference)), 1e-12))


def text_inputs(batch_lengths, seed):
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, 64, size=(len(batch_lengths), max(batch_lengths))).astype(np.int32)
  for row, length in enumerate(batch_lengths):
    ids[row, length:] = 0
  return {"text_ids": ids, "text_lengths": np.array(batch_lengths, np.int32),
          "noise": rng.standard_normal((len(batch_lengths), 400, 80)).astype(np.float32),
          "temperature": np.float32(1.5), "length_scale": np.float32(1.0)}


@pytest.fixture(params=["cpu", "wasm"])
def backend(request, node):
  """A Node backend: "cpu", or "wasm" when its npm package is installed."""
  del node  # only for its npm ci
  if request.param == "wasm":
    missing = tfjs.wasm_backend_missing()
    if missing:
      pytest.skip(f"TFJS wasm backend unavailable, skipping its parity test: {missing}")
  return request.param


@pytest.fixture(scope="module")
def references(acoustic_run, vocoder_run):
  """lengths → (inputs, reference mel, lengths, audio), computed once for both backends."""
  cache = {}

  def get(lengths):
    key = tuple(lengths)
    if key not in cache:
      inputs = text_inputs(lengths, seed=sum(lengths))
      reference = acoustic_run.modules["grad_tts"].synthesize(
          inputs["text_ids"], inputs["text_lengths"], n_timesteps=N_TIMESTEPS,
          temperature=1.5, length_scale=1.0, noise=inputs["noise"])
      mel = reference.mel_decoded.numpy()
      audio = vocoder_run.modules["generator"](mel).numpy()
      cache[key] = inputs, mel, reference.mel_lengths.numpy(), audio
    return cache[key]

  return get


def shard_bytes(model_dir):
  with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
    manifest = json.load(f)["weightsManifest"]
  return sum(os.path.getsize(os.path.join(model_dir, p)) for group in manifest
             for p in group["paths"])


@pytest.mark.parametrize("lengths", [[1], [2, 1], [40, 9]])
def test_text_to_audio_in_node_matches_models(tfjs_text_to_audio, references, n_timesteps,
                                              backend, lengths):
  assert n_timesteps == N_TIMESTEPS
  _, paths = tfjs_text_to_audio
  inputs, mel, mel_lengths, audio = references(lengths)
  run = tfjs.run_graph_model(paths["text_to_audio"], inputs, backend=backend)
  assert (run.backend, run.fallback) == (backend, None)
  out = run.outputs
  np.testing.assert_array_equal(out["mel_lengths"], mel_lengths)
  np.testing.assert_array_equal(out["audio_lengths"], mel_lengths * 256)
  assert out["mel"].shape == mel.shape
  assert relative_error(out["mel"], mel) <= FLOAT32_RTOL
  assert out["audio"].shape == audio.shape
  assert relative_error(out["audio"], audio) <= FLOAT32_RTOL
  print(f"tfjs {backend} text_to_audio {lengths}: {run.seconds[0]:.2f} s, mel rel error "
        f"{relative_error(out['mel'], mel):.1e}, audio rel error "
        f"{relative_error(out['audio'], audio):.1e}")


def test_auto_backend_prefers_wasm(tfjs_text_to_audio, references, node):
  """The default backend is wasm whenever its package is installed, and says so; --profile
  times every kernel of one more call."""
  del node
  _, paths = tfjs_text_to_audio
  inputs, mel, _, _ = references([2, 1])
  run = tfjs.run_graph_model(paths["text_to_audio"], inputs, repeat=2, profile=True)
  expected = "cpu" if tfjs.wasm_backend_missing() else "wasm"
  assert run.backend == expected, run.fallback
  assert (run.fallback is None) == (expected == "wasm")
  assert len(run.seconds) == 2 and all(s > 0 for s in run.seconds)
  assert relative_error(run.outputs["mel"], mel) <= FLOAT32_RTOL
  profile = run.profile
  kernels = {entry["kernel"]: entry for entry in profile["kernels"]}
  assert {"Conv2D", "Conv2DBackpropInput", "BatchMatMul"} <= set(kernels), sorted(kernels)
  assert profile["total_ms"] > 0
  assert sum(entry["ms"] for entry in profile["kernels"]) == pytest.approx(profile["total_ms"])
  assert [e["ms"] for e in profile["kernels"]] == sorted(
      (e["ms"] for e in profile["kernels"]), reverse=True)
  assert 0 < len(profile["slowest"]) <= 20
  assert all("input_shapes" in call for call in profile["slowest"])


def test_auto_falls_back_to_cpu_when_wasm_cannot_load(tfjs_text_to_audio, references,
                                                      tmp_path):
  """No .wasm binary where the runner looks: auto runs on cpu and says why; wasm fails."""
  if tfjs.wasm_backend_missing():
    pytest.skip(f"TFJS wasm backend unavailable: {tfjs.wasm_backend_missing()}")
  _, paths = tfjs_text_to_audio
  inputs, mel, _, _ = references([1])
  run = tfjs.run_graph_model(paths["text_to_audio"], inputs, wasm_dir=str(tmp_path))
  assert run.backend == "cpu"
  assert "failed to initialize" in run.fallback and "ENOENT" in run.fallback, run.fallback
  assert relative_error(run.outputs["mel"], mel) <= FLOAT32_RTOL
  with pytest.raises(RuntimeError, match="--backend=wasm: the wasm backend failed"):
    tfjs.run_graph_model(paths["text_to_audio"], inputs, backend="wasm", wasm_dir=str(tmp_path))


# The Einsum equations of the Grad-TTS graphs (text encoder, score estimator) and two more.
WASM_KERNEL_CHECK = """
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const path = require('path');
const {registerWasmKernels} = require('./web/wasm_kernels.js');
wasm.setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep);
const einsums = [
  ['bhid,bhjd->bhij', [[2, 3, 5, 4], [2, 3, 7, 4]]], ['bhid,rd->bhir', [[2, 3, 5, 4], [9, 4]]],
  ['bhir,ijr->bhij', [[2, 3, 5, 9], [5, 5, 9]]], ['bhij,bhjd->bhid', [[2, 3, 5, 6], [2, 3, 6, 4]]],
  ['bhij,ijr->bhir', [[2, 3, 5, 5], [5, 5, 9]]], ['bhir,rd->bhid', [[2, 3, 5, 9], [9, 4]]],
  ['bnhd,bnhe->bhde', [[2, 10, 3, 4], [2, 10, 3, 6]]],
  ['bhde,bnhd->bnhe', [[2, 3, 4, 6], [2, 10, 3, 4]]],
  ['abc->cb', [[2, 3, 4]]], ['bij,bkj->bik', [[2, 3, 4], [2, 5, 4]]],
];
const oneHots = [[1, 0, 'float32'], [0.5, -2, 'float32'], [5, 2, 'int32']];
const build = () => tf.tidy(() => einsums.map(([eq, shapes]) => tf.einsum(eq, ...shapes.map(
    (s, i) => tf.sin(tf.range(0, s.reduce((a, b) => a * b, 1)).mul(0.37 + i).reshape(s)))))
    .concat(oneHots.map(([on, off, dtype]) => tf.oneHot(
        tf.tensor1d([-1, 0, 2, 3, 1], 'int32'), 3, on, off, dtype))));
(async () => {
  await tf.setBackend('cpu');
  const want = build().map((t) => t.arraySync());
  const added = registerWasmKernels(tf, 'wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('wasm failed to load');
  const before = tf.memory().numTensors;
  const got = build();
  const tensors = tf.memory().numTensors - before;
  const wasmDataIds = tf.engine().backend.numDataIds();
  const errors = got.map((t, i) => tf.max(tf.abs(tf.sub(t, want[i]))).arraySync());
  console.log(JSON.stringify({added, errors, tensors, wasmDataIds}));
})();
"""


def test_wasm_kernels_match_cpu(node):
  """web/wasm_kernels.js: Einsum (absent from tfjs-backend-wasm) and float OneHot (wrong there)."""
  missing = tfjs.wasm_backend_missing()
  if missing:
    pytest.skip(f"TFJS wasm backend unavailable: {missing}")
  result = subprocess.run([node, "-e", WASM_KERNEL_CHECK], capture_output=True, text=True,
                          check=False, cwd=tfjs.EXPORT_DIR, timeout=60)
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["added"] == ["Einsum", "OneHot"]
  assert max(report["errors"]) < 1e-5, report["errors"]
  # Every temporary of the kernels is freed: only the 13 results stay on the wasm heap.
  assert report["tensors"] == report["wasmDataIds"] == 13


def test_node_runner_rejects_unknown_backend(tmp_path):
  with pytest.raises(ValueError, match="choose one of auto, wasm, cpu"):
    tfjs.run_graph_model(str(tmp_path), {}, backend="webgpu")


def test_weights_are_stored_once(tfjs_text_to_audio, acoustic_run, vocoder_run, n_timesteps):
  """Each unrolled decoder step reads the same U-Net weights: the shards hold them once."""
  assert n_timesteps >= 2  # else a per-step copy could not show
  _, paths = tfjs_text_to_audio
  parameters = sum(int(np.prod(w.shape)) for module in (acoustic_run.modules["grad_tts"],
                                                        vocoder_run.modules["generator"])
                   for w in module.weights)
  decoder = sum(int(np.prod(w.shape))
                for w in acoustic_run.modules["grad_tts"].decoder.weights)
  stored = shard_bytes(paths["text_to_audio"])
  # Float32 weights (weight norm folded: fewer than the trained ones) plus small int constants.
  assert stored < 4 * parameters + 4 * decoder // 2, (stored, parameters, decoder)


def test_model_json_names_the_signature(tfjs_text_to_audio):
  out_dir, paths = tfjs_text_to_audio
  with open(os.path.join(paths["text_to_audio"], "model.json"), encoding="utf-8") as f:
    model = json.load(f)
  assert model["format"] == "graph-model"
  signature = model["signature"]
  assert sorted(signature["inputs"]) == ["length_scale", "noise", "temperature", "text_ids",
                                         "text_lengths"]
  assert sorted(signature["outputs"]) == ["audio", "audio_lengths", "mel", "mel_lengths"]
  ops = {node["op"] for node in model["modelTopology"]["node"]}
  assert not ops & {"While", "StatelessWhile", "If", "Enter", "Exit", "TensorListReserve",
                    "Assert"}
  with open(os.path.join(out_dir, "metadata.json"), encoding="utf-8") as f:
    metadata = json.load(f)
  assert metadata["runtime"] == "tfjs"
  assert metadata["graphs"]["text_to_audio"]["file"] == "text_to_audio/model.json"
  assert metadata["symbols"]["blank"] is not None and metadata["add_blank"]


def test_float16_vocoder_halves_weights_within_tolerance(tmp_path, vocoder_run, node,
                                                         tfjs_converter):
  generator = vocoder_run.modules["generator"]
  graphs = inference_graphs.build_graphs(generator=generator)
  folders = tfjs.export_graphs(graphs, str(tmp_path), precision="float16",
                               converter=tfjs_converter)
  float32_bytes = 4 * sum(int(np.prod(w.shape)) for w in graphs["mel_to_audio"].model_weights)
  assert shard_bytes(folders["mel_to_audio"]) < 0.6 * float32_bytes
  mel = np.random.default_rng(4).normal(-5, 2, (2, 33, 80)).astype(np.float32)
  out, _ = tfjs.run_in_node(folders["mel_to_audio"], {"mel": mel})  # auto: wasm if installed
  error = relative_error(out["audio"], generator(mel).numpy())
  print(f"tfjs float16 mel_to_audio rel error {error:.2e}")
  assert 0 < error <= FLOAT16_RTOL


def test_float16_text_to_mel_stays_finite_and_close(tmp_path, acoustic_run, references, node,
                                                    tfjs_converter):
  """float16 quantizes every float constant of the graph, not only weights: a constant
  beyond float16's range (65504) becomes inf, and a masking product 0 * inf gave NaN mels."""
  graphs = inference_graphs.build_graphs(acoustic_run.modules["grad_tts"],
                                         n_timesteps=N_TIMESTEPS)
  graphs = {inference_graphs.TEXT_TO_MEL: graphs[inference_graphs.TEXT_TO_MEL]}
  folder = tfjs.export_graphs(graphs, str(tmp_path), precision="float16",
                              converter=tfjs_converter)[inference_graphs.TEXT_TO_MEL]
  inputs, mel, mel_lengths, _ = references([40, 9])
  del node  # only for its npm ci
  out, _ = tfjs.run_in_node(folder, inputs)  # auto: wasm if installed
  assert np.all(np.isfinite(out["mel"]))
  np.testing.assert_array_equal(out["mel_lengths"], mel_lengths)
  error = relative_error(out["mel"], mel)
  print(f"tfjs float16 text_to_mel rel error {error:.2e}")
  assert error <= FLOAT16_RTOL


def test_missing_converter_is_a_clear_error(monkeypatch, tmp_path):
  monkeypatch.setenv(tfjs.CONVERTER_ENV, str(tmp_path / "nope"))
  with pytest.raises(tfjs.ConverterUnavailable, match="not an executable"):
    tfjs.converter_executable()
  monkeypatch.delenv(tfjs.CONVERTER_ENV)
  monkeypatch.setenv(tfjs.CONVERTER_VENV_ENV, str(tmp_path / "venv"))
  with pytest.raises(tfjs.ConverterUnavailable, match="no TFJS converter virtualenv"):
    tfjs.converter_executable(create=False)


def test_node_modules_match_package_json(node):
  """ensure_node_modules reinstalls a stale node_modules (say, one without the wasm backend)."""
  del node
  assert tfjs._stale_packages() == []  # pylint: disable=protected-access
  assert tfjs.wasm_backend_missing() is None or "npm ci" in tfjs.wasm_backend_missing()
