"""DiffWave: config checks, the schedule alignment against the reference's algorithm, the
reverse process (looped == unrolled, an item alone == the same item in a batch, seedable), the
per-step noise, the serving interface and graph purity."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from tfspeech.models import registry
from tfspeech.models import serving
from tfspeech.models.diffwave import diffusion, diffwave_presets
from tfspeech.models.diffwave.diffwave_config import DiffWaveConfig
from tfspeech.models.diffwave.diffwave_model import build_model
from tfspeech.models.diffwave.diffwave_serving import DiffWaveServing
from tfspeech.testing import assert_no_python_ops

FAST = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5)
TRAINING = np.linspace(1e-4, 0.05, 50)
HOP = 256


def reference_T(training, inference):
  """lmnt-com/diffwave inference.py's alignment loop, as written there (float64 numpy)."""
  talpha = 1 - np.array(training)
  talpha_cum = np.cumprod(talpha)
  alpha_cum = np.cumprod(1 - np.array(inference))
  T = []
  for s in range(len(inference)):
    for t in range(len(training) - 1):
      if talpha_cum[t + 1] <= alpha_cum[s] <= talpha_cum[t]:
        twiddle = (talpha_cum[t] ** 0.5 - alpha_cum[s] ** 0.5) / (
            talpha_cum[t] ** 0.5 - talpha_cum[t + 1] ** 0.5)
        T.append(t + twiddle)
        break
  return np.array(T, dtype=np.float32)


def randomized_model(config=None, seed=0):
  """A tiny model whose every weight is random (the zero-initialised output kernel too), so
  the predicted noise, and with it every comparison below, is not trivially zero."""
  model = build_model(config or diffwave_presets.get_preset("tiny"))
  rng = np.random.default_rng(seed)
  for variable in model.weights:
    scale = 0.3 if len(variable.shape) > 1 else 0.1
    variable.assign(rng.normal(0, scale, size=variable.shape).astype(np.float32))
  return model


def mel_batch(frames, seed=1, n_mels=80):
  rng = np.random.default_rng(seed)
  mel = rng.normal(-4, 1.5, size=(len(frames), max(frames), n_mels)).astype(np.float32)
  for i, f in enumerate(frames):
    mel[i, f:] = 99.0  # padding: any value, vocode must ignore it
  return mel, np.array(frames, np.int32)


# --------------------------------------------------------------------------- config


def test_presets_and_registry():
  from tfspeech.models.diffwave.diffwave_task import DiffWaveTask
  assert registry.get("diffwave") is DiffWaveTask
  assert DiffWaveTask.presets is diffwave_presets.PRESETS
  base = diffwave_presets.get_preset("base")
  assert (base.residual_layers, base.residual_channels, base.dilation_cycle_length) == (30, 64, 10)
  np.testing.assert_allclose(base.noise_schedule, TRAINING)
  assert base.inference_noise_schedule == FAST
  assert base.hop_length == HOP and base.segment_size == 62 * HOP and not base.unconditional
  assert diffwave_presets.get_preset("base_unconditional").unconditional
  assert base.schedule(6) == FAST and base.schedule(50) == base.noise_schedule
  with pytest.raises(ValueError, match="steps=7.*50.*6"):
    base.schedule(7)


def test_config_refuses_a_fast_schedule_outside_the_training_noise_range():
  # cumprod(1 - beta) of this schedule falls to 0.05, below the training range's 0.28.
  with pytest.raises(ValueError, match=r"inference_noise_schedule: reverse step\(s\) \[5\]"):
    DiffWaveConfig(inference_noise_schedule=(1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.9))
  with pytest.raises(ValueError, match="noise_schedule must be"):
    DiffWaveConfig(noise_schedule=(0.1, 1.5))
  with pytest.raises(ValueError, match="residual_layers must be a positive integer"):
    DiffWaveConfig(residual_layers=0)


# --------------------------------------------------------------------------- schedule


def test_fast_schedule_alignment_equals_the_reference_formula():
  expected = reference_T(TRAINING, FAST)
  assert len(expected) == 6
  actual = diffusion.aligned_steps(tf.constant(FAST), TRAINING).numpy()
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)
  # Fractional, increasing, inside [0, T - 1]: a wrong branch or index would break these.
  assert np.all(np.diff(actual) > 0) and 0 <= actual[0] < 1 and actual[-1] < 49
  assert np.abs(actual - np.round(actual)).max() > 0.05


