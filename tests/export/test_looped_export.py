"""Export parity of the looped acoustic models: Tacotron 2 and DC-TTS decoding (issues #20, #21).

Both decode with one `tf.while_loop`. Tiny runs with every variable randomized (biases too: the
export conftest's `randomize_weights`) are exported by `export_lib.export_workdir` (what
`tfspeech-export` runs) to SavedModel, TFLite (LiteRT, builtin ops only, one WHILE) and TFJS
(Node, `executeAsync`). Each runtime's mel_lengths and durations equal, and its mel is within
1e-4 relative of, the in-process TF decoding (`acoustic_serving(run).in_process()`: Tacotron 2's
TensorArray form, not the preallocated export form) at batch sizes 1 and 3.

Tacotron 2's random gate never fires, so its gate bias is set such that the items of CASES stop
at different steps before `max_decoder_steps` (a runtime that ignores the gate or the per-item
stop cannot pass). DC-TTS's items end at their own steps by its attention.
"""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import audio, text
from tfspeech.export import export_lib, inference_graphs, tflite, tfjs
from tfspeech.inference import synthesize_lib
from tfspeech.models import registry
from tfspeech.models import tacotron2, dctts  # noqa: F401  (registers both)

FLOAT32_RTOL = 1e-4
STEPS = 30  # max_decoder_steps: Tacotron 2 frames, DC-TTS coarse steps
CASES = ([7], [12, 4, 9])
MODELS = ("tacotron2", "dctts")
GATE_GAIN = 300.0


def relative_error(actual, reference):
  error = np.max(np.abs(np.asarray(actual) - reference)) if reference.size else 0.0
  return float(error / max(np.max(np.abs(reference), initial=0.0), 1e-12))


def make_inputs(lengths, noise_channels):
  rng = np.random.default_rng(sum(lengths))
  ids = rng.integers(1, 64, size=(len(lengths), max(lengths))).astype(np.int32)
  for row, length in enumerate(lengths):
    ids[row, length:] = 0
  inputs = {"text_ids": ids, "text_lengths": np.array(lengths, np.int32),
            "max_decoder_steps": np.int32(STEPS)}
  if noise_channels:
    inputs["noise"] = rng.standard_normal(
        (len(lengths), STEPS, noise_channels)).astype(np.float32)
  return inputs


def _stopping_gate_bias(model, noise_channels):
  """A gate bias under which the items of CASES stop at the most distinct steps in (1, STEPS).

  Frames before an item's stop do not read the bias, so its stop under bias b is the first step
  whose bias-free logit exceeds -b; the bias keeps every logit >= 5e-3 from the threshold.
  """
  never = -1e4
  model.gate_layer.bias.assign([never])
  infer = tf.function(lambda ids, lengths, noise: model.infer(ids, lengths, noise,
                                                              max_decoder_steps=STEPS))
  logits = []
  for lengths in CASES:
    inputs = make_inputs(lengths, noise_channels)
    out = infer(inputs["text_ids"], inputs["text_lengths"], inputs["noise"])
    logits.extend(out["gate_logits"].numpy() - never)
  candidates = np.sort(np.unique(-np.array(logits)))
  best = None
  for low, high in zip(candidates[:-1], candidates[1:]):
    if high - low < 1e-2:
      continue  # every logit at least 5e-3 from the threshold
    bias = (low + high) / 2
    stops = [int(np.argmax(row + bias > 0)) + 1 if np.any(row + bias > 0) else STEPS
             for row in logits]
    if 1 < min(stops) and min(stops) < STEPS:
      score = (len(set(stops)), min(stops))  # most distinct stops, then the latest first one
      if best is None or score > best[1]:
        best = (bias, score)
  if best is not None:
    return best[0]
  raise AssertionError("no gate bias separates the items' stops; pick other texts")


DATA_INFO = {"sample_rate": 22050, "hop_length": 256, "n_mels": 80,
             "mel_config": dataclasses.asdict(audio.MelConfig.hifigan()),
             "mel_pad_value": float(np.log(1e-5)), "symbols": text.english_characters().to_dict(),
             "cleaners": ["english_cleaners"], "arpabet": False}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, run_saver, weight_randomizer):
  """model → (workdir, in-memory run), every variable randomized."""
  root = tmp_path_factory.mktemp("looped_runs")
  out = {}
  for seed, model in enumerate(MODELS, start=5):
    tf.keras.utils.set_random_seed(seed)
    modules = registry.get(model)(registry.get(model).presets["tiny"]).build_modules()
    assert weight_randomizer(modules.values(), seed) > 0
    run = inference_graphs.in_memory_run(model, "tiny", modules, DATA_INFO)
    if model == "tacotron2":
      net = run.modules["tacotron2"]
      # The random gate's logits move by ~1e-2 over an utterance; a trained one's by tens.
      net.gate_layer.kernel.assign(net.gate_layer.kernel * GATE_GAIN)
      bias = _stopping_gate_bias(net, net.config.prenet_noise_channels)
      net.gate_layer.bias.assign([bias])
    out[model] = (run_saver(run, str(root / model)), run)
  return out


