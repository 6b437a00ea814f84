"""FastPitch export parity: `tfspeech-export` of a trained-like tiny run in every runtime.

The tiny FastPitch run (every variable randomized, biases too: the export conftest's
`randomize_weights`) is exported by `export_lib.export_workdir` (what `tfspeech-export` runs)
with the tiny HiFi-GAN run as `--vocoder` (text_to_mel, mel_to_audio, text_to_audio) to
SavedModel, TFLite (LiteRT, builtin ops only) and TFJS (Node, cpu and wasm), and alone
(text_to_mel only) to TFLite. Each
runtime's mel, mel_lengths, durations and audio equal the models' own on several batch sizes
and lengths, with the controls (pace, pitch_shift, pitch_scale, energy_scale) as inputs.
References are the Keras modules behind `FastPitchServing.synthesize` and the HiFi-GAN
generator, run eagerly, never an exported graph. One conversion per export, shared by the module's tests.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.export import export_lib, tflite, tfjs
from tfspeech.models.fastpitch import fastpitch_serving

# float32 runtime vs TF: max |error| <= FLOAT32_RTOL * max |reference|.
FLOAT32_RTOL = 1e-4
DEFAULTS = {"pace": 1.0, "pitch_shift": 0.0, "pitch_scale": 1.0, "energy_scale": 1.0}
# Controls away from their defaults: each moves the output (checked below).
MOVED = {"pace": 1.3, "pitch_shift": 25.0, "pitch_scale": 1.2, "energy_scale": 0.7}
# Every duration rounds to 0 frames: the graphs must still run (one masked frame out).
SILENT = dict(DEFAULTS, pace=1000.0)
# (batch lengths, controls): batch sizes 1-3, padded items, zero frames.
CASES = [([2], DEFAULTS), ([9], MOVED), ([14, 3], DEFAULTS), ([6, 17, 11], MOVED),
         ([1], SILENT)]


def relative_error(actual, reference):
  reference = np.asarray(reference)
  error = np.max(np.abs(np.asarray(actual) - reference)) if reference.size else 0.0
  return float(error / max(np.max(np.abs(reference), initial=0.0), 1e-12))


def text_inputs(lengths, controls, seed):
  """Padded random ids (no pad id 0) and the controls as float32 scalars."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, 64, size=(len(lengths), max(lengths))).astype(np.int32)
  for row, length in enumerate(lengths):
    ids[row, length:] = 0
  inputs = {"text_ids": ids, "text_lengths": np.array(lengths, np.int32)}
  inputs.update({name: np.float32(value) for name, value in controls.items()})
  return inputs


@pytest.fixture(scope="module")
def references(fastpitch_run, vocoder_run):
  """(lengths, controls) → (inputs, {mel, mel_lengths, durations, audio}) from the models."""
  model = fastpitch_run.modules["fastpitch"]
  pitch_stats = fastpitch_run.config.data_info["pitch_stats"]
  acoustic = fastpitch_serving.FastPitchServing(model, pitch_stats["mean"], pitch_stats["std"])
  generator = vocoder_run.modules["generator"]
  cache = {}

  def get(lengths, controls):
    key = (tuple(lengths), tuple(sorted(controls.items())))
    if key not in cache:
      inputs = text_inputs(lengths, controls, seed=sum(lengths))
      out = acoustic.synthesize(inputs["text_ids"], inputs["text_lengths"], **{
          name: float(inputs[name]) for name in DEFAULTS})
      expected = {name: out[name].numpy() for name in ("mel", "mel_lengths", "durations")}
      audio = generator(expected["mel"]).numpy()
      valid = np.arange(audio.shape[1])[None, :] < (expected["mel_lengths"] * 256)[:, None]
      expected["audio"] = audio * valid
      # A degenerate random model (no frames) would make the comparisons vacuous.
      if controls is SILENT:
        assert expected["mel"].shape == (1, 1, 80) and expected["mel_lengths"][0] == 0
      else:
        assert np.all(expected["mel_lengths"] > 0), expected["mel_lengths"]
      cache[key] = inputs, expected
    return cache[key]

  return get


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory, fastpitch_run, vocoder_run, run_saver):
  root = tmp_path_factory.mktemp("fastpitch_runs")
  return (run_saver(fastpitch_run, str(root / "fastpitch")),
          run_saver(vocoder_run, str(root / "hifigan")))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, workdirs):
  """format → paths of the export with `--vocoder` (text_to_mel, mel_to_audio, text_to_audio);
  "tflite_alone" → the export without it (text_to_mel only). Converted on first use; the
  acoustic-only path is the same code for every format, so only TFLite pays for it twice."""
  cache = {}

  def get(fmt):
    if fmt not in cache:
      root = tmp_path_factory.mktemp(f"fastpitch_{fmt}")
      workdir, vocoder = workdirs
      if fmt.endswith("_alone"):
        cache[fmt] = export_lib.export_workdir(workdir, fmt[:-len("_alone")], str(root))
      else:
        cache[fmt] = export_lib.export_workdir(workdir, fmt, str(root), vocoder=vocoder)
    return cache[fmt]

  return get