def test_full_schedule_aligns_to_the_integer_training_steps():
  actual = diffusion.aligned_steps(tf.constant(TRAINING), TRAINING).numpy()
  np.testing.assert_array_equal(actual, reference_T(TRAINING, TRAINING))
  np.testing.assert_array_equal(actual, np.arange(50, dtype=np.float32))


def test_reverse_coefficients_equal_the_reference_arithmetic():
  got = {k: v.numpy() for k, v in diffusion.reverse_coefficients(tf.constant(FAST),
                                                                  TRAINING).items()}
  beta = np.array(FAST)
  alpha = 1 - beta
  alpha_cum = np.cumprod(alpha)
  np.testing.assert_allclose(got["c1"], 1 / alpha ** 0.5, rtol=1e-6)
  np.testing.assert_allclose(got["c2"], beta / (1 - alpha_cum) ** 0.5, rtol=1e-5)
  sigma = [0.0] + [((1 - alpha_cum[n - 1]) / (1 - alpha_cum[n]) * beta[n]) ** 0.5
                   for n in range(1, 6)]
  np.testing.assert_allclose(got["sigma"], sigma, rtol=1e-4)


def test_step_noise_is_per_item_and_uses_given_channels_first():
  rng = np.random.default_rng(0)
  noise = rng.normal(size=(2, 12, 1)).astype(np.float32)
  lengths = tf.constant([12, 8])
  # One channel, 4 draws: rotations by k * (length // 4) within each item's own length.
  for k in range(4):
    z = diffusion.step_noise(noise, lengths, k, 4).numpy()
    np.testing.assert_array_equal(z[0], np.roll(noise[0, :, 0], -3 * k))
    np.testing.assert_array_equal(z[1, :8], np.roll(noise[1, :8, 0], -2 * k))
  # Enough channels: draw k is channel k, untouched (independent draws).
  wide = rng.normal(size=(2, 12, 4)).astype(np.float32)
  for k in range(4):
    z = diffusion.step_noise(wide, lengths, k, 4).numpy()
    np.testing.assert_array_equal(z[0], wide[0, :, k])
    np.testing.assert_array_equal(z[1, :8], wide[1, :8, k])
  # A tensor draw index (the loop's) gives the same as a Python one.
  np.testing.assert_array_equal(diffusion.step_noise(noise, lengths, tf.constant(3), 4),
                                diffusion.step_noise(noise, lengths, 3, 4))


# --------------------------------------------------------------------------- serving


@pytest.fixture(scope="module")
def vocoder():
  return DiffWaveServing(randomized_model())


def vocode_fn(vocoder, steps):
  return tf.function(lambda mel, lengths, noise: vocoder.vocode(mel, lengths, noise, steps=steps))


def test_vocoder_interface(vocoder):
  assert vocoder.role == serving.VOCODER and vocoder.hop_length == HOP
  # One channel per draw of the default schedule (6 steps: independent draws).
  assert vocoder.noise_channels == 6 == vocoder.controls[0].default
  assert [c.name for c in vocoder.controls] == ["steps"] and vocoder.controls[0].static
  assert int(vocoder.noise_length(tf.constant(7))) == 7 * HOP
  assert vocoder.in_process() is vocoder.in_process() and not vocoder.in_process().unroll
  assert vocoder.in_process().in_process() is vocoder.in_process()
  assert vocoder.receptive_field > 0


@pytest.mark.parametrize("steps", [6, 50])
def test_batched_equals_alone_looped_equals_unrolled(vocoder, steps):
  mel, lengths = mel_batch([5, 3])
  noise = np.random.default_rng(2).normal(size=(2, 5 * HOP, 6)).astype(np.float32)
  # 50 unrolled copies take a minute to trace on 2 cores; the loop runs the same arithmetic
  # (compared at 6 steps), so the full schedule is checked in its looped form.
  served = vocoder if steps == 6 else vocoder.in_process()
  batched = vocode_fn(served, steps)(mel, lengths, noise)
  audio = batched["audio"].numpy()
  np.testing.assert_array_equal(batched["audio_lengths"], [5 * HOP, 3 * HOP])
  assert np.all(audio[1, 3 * HOP:] == 0) and np.abs(audio[1, :3 * HOP]).max() > 0.05
  assert np.all(np.abs(audio) <= 1.0)
  if steps == 6:
    looped = vocode_fn(vocoder.in_process(), steps)(mel, lengths, noise)["audio"].numpy()
    np.testing.assert_allclose(looped, audio, atol=1e-5)
  # The short item alone, with only its own frames and noise, gives what it got in the batch.
  alone = vocode_fn(served, steps)(mel[1:, :3], lengths[1:], noise[1:, :3 * HOP])["audio"]
  np.testing.assert_allclose(alone.numpy()[0], audio[1, :3 * HOP], atol=1e-5)