@pytest.fixture(scope="module")
def references(runs):
  """model → [(inputs, {mel, mel_lengths, durations})] per case, from in-process decoding."""
  out = {}
  for model, (_, run) in runs.items():
    acoustic = synthesize_lib.acoustic_serving(run).in_process()
    decode = tf.function(lambda ids, lengths, noise, steps, acoustic=acoustic:
                         acoustic.synthesize(ids, lengths, noise, max_decoder_steps=steps))
    out[model] = []
    for lengths in CASES:
      inputs = make_inputs(lengths, acoustic.noise_channels)
      result = decode(inputs["text_ids"], inputs["text_lengths"], inputs.get("noise"),
                      inputs["max_decoder_steps"])
      expected = {k: result[k].numpy() for k in ("mel", "mel_lengths", "durations")}
      out[model].append((inputs, expected))
    lengths = np.concatenate([e["mel_lengths"] for _, e in out[model]])
    # Items stop on their own (some before the step limit), at different frames.
    limit = STEPS * (1 if model == "tacotron2" else run.config.model_config.reduction)
    assert np.all(lengths > 0) and len(set(lengths.tolist())) >= 2, (model, lengths)
    assert np.min(lengths) < limit, (model, lengths)
  return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, runs):
  cache = {}

  def get(model, fmt):
    if (model, fmt) not in cache:
      out = str(tmp_path_factory.mktemp(f"{model}_{fmt}") / "export")
      cache[model, fmt] = export_lib.export_workdir(runs[model][0], fmt, out)
    return cache[model, fmt]
  return get


def check(out, expected, where):
  for name in ("mel_lengths", "durations"):
    np.testing.assert_array_equal(out[name], expected[name], err_msg=f"{where} {name}")
  assert out["mel"].shape == expected["mel"].shape, where
  assert relative_error(out["mel"], expected["mel"]) <= FLOAT32_RTOL, where


@pytest.mark.parametrize("model", MODELS)
def test_saved_model_matches_in_process_decoding(model, exported, references):
  signature = tf.saved_model.load(exported(model, "saved_model")["saved_model"]).signatures[
      "text_to_mel"]
  ops = {node.op for f in signature.graph.as_graph_def().library.function for node in f.node_def}
  assert ops & {"While", "StatelessWhile"}, "the decoding loop is traced, not unrolled"
  for inputs, expected in references[model]:
    out = {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}
                                              ).items()}
    check(out, expected, f"saved_model {model} batch {len(inputs['text_lengths'])}")


@pytest.mark.parametrize("model", MODELS)
def test_tflite_matches_in_process_decoding_builtins_only(model, exported, references):
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  path = exported(model, "tflite")["text_to_mel"]
  ops = {op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()}  # pylint: disable=protected-access
  assert "WHILE" in ops and not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
  runner = tflite.TFLiteGraph(path)  # resized to each batch in turn
  for inputs, expected in references[model] + references[model][:1]:
    check(runner(**inputs), expected, f"tflite {model} batch {len(inputs['text_lengths'])}")


# wasm: Tacotron 2's bool reverse runs as int32 (`frozen_graph._int_reverse`, issue #21).
@pytest.mark.parametrize("model,backend", [(m, b) for m in MODELS for b in ("cpu", "wasm")])
def test_tfjs_in_node_matches_in_process_decoding(model, backend, exported, references,
                                                  tfjs_converter, node):
  del tfjs_converter, node  # the converter venv and npm ci
  if backend == "wasm" and tfjs.wasm_backend_missing():
    pytest.skip(f"TFJS wasm backend unavailable: {tfjs.wasm_backend_missing()}")
  folder = exported(model, "tfjs")["text_to_mel"]
  assert os.path.isfile(os.path.join(folder, "model.json"))
  for inputs, expected in references[model]:
    run = tfjs.run_graph_model(folder, inputs, backend=backend)
    assert (run.backend, run.fallback) == (backend, None)
    check(run.outputs, expected, f"tfjs {backend} {model} batch {len(inputs['text_lengths'])}")
