"""DiffWave exported by tfspeech-export (SavedModel, TFLite in LiteRT, TFJS in Node) equals the
in-process vocoder on the same `vocoder_noise`; the binaries vocode and synthesize with it.

The run is a tiny DiffWave trained for 2 steps, then every weight randomized (conftest's
`randomize_weights`: biases, the zero-initialised output projection included), so no
converter path can fold a zero away. Each format is converted once (module fixture) with
`--control=steps=6`. DiffWave as `--vocoder` of an acoustic model in `text_to_audio` is the
generic pairing that tests/export/test_serving_models.py covers with a noisy test vocoder
(every format); here the binaries run the pair.

The runtime schedule (issue #19, `--control=steps=runtime`: vocoder_betas an input, one loop)
is exported once per format too (`schedule_exports`) and checked against in-process vocoding
at two schedules (the fast 6 steps and 3 steps of its own; in LiteRT also the 50-step
training schedule), at two batches in the runtimes that resize.
"""

import concurrent.futures
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile
import tensorflow as tf

from tfspeech import training
from tfspeech.export import export_lib, tflite, tfjs
from tfspeech.inference import vocode_lib
from tfspeech.models import registry, serving
from tfspeech import testing
from tfspeech.testing import grappler_disabled

STEPS = 6
FRAMES = (7, 4)
HOP = 256
# float32 TF vs TFLite / TFJS: the max absolute audio difference (audio is in [-1, 1]).
# Measured ~1e-6; six steps, each dividing by sqrt(alpha) (up to 1.4x), may grow a 1e-7
# kernel difference, and the per-step clip to [-1, 1] can only shrink it.
AUDIO_ATOL = 1e-4


def run_binary(binary, *args):
  """`tfspeech-BINARY ARGS` in a subprocess (its entry point, as the console script)."""
  code = f"from tfspeech.bin import {binary} as b; b.run()"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                        timeout=900, env=env)


@pytest.fixture(scope="module")
def diffwave_dir(tiny_prepared, tmp_path_factory, weight_randomizer, run_saver):
  """A tiny DiffWave run trained 2 steps, every weight then randomized, saved as a workdir."""
  trained = str(tmp_path_factory.mktemp("diffwave_trained"))
  with grappler_disabled():  # optimising a train step that runs twice costs more than it saves
    training.train("diffwave", "tiny", tasks=registry.get, data_dir=tiny_prepared,
                   workdir=trained, overrides={"batch_size": 2, "max_steps": 2,
                                               "eval_every": 0, "summary_every": 0},
                   progress=False, handle_signals=False)
  run = training.load_run(trained, tasks=registry.get)
  assert run.step == 2
  assert weight_randomizer(run.modules.values(), seed=7) == len(
      [v for m in run.modules.values() for v in m.variables])
  return run_saver(run, str(tmp_path_factory.mktemp("diffwave_random")))


@pytest.fixture(scope="module")
def vocoder(diffwave_dir):
  run = training.load_run(diffwave_dir, tasks=registry.get)
  return serving.build_serving(run.task, run.modules, run.config.data_info)


@pytest.fixture(scope="module")
def inputs(vocoder):
  rng = np.random.default_rng(3)
  mel = rng.normal(-5.0, 2.0, (len(FRAMES), max(FRAMES), vocoder.n_mels)).astype(np.float32)
  mel_lengths = np.array(FRAMES, np.int32)
  noise = rng.standard_normal(
      (len(FRAMES), max(FRAMES) * HOP, vocoder.noise_channels)).astype(np.float32)
  return {"mel": mel, "mel_lengths": mel_lengths, "vocoder_noise": noise}


@pytest.fixture(scope="module")
def expected(vocoder, inputs):
  """The in-process vocoder (its `tf.while_loop` form) on the same inputs."""
  looped = vocoder.in_process()
  out = tf.function(lambda m, l, n: looped.vocode(m, l, n, steps=STEPS))(
      inputs["mel"], inputs["mel_lengths"], inputs["vocoder_noise"])
  audio = out["audio"].numpy()
  # Not silence: a comparison of zeros could not fail.
  assert np.abs(audio[0, :FRAMES[0] * HOP]).mean() > 0.05
  assert np.all(audio[1, FRAMES[1] * HOP:] == 0)
  return {"audio": audio, "audio_lengths": out["audio_lengths"].numpy()}


@pytest.fixture(scope="module")
def exports(diffwave_dir, tmp_path_factory):
  """tfspeech-export --workdir=DIFFWAVE --control=steps=6 to every format (TFJS: a
  ConverterUnavailable error in place of the folder when its converter is not installed)."""
  return testing.export_every_format(run_binary, tmp_path_factory.mktemp("diffwave_exports"),
                                     f"--workdir={diffwave_dir}", f"--control=steps={STEPS}")


def check(out, expected, where):
  np.testing.assert_array_equal(out["audio_lengths"], expected["audio_lengths"], err_msg=where)
  error = float(np.max(np.abs(out["audio"] - expected["audio"])))
  print(f"{where}: max |audio - in-process| = {error:.3g}")
  assert error <= AUDIO_ATOL, (where, error)


