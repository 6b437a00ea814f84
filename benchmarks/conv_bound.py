"""How far graph-level work can take a case: its convolutions alone, in both libraries.

On request (`--cases=grad_tts_bound` in the infer and train suites, or `--extended`). Every
convolution the PyTorch reference runs in one Grad-TTS ljspeech U-Net step (infer) or train
step (train) is recorded by module hooks (kind, input and weight shapes, stride, padding), then
replayed alone:

  pytorch convolutions  the recorded calls in NCHW, one after another (train: each with its
                        input and weight gradients, `backward` of a random output gradient).
  tfspeech convolutions the same calls in TF's NHWC / NWC layout (the reference's 1x1
                        `to_qkv`/`to_out` convolutions as 1x1 convolutions), in a traced
                        function run with one inter-op thread so that they run one after
                        another, each on every core (intra-op); train: `tf.GradientTape`
                        gradients for input, kernel and bias. In a fresh process (TF's
                        inter-op thread count is fixed at start-up).

beside each library's whole computation (the reference's U-Net forward / `TrainStep`;
tfspeech's U-Net under `tf.function` / the Trainer's train step), in one group whose baseline
is the reference's whole computation. The tfspeech convolutions row's ratio is the bound: what
tfspeech's whole computation would be against the reference if everything but its
convolutions took no time. If it is under a target, no graph-level change reaches the target
without faster convolution kernels; above it, the gap is the rest of the graph
(normalisation, activations, masks), which the whole rows show.
"""

import ctypes
import json
import subprocess
import sys

import numpy as np

from benchmarks import harness

# Batch 16 first, the reference before tfspeech within a batch, as `models.TRAIN_VARIANTS`:
# TF keeps its largest step's memory for the process's life, PyTorch returns its to malloc.
TRAIN_BATCHES = (16, 1)
INFER_FRAMES = 412  # the infer/grad_tts ljspeech case's decoder frames (103 ids)


def record_convolutions(model, run):
  """Runs `run()` with hooks on `model`'s Conv1d/Conv2d/ConvTranspose2d modules.

  Returns:
    [(kind, input shape, weight shape, stride, padding, has bias)], one per call, in order.
  """
  import torch  # pylint: disable=import-outside-toplevel
  calls = []

  def hook(module, inputs, output):
    del output
    calls.append((type(module).__name__, tuple(inputs[0].shape), tuple(module.weight.shape),
                  tuple(module.stride), tuple(module.padding), module.bias is not None))
  kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.ConvTranspose2d)
  handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kinds)]
  try:
    run()
  finally:
    for handle in handles:
      handle.remove()
  return calls


def convolution_flops(calls):
  """Forward FLOPs (2 x multiply-adds) of the recorded calls."""
  total = 0
  for kind, x_shape, w_shape, stride, padding, _ in calls:
    if kind == "ConvTranspose2d":  # every input position times the whole kernel
      total += 2 * int(np.prod(x_shape)) * int(np.prod(w_shape[1:]))
    else:
      out = [(n + 2 * p - k) // s + 1
             for n, p, k, s in zip(x_shape[2:], padding, w_shape[2:], stride)]
      total += 2 * x_shape[0] * int(np.prod(out)) * int(np.prod(w_shape))
  return total


def _out_channels(kind, w_shape):
  """Output channels of a recorded call (a transposed convolution's weight is `[in, out, ...]`)."""
  return w_shape[1] if kind == "ConvTranspose2d" else w_shape[0]


