"""DiffWave exported by tfspeech-export (SavedModel, TFLite in LiteRT, TFJS in Node) equals the
in-process vocoder on the same `vocoder_noise`; the binaries vocode and synthesize with it.

The run is a tiny DiffWave trained for 2 steps, then every weight randomized (conftest's
`randomize_weights`: biases, the zero-initialised output projection included), so no
converter path can fold a zero away. Each format is converted once (module fixture) with
`--control=steps=6`. DiffWave as `--vocoder` of an acoustic model in `text_to_audio` is the
generic pairing that tests/export/test_serving_models.py covers with a noisy test vocoder
(every format); here the binaries run the pair.
"""

import concurrent.futures
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from tfspeech import training
from tfspeech.export import tflite, tfjs
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
# A prototype of issue #19's runtime schedule (not yet a tfspeech-export graph, and not yet
# convertible, see `schedule_tflite`): `vocode_schedule` with the betas an input, one network
# copy in a loop.


def schedule_tflite(vocoder, directory):
  """`vocode_schedule` (betas float32 [None] an input) frozen, saved and converted to TFLite
  builtins, where the loop would become TFLite's builtin WHILE.

  What is missing (issue #19): `diffusion.reverse_coefficients` / `aligned_steps` use
  tf.math.cumprod and a new-axis slice, which the converter has no builtin for once the
  betas are an input (a cumsum of logs and `frozen_graph.make_converter_friendly` would do);
  then tfspeech-export needs a vector control (`betas`, shape [None]) in `serving.Control`,
  a vocoder's opt-in to a looped graph (`frozen_graph.freeze` refuses nested functions; the
  While's body and condition must stay functions), and `executeAsync` in
  export/js/run_graph_model.js (tfjs runs control flow only asynchronously)."""
  looped = vocoder.in_process()
  schedule = tf.function(
      lambda mel, mel_lengths, vocoder_noise, vocoder_betas: looped.vocode_schedule(
          mel, mel_lengths, vocoder_noise, vocoder_betas),
      input_signature=[tf.TensorSpec([None, None, vocoder.n_mels], tf.float32, name="mel"),
                       tf.TensorSpec([None], tf.int32, name="mel_lengths"),
                       tf.TensorSpec([None, None, vocoder.noise_channels], tf.float32,
                                     name="vocoder_noise"),
                       tf.TensorSpec([None], tf.float32, name="vocoder_betas")])
  saved = str(directory / "saved_model")
  # Frozen first: the converter cannot freeze variables read inside a While body (it aborts).
  frozen = convert_variables_to_constants_v2(schedule.get_concrete_function())
  tf.saved_model.save(tf.Module(), saved, signatures={"mel_to_audio_schedule": frozen})
  path = str(directory / "mel_to_audio_schedule.tflite")
  with open(path, "wb") as f:
    f.write(tflite.convert_saved_model(saved, "mel_to_audio_schedule"))
  return path


@pytest.mark.xfail(raises=ValueError, strict=True,
                   reason="issue #19: Cumprod and a new-axis slice have no TFLite builtin "
                          "once the betas are an input (see schedule_tflite)")
def test_runtime_schedule_runs_as_a_tflite_while_loop(vocoder, inputs, tmp_path):
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  path = schedule_tflite(vocoder, tmp_path)
  interpreter = Interpreter(model_path=path)
  ops = {op["op_name"] for op in interpreter._get_ops_details()}  # pylint: disable=protected-access
  assert "WHILE" in ops and not any(op.startswith("Flex") or op == "CUSTOM" for op in ops)
  runner = tflite.TFLiteGraph(path)
  looped = vocoder.in_process()
  for steps in (6, 50):
    betas = np.array(vocoder.config.schedule(steps), np.float32)
    out = runner(vocoder_betas=betas, **inputs)
    expected = tf.function(lambda m, l, n, s=steps: looped.vocode(m, l, n, steps=s))(
        inputs["mel"], inputs["mel_lengths"], inputs["vocoder_noise"])
    check(out, {k: v.numpy() for k, v in expected.items()}, f"tflite while, {steps} steps")