def test_saved_model_equals_in_process(exports, inputs, expected, vocoder):
  loaded = tf.saved_model.load(str(exports["saved_model"]))
  out = loaded.signatures["mel_to_audio"](**{k: tf.constant(v) for k, v in inputs.items()})
  check({k: v.numpy() for k, v in out.items()}, expected, "saved_model")
  # mel_to_audio_seeded draws the noise as tfspeech-vocode does for the same seed pairs.
  seeds = np.array([[3, 0], [3, 1]], np.int32)
  seeded = loaded.signatures["mel_to_audio_seeded"](
      mel=tf.constant(inputs["mel"]), mel_lengths=tf.constant(inputs["mel_lengths"]),
      noise_seeds=tf.constant(seeds))
  in_process = vocode_lib.Vocoder.for_serving(vocoder, {"steps": STEPS})
  audio, _ = in_process.vocode(inputs["mel"], inputs["mel_lengths"], seeds)
  check({"audio": seeded["audio"].numpy(), "audio_lengths": seeded["audio_lengths"].numpy()},
        {"audio": audio.numpy(), "audio_lengths": expected["audio_lengths"]}, "seeded")


def test_tflite_in_litert_equals_in_process(exports, inputs, expected):
  out = tflite.TFLiteGraph(str(exports["tflite"] / "mel_to_audio.tflite"))(**inputs)
  check(out, expected, "tflite")


def test_tfjs_in_node_equals_in_process(exports, inputs, expected, node):
  if isinstance(exports["tfjs"], Exception):
    pytest.skip(f"TFJS converter unavailable: {exports['tfjs']}")
  for backend in ("cpu", "wasm"):
    run = tfjs.run_graph_model(str(exports["tfjs"] / "mel_to_audio"), inputs, backend=backend)
    check(run.outputs, expected, f"tfjs {backend}")


def test_vocode_and_synthesize_binaries_write_wavs(tiny_prepared, tiny_grad_tts_run,
                                                   diffwave_dir, run_saver, tmp_path):
  out = tmp_path / "vocoded"
  acoustic_dir = run_saver(tiny_grad_tts_run, str(tmp_path / "grad_tts"))
  spoken = tmp_path / "spoken"
  # Both binaries at once: each is mostly a single-threaded start-up and trace.
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    vocoded = pool.submit(run_binary, "vocode", f"--workdir={diffwave_dir}",
                          f"--mels={tiny_prepared}", f"--out={out}", "--control=steps=6")
    synthesized = pool.submit(run_binary, "synthesize", f"--workdir={acoustic_dir}",
                              f"--vocoder={diffwave_dir}", "--text=Hi there.",
                              f"--out={spoken}", "--control=n_timesteps=2",
                              "--vocoder_control=steps=6")
  result = vocoded.result()
  assert result.returncode == 0, result.stderr[-3000:]
  wavs = sorted(glob.glob(str(out / "*.wav")))
  assert wavs
  rate, audio = scipy.io.wavfile.read(wavs[0])
  assert rate == 22050 and audio.size > 0 and np.abs(audio).max() > 0
  result = synthesized.result()
  assert result.returncode == 0, result.stderr[-3000:]
  wavs = sorted(glob.glob(str(spoken / "*.wav")))
  assert len(wavs) == 1
  rate, audio = scipy.io.wavfile.read(wavs[0])
  assert rate == 22050 and audio.size > 0 and np.abs(audio).max() > 0


# --------------------------------------------------------------------------- runtime schedule
# Issue #19: `--control=steps=runtime` exports one looped graph whose reverse schedule is the
# input vocoder_betas (any number of steps). Each runtime must give, for the fast schedule
# passed as betas, the audio of in-process `steps=6` (the `expected` fixture), and for a
# 3-step schedule of its own the in-process loop's audio on the same betas.

THREE_STEPS = (1e-3, 0.05, 0.4)
# A second batch (one item, another length) for the runners that resize their inputs.
SECOND_FRAMES = (5,)


@pytest.fixture(scope="module")
def schedule_exports(diffwave_dir, tmp_path_factory):
  """`export_workdir(..., controls={"steps": "runtime"})` (what tfspeech-export
  --control=steps=runtime runs) per format; TFJS: the ConverterUnavailable error instead."""
  root = tmp_path_factory.mktemp("diffwave_schedule")
  out = {}
  for fmt in ("saved_model", "tflite", "tfjs"):
    try:
      out[fmt] = export_lib.export_workdir(diffwave_dir, fmt, str(root / fmt),
                                           controls={"steps": "runtime"})
    except tfjs.ConverterUnavailable as error:
      out[fmt] = error
  return out


