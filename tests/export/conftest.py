"""Shared fixtures of the export tests: tiny runs with trained-like weights, the TFJS converter
and Node.

Every export test exports weights like a trained model's: `randomize_weights` perturbs EVERY
float variable, biases, norm offsets and zero-initialised gates included. Freshly built
modules have all-zero biases, which freezing folds away, so a converter path that only a
non-zero bias takes (TFJS fusing a conv with a rank-4 bias constant, which the wasm backend
rejects, issue #16) went untested.
"""

import dataclasses
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import audio, text
from tfspeech.testing import randomize_weights
from tfspeech.export import inference_graphs, tfjs
from tfspeech.models import registry
from tfspeech.training import checkpoints as checkpoints_lib
from tfspeech.training import config as config_lib

N_TIMESTEPS = 2
# The random tiny generator's conv_post gain is N(0, 0.01): its audio is ~1e-6. A larger
# gain makes "the page produced non-silent audio" a meaningful check.
AUDIBLE_GAIN = 3000.0


def data_info() -> dict:
  """What a tiny grad_tts run on an english_characters corpus records."""
  return {"sample_rate": 22050, "hop_length": 256, "n_mels": 80,
          "mel_config": dataclasses.asdict(audio.MelConfig.hifigan()),
          "mel_pad_value": float(np.log(1e-5)), "symbols": text.english_characters().to_dict(),
          "cleaners": ["english_cleaners"], "arpabet": False, "add_blank": True,
          "blank_id": 64}


def make_run(model: str, seed: int):
  """An in-memory `LoadedRun` of the tiny preset, every weight randomized (`randomize_weights`)."""
  tf.keras.utils.set_random_seed(seed)
  task = registry.get(model)(registry.get(model).presets["tiny"])
  modules = task.build_modules()
  randomize_weights(modules.values(), seed)
  if model == "hifigan":
    gain = modules["generator"].conv_post.kernel_g
    gain.assign(gain * AUDIBLE_GAIN)
  return inference_graphs.in_memory_run(model, "tiny", modules, data_info())


def save_run(run, workdir: str) -> str:
  """Writes `run` as a training workdir (config.json + checkpoint) for `load_run`."""
  config_lib.write_run_config(workdir, run.config)
  checkpoint = tf.train.Checkpoint(modules=checkpoints_lib.modules_checkpoint(run.modules),
                                   step=tf.Variable(run.step, dtype=tf.int64))
  checkpoint.save(os.path.join(workdir, checkpoints_lib.CHECKPOINT_DIR, "ckpt"))
  return workdir


@pytest.fixture(scope="session")
def n_timesteps():
  """Grad-TTS decoder steps unrolled in every test export."""
  return N_TIMESTEPS


@pytest.fixture(scope="session")
def run_saver():
  """`save_run(run, workdir)`: writes an in-memory run as a training workdir."""
  return save_run


@pytest.fixture(scope="session")
def weight_randomizer():
  """`randomize_weights(layers, seed)`: trained-like weights for modules a test builds itself."""
  return randomize_weights


@pytest.fixture(scope="session")
def acoustic_run():
  import tfspeech.models.grad_tts  # pylint: disable=import-outside-toplevel,unused-import
  return make_run("grad_tts", seed=1)


@pytest.fixture(scope="session")
def vocoder_run():
  import tfspeech.models.hifigan  # pylint: disable=import-outside-toplevel,unused-import
  return make_run("hifigan", seed=2)


@pytest.fixture(scope="session")
def fastpitch_run():
  """An in-memory tiny FastPitch run with pitch statistics (`run.config.data_info`), every
  weight randomized; the FastPitch export tests' model and the streaming page's."""
  import tfspeech.models.fastpitch  # pylint: disable=import-outside-toplevel,unused-import
  info = {key: value for key, value in data_info().items()
          if key not in ("add_blank", "blank_id")}
  info["pitch_stats"] = {"mean": 180.0, "std": 45.0}
  tf.keras.utils.set_random_seed(4)
  task_class = registry.get("fastpitch")
  modules = task_class(task_class.presets["tiny"]).build_modules()
  assert randomize_weights(modules.values(), seed=4) > 0
  # An untrained duration predictor gives ~0.3 frames per token; a trained one several. Its
  # output bias shifted by log(1 + 3) gives utterance-like mels (durations still vary).
  bias = modules["fastpitch"].duration_predictor.fc.bias
  bias.assign(bias + np.log1p(3.0))
  return inference_graphs.in_memory_run("fastpitch", "tiny", modules, info)


@pytest.fixture(scope="session")
def tfjs_converter():
  """tensorflowjs_converter from its own virtualenv (created once: ~2 min, ~3 GB)."""
  start = time.perf_counter()
  try:
    executable = tfjs.converter_executable()
  except tfjs.ConverterUnavailable as error:
    pytest.skip(f"TFJS converter unavailable, skipping TFJS tests: {error}")
  print(f"tfjs converter ready in {time.perf_counter() - start:.1f} s: {executable}")
  return executable


@pytest.fixture(scope="session")
def node():
  try:
    return tfjs.ensure_node_modules()
  except tfjs.NodeUnavailable as error:
    pytest.skip(f"Node/npm unavailable, skipping TFJS runtime tests: {error}")


@pytest.fixture(scope="session")
def tfjs_text_to_audio(tmp_path_factory, acoustic_run, vocoder_run, tfjs_converter):
  """A float32 TFJS export holding only text_to_audio (+ metadata.json): one conversion."""
  out = str(tmp_path_factory.mktemp("tfjs") / "export")
  paths = tfjs.export_run(acoustic_run, vocoder_run, out, {"n_timesteps": N_TIMESTEPS},
                          converter=tfjs_converter, graphs=[inference_graphs.TEXT_TO_AUDIO])
  return out, paths
