"""DC-TTS against its PyTorch transcription (benchmarks/torch_reference/dctts.py): parameter
counts equal for both presets and every conv-type / alpha / norm option, Text2Mel (teacher
forced and decoding) and SSRN equal with copied weights. Skipped without torch."""
import importlib
import importlib.util
import pathlib
import sys

import keras
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

torch_dctts = importlib.import_module("benchmarks.torch_reference.dctts")

# pylint: disable=wrong-import-position
from tfspeech.models import dctts  # noqa: E402
from tfspeech.models.dctts import SSRN, Text2Mel  # noqa: E402

# Each option once, paired to keep the suite short (plain + layer norm is "plain").
OPTIONS = {"plain": {}, "separable_batch": {"conv_type": "separable", "norm": "batch"},
           "grouped": {"conv_type": "grouped", "conv_groups": 4},
           "alpha_none": {"alpha": 1.5, "norm": "none"}}
TEXT = [5, 9, 12, 30, 7, 44, 21, 3, 17]


def _count(model):
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _counts(config):
  return ((_count(Text2Mel(config)), _count(SSRN(config))),
          (torch_dctts.count_parameters(torch_dctts.Text2Mel(config)),
           torch_dctts.count_parameters(torch_dctts.SSRN(config))))


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_tiny_parameter_counts_equal_the_reference(name):
  ours, theirs = _counts(dctts.tiny(**OPTIONS[name]))
  assert ours == theirs


def test_paper_parameter_counts_equal_the_reference():
  ours, theirs = _counts(dctts.ljspeech())
  assert ours == theirs
  assert ours[0] > 1_000_000 and ours[1] > 1_000_000


def _randomise(models, seed):
  """Random weights everywhere (norm scales and BatchNorm statistics too), so a transposed
  kernel or a swapped norm cannot hide behind an init of ones / zeros."""
  rng = np.random.default_rng(seed)
  for model in models:
    for variable in model.weights:
      if "moving_variance" in variable.path:
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(np.float32))
      else:
        scale = 0.3 if len(variable.shape) > 1 else 0.1
        offset = 1.0 if "gamma" in variable.path else 0.0
        variable.assign((offset + rng.normal(0, scale, variable.shape)).astype(np.float32))


@pytest.mark.parametrize("name", ["plain", "separable_batch", "grouped"])
def test_networks_equal_the_reference_with_copied_weights(name):
  config = dctts.tiny(**OPTIONS[name])
  keras.utils.set_random_seed(2)
  text2mel, ssrn = Text2Mel(config), SSRN(config)
  _randomise([text2mel, ssrn], 3)
  ref_t2m = torch_dctts.load_text2mel_weights(torch_dctts.Text2Mel(config), text2mel).eval()
  ref_ssrn = torch_dctts.load_ssrn_weights(torch_dctts.SSRN(config), ssrn).eval()
  rng = np.random.default_rng(4)
  frames = 7
  mels = rng.uniform(0, 1, [1, frames, config.n_mels]).astype(np.float32)
  ids, lengths = tf.constant([TEXT]), tf.constant([len(TEXT)])
  ours = text2mel.teacher_forced(ids, lengths, tf.constant(mels))
  ours_ssrn = ssrn(tf.constant(mels), tf.constant([frames]))
  torch_ids, torch_lengths = torch.tensor([TEXT]), torch.tensor([len(TEXT)])
  torch_mels = torch.from_numpy(np.ascontiguousarray(mels.transpose(0, 2, 1)))
  with torch.no_grad():
    logits, alignments = ref_t2m(torch_ids, torch_lengths, torch_mels)
    magnitudes = ref_ssrn(torch_mels)
  assert np.abs(ours["logits"].numpy()).max() > 0.1
  # Random weights give logits in the hundreds (no norm bounds them with "batch"): tolerances
  # relative to the largest value; a transposed kernel or a swapped norm differs by O(1).
  np.testing.assert_allclose(ours["logits"][0], logits[0].numpy().T,
                             atol=1e-4 * max(1.0, np.abs(ours["logits"].numpy()).max()))
  np.testing.assert_allclose(ours["alignments"][0], alignments[0].numpy(), atol=2e-5)
  assert ours_ssrn.shape[1] == frames * config.reduction
  np.testing.assert_allclose(ours_ssrn[0], magnitudes[0].numpy().T,
                             atol=1e-3 * np.abs(ours_ssrn.numpy()).max())


def test_decoding_equals_the_reference_with_copied_weights():
  """Free decoding of two items (chunks of 2 frames, forcibly incremental attention, per-item
  end) gives the same frames, lengths and attention."""
  config = dctts.tiny(chunk_size=2, end_frames=1)
  keras.utils.set_random_seed(5)
  text2mel = Text2Mel(config)
  _randomise([text2mel], 6)
  reference = torch_dctts.load_text2mel_weights(torch_dctts.Text2Mel(config), text2mel).eval()
  texts = [TEXT, TEXT[:4]]
  ids = np.zeros([2, len(TEXT)], np.int32)
  for row, text in enumerate(texts):
    ids[row, :len(text)] = text
  lengths = np.array([len(t) for t in texts], np.int32)
  ours = text2mel.infer(tf.constant(ids), tf.constant(lengths), max_decoder_steps=12)
  with torch.no_grad():
    mels, torch_lengths, alignments = reference.inference(
        torch.from_numpy(ids).long(), torch.from_numpy(lengths).long(), 12)
  np.testing.assert_array_equal(ours["lengths"], torch_lengths.numpy())
  assert ours["lengths"].numpy().min() < ours["lengths"].numpy().max()  # one ended early
  np.testing.assert_allclose(ours["mel"], mels.numpy().transpose(0, 2, 1), atol=1e-4)
  np.testing.assert_allclose(ours["alignments"], alignments.numpy(), atol=1e-4)


def test_reference_train_steps_run():
  config = dctts.tiny()
  torch.manual_seed(0)
  text2mel = torch_dctts.TrainStep(config, "text2mel")
  loss = text2mel(text=torch.tensor([TEXT]), text_lengths=torch.tensor([len(TEXT)]),
                  mels=torch.rand(1, 80, 6), lengths=torch.tensor([6]))
  ssrn = torch_dctts.TrainStep(config, "ssrn")
  loss_ssrn = ssrn(mels=torch.rand(1, 80, 6), magnitudes=torch.rand(1, 513, 24),
                   lengths=torch.tensor([24]))
  assert np.isfinite(loss) and loss > 0 and np.isfinite(loss_ssrn) and loss_ssrn > 0
