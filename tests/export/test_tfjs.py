"""TFJS export: graph models converted in the converter's own virtualenv, run in Node.

The Node runs use @tensorflow/tfjs 4.22 through export/js/run_graph_model.js on both backends
the project ships: WebAssembly (@tensorflow/tfjs-backend-wasm) and pure-JS CPU. References are
the trained Keras modules (Grad-TTS `synthesize` with its while-loop decoder, the weight-norm
HiFi-GAN generator). Skips when the converter or node/npm are unavailable; the wasm cases skip
alone when @tensorflow/tfjs-backend-wasm is not installed in export/node_modules.
"""

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfspeech.export import inference_graphs, tfjs
from tfspeech.models.grad_tts.grad_tts_serving import GradTTSServing
from tfspeech.models.hifigan.hifigan_serving import HifiGanServing

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
      mel_lengths = reference.mel_lengths.numpy()
      audio = vocoder_run.modules["generator"](mel).numpy()
      # mel_to_audio zeroes each item's audio past its length.
      audio *= np.arange(audio.shape[1])[None, :] < (mel_lengths * 256)[:, None]
      cache[key] = inputs, mel, mel_lengths, audio
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
  np.testing.assert_array_equal(out["durations"].sum(axis=1), mel_lengths)
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
  # Transposed convolutions are frozen as polyphase convolutions and a DepthToSpace.
  assert {"Conv2D", "DepthToSpace", "BatchMatMul"} <= set(kernels), sorted(kernels)
  assert "Conv2DBackpropInput" not in kernels
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


def rank4_bias_model(folder):
  """A graph model tfjs-backend-wasm 4.22 rejects at run time, as the score estimator's
  final_conv was before frozen_graph's rank-1 bias rewrite (issue #16): `y = 2 x + 0.5` as a
  _FusedConv2D whose bias constant is [1, 1, 1, 1] ("FusedConv2D only supports rank-1 bias").

  Returns:
    (model folder, inputs {"x": [1, 2, 2, 1]}, the expected y).
  """
  os.makedirs(folder, exist_ok=True)
  weights = {"filter": np.full([1, 1, 1, 1], 2.0, np.float32),
             "bias": np.full([1, 1, 1, 1], 0.5, np.float32)}

  def encode(text):
    return base64.b64encode(text.encode()).decode()

  nodes = [{"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {
      "shape": {"dim": [{"size": "-1"}, {"size": "-1"}, {"size": "-1"}, {"size": "1"}]}}}}]
  nodes += [{"name": name, "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}, "value": {
      "tensor": {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "1"}] * 4}}}}}
            for name in weights]
  nodes.append({"name": "y", "op": "_FusedConv2D", "input": ["x", "filter", "bias"], "attr": {
      "T": {"type": "DT_FLOAT"}, "num_args": {"i": "1"},
      "fused_ops": {"list": {"s": [encode("BiasAdd")]}}, "padding": {"s": encode("VALID")},
      "data_format": {"s": encode("NHWC")}, "strides": {"list": {"i": ["1"] * 4}},
      "dilations": {"list": {"i": ["1"] * 4}}, "epsilon": {"f": 0.0}}})
  model = {"format": "graph-model", "generatedBy": "tests/export/test_tfjs.py",
           "convertedBy": "hand", "modelTopology": {"node": nodes, "library": {}, "versions": {}},
           "signature": {"inputs": {"x": {"name": "x:0", "dtype": "DT_FLOAT"}},
                         "outputs": {"y": {"name": "y:0", "dtype": "DT_FLOAT"}}},
           "weightsManifest": [{"paths": ["weights.bin"], "weights": [
               {"name": name, "shape": [1, 1, 1, 1], "dtype": "float32"} for name in weights]}]}
  with open(os.path.join(folder, "model.json"), "w", encoding="utf-8") as f:
    json.dump(model, f)
  np.concatenate([w.ravel() for w in weights.values()]).tofile(
      os.path.join(folder, "weights.bin"))
  x = np.arange(4, dtype=np.float32).reshape([1, 2, 2, 1])
  return folder, {"x": x}, 2 * x + 0.5