def torch_replay(calls, train):
  """A callable running the recorded calls alone in PyTorch (train: with both gradients).

  Calls with the same shapes share their tensors (a batch-16 train step's 91 convolutions
  would otherwise hold ~8 GB of inputs and output gradients).
  """
  import torch  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel
  generator = torch.Generator().manual_seed(0)
  ops = {"Conv1d": F.conv1d, "Conv2d": F.conv2d, "ConvTranspose2d": F.conv_transpose2d}
  tensors = {}
  args = []
  for call in calls:
    kind, x_shape, w_shape, stride, padding, bias = call
    if call not in tensors:
      x = torch.randn(x_shape, generator=generator, requires_grad=train)
      w = (torch.randn(w_shape, generator=generator) * 0.05).requires_grad_(train)
      b = torch.zeros(_out_channels(kind, w_shape), requires_grad=train) if bias else None
      dy = None
      if train:
        with torch.no_grad():
          dy = torch.randn_like(ops[kind](x, w, b, stride, padding))
      tensors[call] = (x, w, b, dy)
    args.append((ops[kind], stride, padding) + tensors[call])
  if not train:
    def run():
      with torch.inference_mode():
        for op, stride, padding, x, w, b, _ in args:
          op(x, w, b, stride, padding)
    return run

  def run_train():
    for op, stride, padding, x, w, b, dy in args:
      inputs = [x, w] + ([b] if b is not None else [])
      # autograd.grad, not backward: nothing accumulates into shared tensors' .grad.
      torch.autograd.grad(op(x, w, b, stride, padding), inputs, dy)
  return run_train


def tf_replay_seconds(calls, train, repeats):
  """Seconds of each of `repeats` timed replays of `calls` in TF, in a fresh process."""
  command = [sys.executable, "-m", "benchmarks.conv_bound",
             json.dumps({"calls": calls, "train": train, "repeats": repeats})]
  out = subprocess.run(command, capture_output=True, text=True, check=False,
                       cwd=str(harness.REPO_ROOT))
  lines = [l for l in out.stdout.splitlines() if l.startswith("seconds ")]
  if out.returncode or not lines:
    raise RuntimeError(f"the TF replay failed (exit {out.returncode}): {out.stderr[-2000:]}")
  return [float(v) for v in lines[-1].split()[1:]]


def tf_layout(kind, x, w):
  """A reference call's NCHW / NCW input and OIHW / IOHW / OIW weight (NumPy) in tfspeech's
  layouts: `[batch, frames, bins, channels]` (frames first, as the Grad-TTS U-Net) or
  `[batch, time, channels]`, kernels `[kT, kF, in, out]` (transposed: `[kT, kF, out, in]`)."""
  if kind == "Conv1d":
    return np.transpose(x, (0, 2, 1)), np.transpose(w, (2, 1, 0))
  return np.transpose(x, (0, 3, 2, 1)), np.transpose(w, (3, 2, 1, 0))


def tf_convolution(kind, x, w, b, stride, padding, w_shape):
  """The reference call `kind(stride, padding)` on tfspeech-layout tensors (see `tf_layout`),
  as tfspeech writes each: "same" stride-1 convolutions, the Downsample's explicit symmetric
  padding, the Upsample's "same" 4x4 stride-2 transposed convolution."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  if kind == "Conv1d":
    y = tf.nn.conv1d(x, w, stride[0], "SAME" if padding[0] else "VALID")
  elif kind == "Conv2d" and stride[0] == 1:
    y = tf.nn.conv2d(x, w, 1, "SAME" if padding[0] else "VALID")
  elif kind == "Conv2d":
    y = tf.nn.conv2d(x, w, stride[0],
                     [[0, 0], [padding[1], padding[1]], [padding[0], padding[0]], [0, 0]])
  else:
    shape = tf.shape(x)
    y = tf.nn.conv2d_transpose(x, w, [shape[0], 2 * shape[1], 2 * shape[2], w_shape[1]], 2,
                               "SAME")
  return y if b is None else tf.nn.bias_add(y, b)


def _tf_replay_main(spec):
  """The child process: TF with one inter-op thread, the replay timed; prints the samples."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.threading.set_inter_op_parallelism_threads(1)
  calls = [tuple(tuple(v) if isinstance(v, list) else v for v in call) for call in spec["calls"]]
  train = spec["train"]
  rng = np.random.default_rng(0)
  tensors = {}  # shared by calls with the same shapes, as in `torch_replay`
  for call in calls:
    kind, x_shape, w_shape, stride, padding, bias = call
    if call in tensors:
      continue
    x, w = tf_layout(kind, rng.standard_normal(x_shape, dtype=np.float32),
                     rng.standard_normal(w_shape, dtype=np.float32) * 0.05)
    b = tf.Variable(np.zeros(_out_channels(kind, w_shape), np.float32)) if bias else None
    x, w = tf.Variable(x), tf.Variable(w)
    dy = None
    if train:
      dy = tf.random.normal(tf_convolution(kind, tf.convert_to_tensor(x), w, b, stride, padding,
                                           w_shape).shape)
    tensors[call] = (x, w, b, dy)

  @tf.function
  def replay():
    # Every output is returned: nothing is pruned, and with one inter-op thread the
    # convolutions run one after another.
    outputs = []
    for call in calls:
      kind, _, w_shape, stride, padding, _ = call
      x, w, b, dy = tensors[call]
      x = tf.convert_to_tensor(x)
      if not train:
        outputs.append(tf_convolution(kind, x, w, b, stride, padding, w_shape))
        continue
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf_convolution(kind, x, w, b, stride, padding, w_shape)
      outputs += tape.gradient(y, [x, w] + ([b] if b is not None else []), output_gradients=dy)
    return outputs

  samples = harness.time_calls(replay, spec["repeats"], warmup=2)
  print("seconds " + " ".join(f"{s:.6f}" for s in samples))


