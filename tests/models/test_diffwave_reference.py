"""DiffWave against its PyTorch transcription (benchmarks/torch_reference/diffwave.py):
parameter counts equal for every preset, the network equal with copied weights, and the
reverse process equal to the reference's `predict` with the same noise. Skipped without torch."""
import importlib
import importlib.util
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

if importlib.util.find_spec("torch") is None:
  pytest.skip("torch is not installed (optional: the benchmarks' PyTorch baselines)",
              allow_module_level=True)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
  sys.path.append(str(REPO_ROOT))
importlib.import_module("benchmarks.torch_reference")  # OMP passive waiting, before torch
import torch  # noqa: E402  pylint: disable=wrong-import-position

torch_diffwave = importlib.import_module("benchmarks.torch_reference.diffwave")

# pylint: disable=wrong-import-position
from tfspeech.models.diffwave import diffwave_presets  # noqa: E402
from tfspeech.models.diffwave.diffwave_model import build_model  # noqa: E402
from tfspeech.models.diffwave.diffwave_serving import DiffWaveServing  # noqa: E402

HOP = 256


def _count(model):
  return sum(int(np.prod(w.shape)) for w in model.weights)


@pytest.mark.parametrize("name", sorted(diffwave_presets.PRESETS))
def test_parameter_counts_equal_the_reference(name):
  config = diffwave_presets.get_preset(name)
  reference = torch_diffwave.DiffWave(torch_diffwave.params_from_tfspeech(config))
  assert _count(build_model(config)) == torch_diffwave.count_parameters(reference)


def test_base_has_the_reference_parameter_count():
  # lmnt-com/diffwave's default params: 2,619,971 (the "2.64M" quoted about it is rounded
  # from a different count; this is the sum of its layers, checked against torch above).
  reference = torch_diffwave.DiffWave(torch_diffwave.Params())
  assert torch_diffwave.count_parameters(reference) == 2_619_971
  assert _count(build_model(diffwave_presets.get_preset("base"))) == 2_619_971


@pytest.fixture(scope="module")
def models():
  config = diffwave_presets.get_preset("tiny")
  tf_model = build_model(config)
  rng = np.random.default_rng(7)
  for variable in tf_model.weights:
    scale = 0.3 if len(variable.shape) > 1 else 0.1
    variable.assign(rng.normal(0, scale, size=variable.shape).astype(np.float32))
  reference = torch_diffwave.DiffWave(torch_diffwave.params_from_tfspeech(config))
  return tf_model, torch_diffwave.load_tfspeech_weights(reference, tf_model).eval()


def test_network_equals_the_reference_with_copied_weights(models):
  tf_model, reference = models
  rng = np.random.default_rng(8)
  mel = rng.normal(-4, 1.5, size=(2, 6, 80)).astype(np.float32)
  audio = rng.uniform(-1, 1, size=(2, 6 * HOP)).astype(np.float32)
  for step in ([3, 41], [2.25, 17.5]):  # integer rows and the fractional (lerp) path
    expected = tf_model((audio, tf.constant(step), mel)).numpy()
    steps = torch.tensor(step, dtype=torch.int64 if isinstance(step[0], int) else torch.float32)
    with torch.no_grad():
      actual = reference(torch.from_numpy(audio), steps,
                         torch.from_numpy(np.ascontiguousarray(mel.transpose(0, 2, 1))))
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(actual.numpy()[:, 0], expected, atol=1e-4 * np.abs(expected).max())


def test_fast_reverse_process_equals_the_reference_predict(models):
  tf_model, reference = models
  rng = np.random.default_rng(9)
  frames, steps = 4, 6
  mel = rng.normal(-4, 1.5, size=(2, frames, 80)).astype(np.float32)
  # One channel per draw: draw 0 is the starting audio, draw k the noise of step n = S - k.
  noise = rng.normal(size=(2, frames * HOP, steps)).astype(np.float32)
  vocoder = DiffWaveServing(tf_model)
  expected = vocoder.vocode(mel, tf.constant([frames, frames]), noise, steps=steps)["audio"]
  with torch.no_grad():
    actual = torch_diffwave.predict(
        reference, torch.from_numpy(np.ascontiguousarray(mel.transpose(0, 2, 1))),
        fast_sampling=True, audio=torch.from_numpy(noise[:, :, 0].copy()),
        noises={n: torch.from_numpy(noise[:, :, steps - n].copy()) for n in range(1, steps)})
  assert np.abs(expected.numpy()).max() > 0.1
  np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=2e-4)


def test_reference_alignment_equals_tfspeech():
  from tfspeech.models.diffwave import diffusion  # pylint: disable=import-outside-toplevel
  config = diffwave_presets.get_preset("base")
  np.testing.assert_allclose(
      diffusion.aligned_steps(tf.constant(config.inference_noise_schedule),
                              config.noise_schedule).numpy(),
      torch_diffwave.aligned_steps(config.noise_schedule, config.inference_noise_schedule),
      rtol=1e-5, atol=1e-4)


def test_reference_tiny_train_step_runs():
  params = torch_diffwave.params_from_tfspeech(diffwave_presets.get_preset("tiny"))
  torch.manual_seed(0)
  step = torch_diffwave.TrainStep(params)
  loss = step(torch.rand(2, 8 * HOP) - 0.5, torch.randn(2, 80, 8))
  assert np.isfinite(loss) and loss > 0