def test_noise_decides_the_audio(vocoder):
  mel, lengths = mel_batch([4])
  rng = np.random.default_rng(5)
  first, second = (rng.normal(size=(1, 4 * HOP, 1)).astype(np.float32) for _ in range(2))
  fn = vocode_fn(vocoder, 6)
  again = fn(mel, lengths, first)["audio"].numpy()
  np.testing.assert_array_equal(fn(mel, lengths, first)["audio"].numpy(), again)
  assert np.abs(fn(mel, lengths, second)["audio"].numpy() - again).max() > 0.05


def test_runtime_schedule_loop_takes_any_betas(vocoder):
  mel, lengths = mel_batch([3, 2])
  noise = np.random.default_rng(3).normal(size=(2, 3 * HOP, 1)).astype(np.float32)
  fn = tf.function(lambda mel, lengths, noise, betas: vocoder.vocode_schedule(
      mel, lengths, noise, betas), input_signature=(
          tf.TensorSpec([None, None, 80]), tf.TensorSpec([None], tf.int32),
          tf.TensorSpec([None, None, 1]), tf.TensorSpec([None])))
  for betas in [(1e-3, 0.05, 0.3), FAST]:
    looped = fn(mel, lengths, noise, tf.constant(betas, tf.float32))["audio"].numpy()
    expected = diffusion.reverse_process_unrolled(
        lambda a, t: vocoder.model.denoise(a, t, vocoder.model.upsample(mel, lengths),
                                           tf.sequence_mask(lengths * HOP, 3 * HOP, tf.float32)),
        noise, lengths * HOP, betas, TRAINING,
        tf.sequence_mask(lengths * HOP, 3 * HOP, tf.float32)).numpy()
    np.testing.assert_allclose(looped, expected, atol=1e-5)
  # One traced graph (the signature's) served both schedule lengths.
  assert len(fn._list_all_concrete_functions()) == 1  # pylint: disable=protected-access


def test_serving_graphs_are_pure(vocoder):
  spec = (tf.TensorSpec([None, None, 80]), tf.TensorSpec([None], tf.int32),
          tf.TensorSpec([None, None, 6]))
  for served in (vocoder, vocoder.in_process()):
    concrete = tf.function(lambda m, l, n, s=served: s.vocode(m, l, n, steps=6)
                           ).get_concrete_function(*spec)
    assert_no_python_ops(concrete)
  ops = {node.op for node in concrete.graph.as_graph_def().node}
  assert "While" in ops or "StatelessWhile" in ops
  unrolled = tf.function(lambda m, l, n: vocoder.vocode(m, l, n, steps=6)
                         ).get_concrete_function(*spec)
  graph_def = unrolled.graph.as_graph_def()
  ops = {node.op for node in graph_def.node}
  ops |= {node.op for function in graph_def.library.function for node in function.node_def}
  assert not ops & {"While", "StatelessWhile", "If", "StatelessIf"}
  assert "EnsureShape" not in ops  # TFJS has no kernel for TF's form of it
  # No nested functions at all once frozen (Keras runs a conv whose input channels are not
  # static as a nested XLA function, which TFLite and TFJS cannot take).
  frozen = convert_variables_to_constants_v2(unrolled)
  assert not frozen.graph.as_graph_def().library.function


# ----------------------------------------------------------- runtime schedule (issue #19)