def _rows(ctx, group, torch_whole, torch_convs, tf_whole, tf_convs, flops, what):
  ratio = lambda a, b: float(np.median(a)) / float(np.median(b))
  bound = ratio(torch_whole, tf_convs)
  note_tf = (f"bound: {bound:.2f}x the reference if all but these convolutions took no time; "
             f"{ratio(tf_convs, tf_whole):.0%} of tfspeech's {what}")
  ctx.log(f"  {group}: reference {np.median(torch_whole):.3f} s (convolutions "
          f"{np.median(torch_convs):.3f}), tfspeech {np.median(tf_whole):.3f} s (convolutions "
          f"{np.median(tf_convs):.3f}); bound {bound:.2f}x")
  return [
      harness.Measurement(f"pytorch reference {what}", torch_whole, baseline=True, group=group),
      harness.Measurement("pytorch convolutions alone", torch_convs, group=group, flops=flops,
                          note=f"{ratio(torch_convs, torch_whole):.0%} of the reference's {what}"),
      harness.Measurement(f"tfspeech {what}", tf_whole, group=group),
      harness.Measurement("tfspeech convolutions alone (TF)", tf_convs, group=group,
                          flops=flops, note=note_tf, extra={"bound": bound}),
  ]


def _reference(ctx):
  from benchmarks import models  # pylint: disable=import-outside-toplevel
  reference = models._Torch.get(ctx)  # pylint: disable=protected-access
  if reference is None:
    raise harness.Skip(f"needs torch: {models.NO_TORCH}")
  if ctx.device != "cpu":
    raise harness.Skip("CPU only: the TF replay runs in a CPU process")
  return reference


@harness.case("infer", "grad_tts_bound", on_request=True)
def grad_tts_infer_bound(ctx):
  """Grad-TTS ljspeech U-Net step (batch 1): whole vs its convolutions alone, both libraries."""
  harness.require_model("grad_tts", "Grad-TTS")
  reference = _reference(ctx)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_reference import grad_tts as torch_grad_tts  # pylint: disable=import-outside-toplevel
  from tfspeech import testing  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  from tfspeech.models.grad_tts import GradTTS  # pylint: disable=import-outside-toplevel
  torch = reference.torch
  config = registry.get("grad_tts").preset("ljspeech")
  frames = 32 if ctx.quick else INFER_FRAMES
  reference.seed(0)
  estimator = torch_grad_tts.GradTTS(torch_grad_tts.params_from_tfspeech(config)).decoder.estimator
  x, mask, t = torch.randn(1, config.n_feats, frames), torch.ones(1, 1, frames), torch.full((1,), 0.5)

  def torch_step():
    with torch.inference_mode():
      estimator(x, mask, x, t)
  calls = record_convolutions(estimator, torch_step)
  repeats = ctx.repeats(7)
  torch_whole = ctx.time(torch_step, repeats)
  torch_convs = ctx.time(torch_replay(calls, train=False), repeats)
  model = GradTTS(config)
  testing.randomize_weights([model], seed=0)
  tf_estimator = model.decoder.estimator
  step = tf.function(lambda x, m, t: tf_estimator(x, m, x, t, None))
  args = (tf.random.normal([1, frames, config.n_feats]), tf.ones([1, frames]), tf.fill([1], 0.5))
  tf_whole = ctx.time(lambda: step(*args).numpy(), repeats, warmup=2)
  tf_convs = tf_replay_seconds(calls, False, repeats)
  return _rows(ctx, f"ljspeech U-Net step, batch 1, {frames} frames", torch_whole,
               torch_convs, tf_whole, tf_convs, convolution_flops(calls), "U-Net step")