RANK4_BIAS_ERROR = "FusedConv2D only supports rank-1 bias but got rank 4"


def test_auto_falls_back_to_cpu_on_any_wasm_failure(tmp_path, node):
  """Not only a missing kernel: a wasm kernel rejecting its inputs at run time makes auto run
  the graph on cpu and say why; --backend=wasm fails with that reason."""
  del node
  if tfjs.wasm_backend_missing():
    pytest.skip(f"TFJS wasm backend unavailable: {tfjs.wasm_backend_missing()}")
  folder, inputs, expected = rank4_bias_model(str(tmp_path / "model"))
  run = tfjs.run_graph_model(folder, inputs)
  assert run.backend == "cpu"
  assert f"the graph failed on the wasm backend: {RANK4_BIAS_ERROR}" in run.fallback
  np.testing.assert_array_equal(run.outputs["y"], expected)
  with pytest.raises(RuntimeError, match=f"--backend=wasm: the graph failed on the wasm "
                                         f"backend: {RANK4_BIAS_ERROR}"):
    tfjs.run_graph_model(folder, inputs, backend="wasm")


def test_check_ops_lists_kernels_not_op_scopes(tmp_path, node):
  """--check_ops lists the kernels that ran (FusedConv2D), not tf.profile's op scopes
  (fusedConv2d__op), and reports the wasm failure."""
  if tfjs.wasm_backend_missing():
    pytest.skip(f"TFJS wasm backend unavailable: {tfjs.wasm_backend_missing()}")
  folder, inputs, _ = rank4_bias_model(str(tmp_path / "model"))
  inputs["x"].tofile(str(tmp_path / "x.bin"))
  with open(tmp_path / "inputs.json", "w", encoding="utf-8") as f:
    json.dump({"x": {"dtype": "float32", "shape": [1, 2, 2, 1], "file": "x.bin"}}, f)
  result = subprocess.run([node, tfjs.NODE_RUNNER, f"--model={folder}",
                           f"--inputs={tmp_path / 'inputs.json'}", "--check_ops"],
                          capture_output=True, text=True, check=True, cwd=tfjs.EXPORT_DIR,
                          timeout=60)
  report = json.loads(result.stdout)
  assert report["tf_ops"] == ["Const", "Placeholder", "_FusedConv2D"]
  assert report["kernels"] == ["FusedConv2D"]
  assert report["wasm"]["missing_kernels"] == []
  assert report["wasm"]["runs"] is False
  assert RANK4_BIAS_ERROR in report["wasm"]["error"]


def test_fused_biases_are_rank_1(tfjs_text_to_audio):
  """Every bias the converter fused into a conv or MatMul is rank 1, as the wasm kernels
  demand (issue #16: the score estimator's final_conv had a [1, 1, 1, 1] one). The fixture's
  weights are randomized, so no bias is zero and folded away."""
  _, paths = tfjs_text_to_audio
  with open(os.path.join(paths["text_to_audio"], "model.json"), encoding="utf-8") as f:
    model = json.load(f)
  shapes = {w["name"]: w["shape"] for group in model["weightsManifest"]
            for w in group["weights"]}
  fused = [entry["input"][2] for entry in model["modelTopology"]["node"]
           if entry["op"] in ("_FusedConv2D", "_FusedMatMul") and len(entry["input"]) > 2]
  assert fused and all(len(shapes[name]) == 1 for name in fused), [
      (name, shapes[name]) for name in fused if len(shapes[name]) != 1]


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
  assert sorted(signature["outputs"]) == ["audio", "audio_lengths", "durations", "mel",
                                          "mel_lengths"]
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
  graphs = inference_graphs.build_graphs(vocoder=HifiGanServing(generator))
  folders = tfjs.export_graphs(graphs, str(tmp_path), precision="float16",
                               converter=tfjs_converter)
  float32_bytes = 4 * sum(int(np.prod(w.shape)) for w in graphs["mel_to_audio"].model_weights)
  assert shard_bytes(folders["mel_to_audio"]) < 0.6 * float32_bytes
  mel = np.random.default_rng(4).normal(-5, 2, (2, 33, 80)).astype(np.float32)
  run = tfjs.run_graph_model(folders["mel_to_audio"],  # auto: wasm if installed
                             {"mel": mel, "mel_lengths": np.array([33, 33], np.int32)})
  assert run.backend == ("cpu" if tfjs.wasm_backend_missing() else "wasm"), run.fallback
  np.testing.assert_array_equal(run.outputs["audio_lengths"], [33 * 256, 33 * 256])
  error = relative_error(run.outputs["audio"], generator(mel).numpy())
  print(f"tfjs float16 mel_to_audio rel error {error:.2e}")
  assert 0 < error <= FLOAT16_RTOL