@pytest.fixture(scope="module")
def schedule_cases(vocoder, inputs, expected):
  """[(where, inputs with vocoder_betas, expected)]: both schedules on the module's batch,
  and the 3-step one on a batch of one item of another length."""
  looped = vocoder.in_process()
  run = tf.function(lambda m, l, n, b: looped.vocode(m, l, n, steps="runtime", betas=b))
  rng = np.random.default_rng(4)
  second = {"mel": rng.normal(-5.0, 2.0, (1, SECOND_FRAMES[0], vocoder.n_mels)).astype(
                np.float32),
            "mel_lengths": np.array(SECOND_FRAMES, np.int32),
            "vocoder_noise": rng.standard_normal(
                (1, SECOND_FRAMES[0] * HOP, vocoder.noise_channels)).astype(np.float32)}
  fast = np.array(vocoder.config.schedule(STEPS), np.float32)
  cases = [("fast schedule, batch 2", dict(inputs, vocoder_betas=fast), expected)]
  for batch in (inputs, second):
    three = dict(batch, vocoder_betas=np.array(THREE_STEPS, np.float32))
    out = run(*(three[k] for k in ("mel", "mel_lengths", "vocoder_noise", "vocoder_betas")))
    reference = {k: v.numpy() for k, v in out.items()}
    # Not the fast schedule's audio: a graph ignoring its betas input could not pass.
    if batch is inputs:
      assert np.abs(reference["audio"] - expected["audio"]).max() > 0.1
    cases.append((f"3 steps, batch {len(batch['mel_lengths'])}", three, reference))
  return cases


def test_schedule_saved_model_loops_over_its_betas_input(schedule_exports, schedule_cases):
  folder = schedule_exports["saved_model"]["saved_model"]
  loaded = tf.saved_model.load(folder)
  signature = loaded.signatures["mel_to_audio"]
  ops = {n.op for f in signature.graph.as_graph_def().library.function for n in f.node_def}
  assert ops & {"While", "StatelessWhile"}, "the reverse process is unrolled, not a loop"
  for where, case, reference in schedule_cases:
    out = signature(**{k: tf.constant(v) for k, v in case.items()})
    check({k: v.numpy() for k, v in out.items()}, reference, f"saved_model {where}")
  # The seeded signature takes the betas too.
  assert "vocoder_betas" in loaded.signatures["mel_to_audio_seeded"].structured_input_signature[1]
  # The graph checks what the converters cannot (TFLite and TFJS drop Assert ops).
  case = schedule_cases[0][1]
  for betas, message in (([], "schedule is empty"), ([0.1, 0.0], "must be in \\(0, 1\\)"),
                         ([0.5, 1.0], "must be in \\(0, 1\\)")):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
      signature(**{k: tf.constant(v) for k, v in dict(
          case, vocoder_betas=np.array(betas, np.float32)).items()})
  with open(os.path.join(folder, "metadata.json"), encoding="utf-8") as f:
    controls = json.load(f)["vocoder_controls"]
  assert controls["steps"]["value"] == "runtime" and controls["steps"]["replaced_by"] == "betas"
  assert controls["betas"]["input"] == "vocoder_betas" and controls["betas"]["shape"] == [None]
  assert np.allclose(controls["betas"]["recommended"], schedule_cases[0][1]["vocoder_betas"])


def test_schedule_tflite_is_one_builtin_while_in_litert(schedule_exports, schedule_cases,
                                                        exports, vocoder, inputs):
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  path = schedule_exports["tflite"]["mel_to_audio"]
  ops = [op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()]  # pylint: disable=protected-access
  assert ops.count("WHILE") == 1 and not [o for o in ops if o.startswith("Flex") or o == "CUSTOM"]
  unrolled = exports["tflite"] / "mel_to_audio.tflite"
  print(f"mel_to_audio.tflite: runtime schedule {os.path.getsize(path) / 1e6:.2f} MB, "
        f"unrolled {STEPS} steps {os.path.getsize(unrolled) / 1e6:.2f} MB")
  runner = tflite.TFLiteGraph(path)  # resized to each case's batch and length in turn
  for where, case, reference in schedule_cases + schedule_cases[:1]:
    check(runner(**case), reference, f"tflite {where}")
  # The training schedule as betas: each step aligns to its own training step, so the audio
  # is in-process steps=50's.
  looped = vocoder.in_process()
  full = tf.function(lambda m, l, n: looped.vocode(m, l, n, steps=50))(
      inputs["mel"], inputs["mel_lengths"], inputs["vocoder_noise"])
  betas = np.array(vocoder.config.schedule(50), np.float32)
  check(runner(vocoder_betas=betas, **inputs), {k: v.numpy() for k, v in full.items()},
        "tflite training schedule (50 steps)")


def test_schedule_tfjs_in_node_runs_the_loop(schedule_exports, schedule_cases, node):
  if isinstance(schedule_exports["tfjs"], Exception):
    pytest.skip(f"TFJS converter unavailable: {schedule_exports['tfjs']}")
  folder = schedule_exports["tfjs"]["mel_to_audio"]
  # One Node run per schedule (each costs a Node start-up), the two backends between them.
  second = "cpu" if tfjs.wasm_backend_missing() else "wasm"
  for backend, (where, case, reference) in zip(("cpu", second), schedule_cases[:2]):
    run = tfjs.run_graph_model(folder, case, backend=backend)
    assert run.backend == backend and run.outputs["audio"].shape == reference["audio"].shape
    check(run.outputs, reference, f"tfjs {backend} {where}")
