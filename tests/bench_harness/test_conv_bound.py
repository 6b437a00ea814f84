"""benchmarks/conv_bound.py: the recorded convolutions, their FLOPs and both replays."""
import importlib
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
  sys.path.append(str(REPO_ROOT))  # at the end: the installed tfspeech still wins
conv_bound = importlib.import_module("benchmarks.conv_bound")
flops = importlib.import_module("benchmarks.flops")


# One of each kind the Grad-TTS reference has: a "same" Conv1d, the U-Net's stride-2
# Downsample and 4x4 stride-2 Upsample, and a 1x1 conv without bias, as the hooks record them.
CALLS = [("Conv1d", (2, 4, 10), (6, 4, 3), (1,), (1,), True),
         ("Conv2d", (2, 3, 8, 12), (5, 3, 3, 3), (2, 2), (1, 1), True),
         ("ConvTranspose2d", (2, 5, 4, 6), (5, 5, 4, 4), (2, 2), (1, 1), True),
         ("Conv2d", (2, 5, 8, 12), (7, 5, 1, 1), (1, 1), (0, 0), False)]


def _recorded():
  torch = pytest.importorskip("torch")

  class Convolutions(torch.nn.Module):

    def __init__(self):
      super().__init__()
      self.conv1d = torch.nn.Conv1d(4, 6, 3, padding=1)
      self.down = torch.nn.Conv2d(3, 5, 3, 2, 1)
      self.up = torch.nn.ConvTranspose2d(5, 5, 4, 2, 1)
      self.pointwise = torch.nn.Conv2d(5, 7, 1, bias=False)

    def forward(self, sequence, image):
      return self.conv1d(sequence), self.pointwise(self.up(self.down(image)))

  torch.manual_seed(0)
  module = Convolutions()
  sequence, image = torch.randn(2, 4, 10), torch.randn(2, 3, 8, 12)
  with torch.no_grad():
    calls = conv_bound.record_convolutions(module, lambda: module(sequence, image))
  return module, calls


def test_hooks_record_each_call_once():
  torch = pytest.importorskip("torch")
  module, calls = _recorded()
  assert calls == CALLS
  with torch.no_grad():  # the hooks are gone: another call records nothing more
    module(torch.zeros(1, 4, 5), torch.zeros(1, 3, 8, 8))
  assert len(calls) == len(CALLS)


def test_flops_of_the_calls_match_tf_graph_counts():
  # The same calls in TF, counted from the traced graph by benchmarks/flops.py.
  rng = np.random.default_rng(0)
  total = 0
  for kind, x_shape, w_shape, stride, padding, _ in CALLS:
    x, w = conv_bound.tf_layout(kind, rng.standard_normal(x_shape, dtype=np.float32),
                                rng.standard_normal(w_shape, dtype=np.float32))
    total += flops.count_call(
        tf.function(lambda x, w, k=kind, s=stride, p=padding, ws=w_shape:  # noqa: E731
                    conv_bound.tf_convolution(k, x, w, None, s, p, ws)),
        tf.constant(x), tf.constant(w)).flops
  assert conv_bound.convolution_flops(CALLS) == total == (
      2 * 2 * 10 * 6 * 4 * 3 + 2 * 2 * 4 * 6 * 5 * 3 * 9 + 2 * 2 * 5 * 4 * 6 * 5 * 16
      + 2 * 2 * 8 * 12 * 7 * 5)


def test_tf_layout_convolutions_are_the_reference_calls():
  torch = pytest.importorskip("torch")
  module, calls = _recorded()
  rng = np.random.default_rng(1)
  layers = {("Conv1d", (2, 4, 10)): module.conv1d, ("Conv2d", (2, 3, 8, 12)): module.down,
            ("ConvTranspose2d", (2, 5, 4, 6)): module.up, ("Conv2d", (2, 5, 8, 12)): module.pointwise}
  for kind, x_shape, w_shape, stride, padding, bias in calls:
    layer = layers[kind, x_shape]
    x = rng.standard_normal(x_shape, dtype=np.float32)
    with torch.no_grad():
      expected = layer(torch.from_numpy(x)).numpy()
    tf_x, tf_w = conv_bound.tf_layout(kind, x, layer.weight.detach().numpy())
    b = tf.constant(layer.bias.detach().numpy()) if bias else None
    got = conv_bound.tf_convolution(kind, tf.constant(tf_x), tf.constant(tf_w), b, stride,
                                    padding, w_shape).numpy()
    back = (0, 2, 1) if kind == "Conv1d" else (0, 3, 2, 1)
    np.testing.assert_allclose(np.transpose(got, back), expected, atol=1e-5, err_msg=kind)


def test_tf_replay_runs_in_a_child_process_and_reports_its_failures():
  samples = conv_bound.tf_replay_seconds(CALLS, True, repeats=2)
  assert len(samples) == 2 and all(s > 0 for s in samples)
  with pytest.raises(RuntimeError, match="the TF replay failed"):
    conv_bound.tf_replay_seconds([("Conv9d", (1,), (1,), (1,), (0,), False)], False, 1)


def test_torch_replay_runs_every_call_with_its_gradients():
  torch = pytest.importorskip("torch")
  seen = []
  conv2d = torch.nn.functional.conv2d
  try:
    torch.nn.functional.conv2d = lambda *a: seen.append(a[1].shape) or conv2d(*a)
    replay = conv_bound.torch_replay(CALLS, train=True)
    seen.clear()  # the output gradients' shapes came from one call each
    replay()
  finally:
    torch.nn.functional.conv2d = conv2d
  assert seen == [(5, 3, 3, 3), (7, 5, 1, 1)]