def test_runtime_steps_and_betas_flags_parse_and_refuse_bad_betas():
  from tfspeech.inference import serving_runs  # pylint: disable=import-outside-toplevel
  resolve = lambda *flags: serving_runs.resolve_flag_controls("diffwave", flags)[0]  # noqa: E731
  assert resolve("steps=runtime") == {"steps": serving.RUNTIME, "betas": FAST}
  assert resolve("steps=runtime", "betas=0.001, 0.05,0.4")["betas"] == (0.001, 0.05, 0.4)
  assert resolve("steps=50") == {"steps": 50}  # betas only exist with steps=runtime
  for flags, message in [
      (["betas=0.1"], "only of graphs exported with --control=steps=runtime"),
      (["steps=runtime", "betas=,"], "expected comma-separated numbers > 0.0 and < 1.0"),
      (["steps=runtime", "betas=0.1,x"], "expected comma-separated numbers"),
      (["steps=runtime", "betas=0.1,0"], "every value must be > 0.0"),
      (["steps=runtime", "betas=0.5,1"], "every value must be < 1.0"),
      (["steps=runtim"], "or 'runtime'")]:
    with pytest.raises(ValueError, match=message):
      resolve(*flags)
  # Scalar controls are as before (a vector field only where declared).
  scale = serving.Control("scale", "float32", 1.0, "a scale", exclusive_minimum=0.0)
  assert scale.convert("2") == 2.0 and scale.metadata()["shape"] == [] and not scale.is_vector
  with pytest.raises(ValueError, match="runtime"):
    scale.convert("runtime")


def test_runtime_steps_vocode_in_process_with_the_given_betas(vocoder):
  from tfspeech.inference import vocode_lib  # pylint: disable=import-outside-toplevel
  three = (1e-3, 0.05, 0.4)
  values = serving.resolve_controls(vocoder.controls, {"steps": "runtime",
                                                       "betas": "0.001,0.05,0.4"})
  # In process the betas are a static (Python) value beside steps=runtime.
  assert serving.split_controls(vocoder.controls, values) == (
      {"steps": serving.RUNTIME, "betas": three}, {})
  mel, lengths = mel_batch([3, 2])
  seeds = np.array([[1, 0], [1, 1]], np.int32)
  audio, _ = vocode_lib.Vocoder.for_serving(vocoder, values).vocode(mel, lengths, seeds)
  noise = vocode_lib.vocoder_noise(vocoder, tf.constant(seeds), 3)
  expected = vocoder.vocode(mel, lengths, noise, steps=serving.RUNTIME, betas=three)["audio"]
  np.testing.assert_allclose(audio.numpy(), expected.numpy(), atol=1e-5)  # eager vs graph
  assert np.abs(audio.numpy()[1, :2 * HOP]).max() > 0.05


def test_runtime_schedule_refuses_known_bad_betas(vocoder):
  mel, lengths = mel_batch([2])
  noise = np.zeros((1, 2 * HOP, 6), np.float32)
  with pytest.raises(ValueError, match="steps=runtime"):
    vocoder.vocode(mel, lengths, noise, steps=serving.RUNTIME)
  with pytest.raises(ValueError, match="steps=runtime"):
    vocoder.vocode(mel, lengths, noise, steps=6, betas=FAST)
  for betas, message in [([], "got none"), ([0.1, 1.0], "must be < 1.0"),
                         (np.array([0.1, -0.1]), "must be > 0.0"),
                         ((0.9, 0.9), "outside the training range")]:
    with pytest.raises(ValueError, match=message):
      vocoder.vocode_schedule(mel, lengths, noise, betas)


def test_runtime_schedule_graph_is_one_converter_ready_loop(vocoder):
  from tfspeech.export import inference_graphs  # pylint: disable=import-outside-toplevel
  graph = inference_graphs.MelToAudio(vocoder, {"steps": "runtime"})
  assert graph.describe()["inputs"]["vocoder_betas"] == {"dtype": "float32",
                                                         "shape": ["n_betas"]}
  concrete = graph.concrete_function()
  assert_no_python_ops(concrete)
  graph_def = concrete.graph.as_graph_def()
  bodies = [node for function in graph_def.library.function for node in function.node_def]
  ops = {node.op for node in list(graph_def.node) + bodies}
  # One network copy in a loop; no Cumprod (no TFLite builtin, no TFJS op).
  assert ops & {"While", "StatelessWhile"} and "Cumprod" not in ops
  # Loop bodies are not rewritten by the exporter: no new-axis slices there.
  assert not [n.name for n in bodies if n.op == "StridedSlice" and n.attr["new_axis_mask"].i]
  assert sum(n.op == "Conv2D" for n in bodies) >= len(vocoder.model.residual_layers)
  # The speed of the step (#19): dilated convs are Conv2D with dilations, not Keras'
  # SpaceToBatchND/BatchToSpaceND copies, and no Split copies of the activations.
  assert not {n.op for n in bodies} & {"SpaceToBatchND", "BatchToSpaceND", "Split"}
  assert any(n.op == "Conv2D" and n.attr["dilations"].list.i[2] > 1 for n in bodies)
  # Streaming and fixed shapes need a known step count.
  with pytest.raises(ValueError, match="cannot stream"):
    inference_graphs.build_graphs(None, vocoder, vocoder_controls={"steps": "runtime"},
                                  stream=True)
  with pytest.raises(ValueError, match="--fixed_shapes: input vocoder_betas"):
    inference_graphs.FixedShape(graph, 1, 8)