def test_float16_text_to_mel_stays_finite_and_close(tmp_path, acoustic_run, references, node,
                                                    tfjs_converter):
  """float16 quantizes every float constant of the graph, not only weights: a constant
  beyond float16's range (65504) becomes inf, and a masking product 0 * inf gave NaN mels."""
  graphs = inference_graphs.build_graphs(GradTTSServing(acoustic_run.modules["grad_tts"]),
                                         controls={"n_timesteps": N_TIMESTEPS})
  graphs = {inference_graphs.TEXT_TO_MEL: graphs[inference_graphs.TEXT_TO_MEL]}
  folder = tfjs.export_graphs(graphs, str(tmp_path), precision="float16",
                              converter=tfjs_converter)[inference_graphs.TEXT_TO_MEL]
  inputs, mel, mel_lengths, _ = references([40, 9])
  del node  # only for its npm ci
  run = tfjs.run_graph_model(folder, inputs)  # auto: wasm if installed
  assert run.backend == ("cpu" if tfjs.wasm_backend_missing() else "wasm"), run.fallback
  out = run.outputs
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


def test_converter_install_shows_pip_progress(monkeypatch, tmp_path):
  """Creating the converter venv takes minutes: pip runs without -q and every line it prints
  reaches `progress` as it comes (here with stand-ins for venv and pip)."""
  commands = []
  run_with_progress = tfjs._run_with_progress  # pylint: disable=protected-access

  def fake_run(command, what, error_class, **kwargs):
    del what, error_class, kwargs
    commands.append(("quiet", command))
    if command[1:3] == ["-m", "venv"]:
      os.makedirs(command[3])
    return ""

  def fake_pip(command, what, error_class, progress, prefix):
    commands.append(("progress", command))
    pip_output = "print('Collecting x'); print(); print('Successfully installed x')"
    run_with_progress([sys.executable, "-c", pip_output], what, error_class, progress, prefix)

  monkeypatch.setattr(tfjs, "_run", fake_run)
  monkeypatch.setattr(tfjs, "_run_with_progress", fake_pip)
  lines = []
  venv = str(tmp_path / "venv")
  tfjs._create_converter_venv(  # pylint: disable=protected-access
      venv, os.path.join(venv, "bin", "tensorflowjs_converter"), ["pins"], lines.append)
  pip_installs = [command for how, command in commands if "install" in command]
  assert len(pip_installs) == 2
  assert all(how == "progress" for how, command in commands if "install" in command)
  assert not [command for command in pip_installs if "-q" in command]
  assert lines.count("tfjs: pip: Collecting x") == 2
  assert lines.count("tfjs: pip: Successfully installed x") == 2
  assert lines[-1] == "tfjs: converter ready"


def test_progress_runner_reports_failures():
  lines = []
  with pytest.raises(tfjs.ConverterUnavailable, match=r"(?s)exit 3.*went wrong"):
    tfjs._run_with_progress(  # pylint: disable=protected-access
        [sys.executable, "-c", "print('went wrong'); raise SystemExit(3)"], "step",
        tfjs.ConverterUnavailable, lines.append, "p: ")
  assert lines == ["p: went wrong"]