def _torch_train_timings(ctx, reference, torch_grad_tts, config, train_config, batch, repeats):
  """(recorded convolutions, reference TrainStep samples, its convolutions' replay samples)."""
  reference.seed(0)
  model = torch_grad_tts.GradTTS(torch_grad_tts.params_from_tfspeech(config))
  torch_step = torch_grad_tts.TrainStep(model, learning_rate=train_config.learning_rate, seed=0)
  torch_batch = reference.tensors(torch_grad_tts.torch_batch(batch))
  calls = record_convolutions(model, lambda: torch_step(torch_batch))
  whole = ctx.time(lambda: torch_step(torch_batch), repeats)
  replay = ctx.time(torch_replay(calls, train=True), repeats)
  _release_freed_memory()
  return calls, whole, replay


def _release_freed_memory():
  """glibc's `malloc_trim(0)`: hands the pages PyTorch freed back to the system, so that TF's
  step, allocating from other threads' arenas, does not stack its memory on top of them."""
  try:
    ctypes.CDLL("libc.so.6").malloc_trim(0)
  except OSError:  # not glibc
    pass


@harness.case("train", "grad_tts_bound", on_request=True)
def grad_tts_train_bound(ctx):
  """Grad-TTS ljspeech train step: whole vs its convolutions (with gradients) alone."""
  harness.require_model("grad_tts", "Grad-TTS")
  reference = _reference(ctx)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from benchmarks import models  # pylint: disable=import-outside-toplevel
  from benchmarks.torch_reference import grad_tts as torch_grad_tts  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  from tfspeech.training import Trainer  # pylint: disable=import-outside-toplevel
  task_class = registry.get("grad_tts")
  preset = "tiny" if ctx.quick else "ljspeech"
  config, train_config = task_class.preset(preset), task_class.default_train_config(preset)
  measurements = []
  step = None
  for batch_size in ((1,) if ctx.quick else TRAIN_BATCHES):
    batch = models._grad_tts_batch(config, batch_size)  # pylint: disable=protected-access
    repeats = ctx.repeats(5 if batch_size == 1 else 3)
    calls, torch_whole, torch_convs = _torch_train_timings(
        ctx, reference, torch_grad_tts, config, train_config, batch, repeats)
    if step is None:  # one trace serves every batch size, as in a run
      step = Trainer(task_class(config), train_config).train_step_fn(
          tf.data.Dataset.from_tensors(batch).element_spec)
    tf_whole = ctx.time(lambda: step(batch)["losses/loss"].numpy(), repeats, warmup=2)  # pylint: disable=cell-var-from-loop
    tf_convs = tf_replay_seconds(calls, True, repeats)
    # Each convolution's forward, input gradient and weight gradient: 3x its forward FLOPs.
    measurements += _rows(ctx, f"{preset} train step, batch {batch_size}", torch_whole,
                          torch_convs, tf_whole, tf_convs, 3 * convolution_flops(calls),
                          "train step")
  return measurements


if __name__ == "__main__":
  _tf_replay_main(json.loads(sys.argv[1]))