def _layer_by_layer_denoise(model, audio, step, conditioner, mask):
  """The reference's network written with the Keras layers' own calls (Conv1D with
  dilation, split halves, (x + r) / sqrt(2), skip / sqrt(layers)): what the rescaled,
  split-kernel `DiffWave.denoise` must equal."""
  x = tf.nn.relu(model.input_projection(audio[..., None]))
  embedding = model.diffusion_embedding(step)
  skip = 0.0
  for layer in model.residual_layers:
    y = (x + layer.diffusion_projection(embedding)[:, None]) * mask[..., None]
    y = layer.dilated_conv(y)
    if conditioner is not None:
      y = y + layer.conditioner_projection(conditioner)
    gate, filtered = tf.split(y, 2, axis=-1)
    residual, skip_connection = tf.split(
        layer.output_projection(tf.sigmoid(gate) * tf.tanh(filtered)), 2, axis=-1)
    x = (x + residual) / np.sqrt(2.0)
    skip += skip_connection
  x = tf.nn.relu(model.skip_projection(skip / np.sqrt(len(model.residual_layers))))
  return model.output_projection(x)[..., 0]


@pytest.mark.parametrize("unconditional", [False, True])
def test_denoise_equals_the_layer_by_layer_network(unconditional):
  # 12 layers (scales up to sqrt(2) ** 11), cycle 4 (dilations up to 8 over 40 samples).
  config = DiffWaveConfig(residual_layers=12, residual_channels=8, dilation_cycle_length=4,
                          unconditional=unconditional)
  model = randomized_model(config)
  rng = np.random.default_rng(2)
  audio = rng.normal(size=(2, 40)).astype(np.float32)
  mask = np.ones((2, 40), np.float32)
  mask[1, 29:] = 0.0
  conditioner = None if unconditional else rng.normal(size=(2, 40, 80)).astype(np.float32)
  step = np.array([3.0, 17.5], np.float32)
  expected = _layer_by_layer_denoise(model, audio, step, conditioner, mask).numpy()
  got = model.denoise(audio, step, conditioner, mask).numpy()
  assert np.abs(expected).max() > 0.1
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  # The block's own 3-D call is the reference block too.
  layer = model.residual_layers[3]
  x = rng.normal(size=(2, 40, 8)).astype(np.float32)
  embedding = model.diffusion_embedding(step)
  block_conditioner = None if unconditional else conditioner
  y = (x + layer.diffusion_projection(embedding)[:, None]) * mask[..., None]
  y = layer.dilated_conv(y)
  if block_conditioner is not None:
    y = y + layer.conditioner_projection(block_conditioner)
  gate, filtered = tf.split(y, 2, axis=-1)
  residual, skip = tf.split(layer.output_projection(tf.sigmoid(gate) * tf.tanh(filtered)), 2, -1)
  got_x, got_skip = layer(x, embedding, block_conditioner, mask)
  np.testing.assert_allclose(got_x, (x + residual) / np.sqrt(2.0), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(got_skip, skip, rtol=1e-4, atol=1e-5)


def test_unconditional_model_runs():
  config = diffwave_presets.get_preset("tiny").replace(unconditional=True)
  model = randomized_model(config)
  assert model.spectrogram_upsampler is None
  out = model((tf.zeros([2, 512]), tf.constant([1, 2]), None))
  assert out.shape == (2, 512)