def check_outputs(out, expected, audio=True, where=""):
  """The runtime's outputs equal the models' (lengths/durations exactly, values within bounds)."""
  for name in ("mel_lengths", "durations"):
    np.testing.assert_array_equal(out[name], expected[name], err_msg=f"{where} {name}")
  assert out["mel"].shape == expected["mel"].shape, where
  assert relative_error(out["mel"], expected["mel"]) <= FLOAT32_RTOL, where
  if audio:
    np.testing.assert_array_equal(out["audio_lengths"], expected["mel_lengths"] * 256)
    assert out["audio"].shape == expected["audio"].shape, where
    assert relative_error(out["audio"], expected["audio"]) <= FLOAT32_RTOL, where


def test_controls_move_the_reference(references):
  """MOVED's controls each change the output, so a runtime ignoring one cannot pass."""
  _, base = references([6, 17, 11], DEFAULTS)
  for name, value in MOVED.items():
    _, moved = references([6, 17, 11], dict(DEFAULTS, **{name: value}))
    if name == "pace":
      assert moved["mel_lengths"].sum() < base["mel_lengths"].sum()
    else:
      assert relative_error(moved["mel"], base["mel"]) > 1e-3, name


def test_saved_model_matches_models(exported, references):
  loaded = tf.saved_model.load(exported("saved_model")["saved_model"])
  assert {"text_to_mel", "text_to_audio", "mel_to_audio"} <= set(loaded.signatures)
  for lengths, controls in CASES:
    inputs, expected = references(lengths, controls)
    for graph in ("text_to_mel", "text_to_audio"):
      out = {k: v.numpy() for k, v in loaded.signatures[graph](
          **{k: tf.constant(v) for k, v in inputs.items()}).items()}
      check_outputs(out, expected, audio=graph == "text_to_audio",
                    where=f"saved_model {graph} {lengths}")


def _tflite_ops(path):
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  return {op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()}  # pylint: disable=protected-access


def test_tflite_matches_models_builtins_only(exported, references):
  alone, with_vocoder = exported("tflite_alone"), exported("tflite")
  assert sorted(alone) == ["metadata", "text_to_mel"]
  for paths, graph in ((alone, "text_to_mel"), (with_vocoder, "text_to_mel"),
                       (with_vocoder, "text_to_audio")):
    ops = _tflite_ops(paths[graph])
    assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], (graph, ops)
    # One interpreter for every case: the signature runner resizes its inputs
    # (`resize_tensor_input`) to each batch size and length in turn.
    runner = tflite.TFLiteGraph(paths[graph])
    assert sorted(runner.input_names) == sorted(["text_ids", "text_lengths", *DEFAULTS])
    for lengths, controls in CASES + CASES[:1]:  # back to the first shape after the others
      inputs, expected = references(lengths, controls)
      check_outputs(runner(**inputs), expected, audio=graph == "text_to_audio",
                    where=f"tflite {graph} {lengths}")


@pytest.mark.parametrize("backend", ["cpu", "wasm"])
def test_tfjs_in_node_matches_models(exported, references, tfjs_converter, node, backend):
  del tfjs_converter, node  # the converter venv and npm ci
  if backend == "wasm" and tfjs.wasm_backend_missing():
    pytest.skip(f"TFJS wasm backend unavailable: {tfjs.wasm_backend_missing()}")
  paths = exported("tfjs")
  for graph in ("text_to_mel", "text_to_audio"):
    for lengths, controls in CASES:
      inputs, expected = references(lengths, controls)
      run = tfjs.run_graph_model(paths[graph], inputs, backend=backend)
      assert (run.backend, run.fallback) == (backend, None)
      check_outputs(run.outputs, expected, audio=graph == "text_to_audio",
                    where=f"tfjs {backend} {graph} {lengths}")
      assert os.path.isfile(os.path.join(paths[graph], "model.json"))
