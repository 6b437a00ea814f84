"""The big presets export: Grad-TTS `ljspeech` and HiFi-GAN V1 in TFLite and TFJS float32.

The other export tests use the tiny presets; these check that the published model shapes
(14.8M-parameter Grad-TTS, 13.9M-parameter HiFi-GAN V1; every weight randomized like a
trained model's, biases included, by the conftest's `randomize_weights`: zero biases fold
away and hide what a trained model converts to) convert with builtins only and match their Keras
modules in LiteRT (two input lengths through one interpreter, i.e. a resize) and in Node.
Inputs are short and the decoder has 1 step, to keep the conversions and runs cheap; the
TFJS part is marked `slow` (still run by default; `-m "not slow"` leaves it out).

References are the modules themselves: `GradTTS.synthesize` with its while-loop decoder and
the weight-norm HiFi-GAN generator, never the exported graphs.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfspeech.export import inference_graphs, tflite, tfjs

# One unrolled decoder step: freezing and converting cost ~linear time in the steps, and
# chaining steps is already checked on the tiny preset (tests/export/test_tflite.py).
N_TIMESTEPS = 1
# As tests/export/test_tflite.py and test_tfjs.py: max |error| <= FLOAT32_RTOL * max |reference|.
FLOAT32_RTOL = 1e-4
TEXT_LENGTHS = ([11], [23, 6])
MEL_FRAMES = ((1, 9), (2, 24))


def relative_error(actual, reference):
  reference = np.asarray(reference)
  return float(np.max(np.abs(np.asarray(actual) - reference))
               / max(np.max(np.abs(reference)), 1e-12))


def text_inputs(lengths, n_vocab, seed):
  """Padded random ids (no pad id 0), noise for every frame, and the graph's scalars."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, n_vocab, size=(len(lengths), max(lengths))).astype(np.int32)
  for row, length in enumerate(lengths):
    ids[row, length:] = 0
  return {"text_ids": ids, "text_lengths": np.array(lengths, np.int32),
          "noise": rng.standard_normal((len(lengths), 8 * max(lengths) + 32, 80)).astype(
              np.float32),
          "temperature": np.float32(1.5), "length_scale": np.float32(1.0)}


def mel_inputs(batch, frames, seed):
  mel = np.random.default_rng(seed).normal(-5.0, 2.0, (batch, frames, 80))
  return {"mel": mel.astype(np.float32), "mel_lengths": np.full([batch], frames, np.int32)}


@pytest.fixture(scope="module")
def grad_tts(weight_randomizer):
  """Grad-TTS `ljspeech` preset with randomized weights and its `text_to_mel` graph."""
  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry
  from tfspeech.models.grad_tts import GradTTS
  from tfspeech.models.grad_tts.grad_tts_serving import GradTTSServing
  tf.keras.utils.set_random_seed(11)
  model = GradTTS(registry.get("grad_tts").preset("ljspeech"))
  weight_randomizer([model], seed=11)
  graph = inference_graphs.TextToMel(GradTTSServing(model), {"n_timesteps": N_TIMESTEPS})
  references = []
  for seed, lengths in enumerate(TEXT_LENGTHS):
    inputs = text_inputs(lengths, model.config.n_vocab, seed)
    out = model.synthesize(inputs["text_ids"], inputs["text_lengths"], n_timesteps=N_TIMESTEPS,
                           temperature=1.5, length_scale=1.0, noise=inputs["noise"])
    references.append((inputs, {"mel": out.mel_decoded.numpy(),
                                "mel_lengths": out.mel_lengths.numpy()}))
  assert sum(w.shape.num_elements() for w in model.weights) > 10_000_000  # really the big one
  return graph, references


@pytest.fixture(scope="module")
def hifigan_v1(weight_randomizer):
  """HiFi-GAN V1 generator (with weight norm, randomized weights) and its `mel_to_audio`
  graph."""
  # pylint: disable=import-outside-toplevel
  from tfspeech.models.hifigan import get_preset
  from tfspeech.models.hifigan.generator import HifiGanGenerator
  from tfspeech.models.hifigan.hifigan_serving import HifiGanServing
  tf.keras.utils.set_random_seed(12)
  generator = HifiGanGenerator(get_preset("v1"), weight_norm=True)
  weight_randomizer([generator], seed=12)
  references = []
  for seed, (batch, frames) in enumerate(MEL_FRAMES):
    inputs = mel_inputs(batch, frames, seed)
    references.append((inputs, {"audio": generator(inputs["mel"]).numpy()}))
  assert sum(w.shape.num_elements() for w in generator.weights) > 10_000_000
  graph = inference_graphs.MelToAudio(HifiGanServing(generator))
  return graph, references


@pytest.fixture(scope="module")
def frozen_dir(tmp_path_factory):
  """Frozen SavedModels shared by the TFLite and TFJS conversions (one freeze per graph)."""
  return str(tmp_path_factory.mktemp("frozen"))


def check_grad_tts(out, reference, where):
  np.testing.assert_array_equal(out["mel_lengths"], reference["mel_lengths"], err_msg=where)
  assert out["mel"].shape == reference["mel"].shape, where
  error = relative_error(out["mel"], reference["mel"])
  assert error <= FLOAT32_RTOL, f"{where}: mel rel error {error:.2e}"
  return error


def check_hifigan(out, reference, where):
  assert out["audio"].shape == reference["audio"].shape, where
  error = relative_error(out["audio"], reference["audio"])
  assert error <= FLOAT32_RTOL, f"{where}: audio rel error {error:.2e}"
  return error


def builtin_only(path):
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  ops = {op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()}  # pylint: disable=protected-access
  return sorted(op for op in ops if op.startswith("Flex") or op == "CUSTOM")


@pytest.mark.parametrize("model", ["grad_tts", "hifigan_v1"])
def test_tflite_float32_matches_big_preset(request, tmp_path, frozen_dir, model):
  graph, references = request.getfixturevalue(model)
  path = tflite.export_graphs({graph.name: graph}, str(tmp_path), frozen_dir=frozen_dir)[
      graph.name]
  assert builtin_only(path) == []
  runner = tflite.TFLiteGraph(path, num_threads=2)
  check = check_grad_tts if model == "grad_tts" else check_hifigan
  for inputs, reference in references:  # one interpreter, resized to each input's shapes
    where = f"tflite {model} {[v.shape for v in inputs.values()]}"
    print(f"{where}: rel error {check(runner(**inputs), reference, where):.1e}")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["grad_tts", "hifigan_v1"])
def test_tfjs_float32_in_node_matches_big_preset(request, tmp_path, frozen_dir, tfjs_converter,
                                                 node, model):
  del node  # ensures the npm packages
  graph, references = request.getfixturevalue(model)
  folder = tfjs.export_graphs({graph.name: graph}, str(tmp_path), converter=tfjs_converter,
                              frozen_dir=frozen_dir)[graph.name]
  check = check_grad_tts if model == "grad_tts" else check_hifigan
  # auto falls back to cpu on any wasm failure: the backend that ran is checked too.
  expected = "cpu" if tfjs.wasm_backend_missing() else "wasm"
  for inputs, reference in references:
    run = tfjs.run_graph_model(folder, inputs)
    assert run.backend == expected, run.fallback
    out = run.outputs
    where = f"tfjs {run.backend} {model} {[v.shape for v in inputs.values()]}"
    print(f"{where}: rel error {check(out, reference, where):.1e}")
