"""FastPitch model: presets, parameter parity with the PyTorch reference, losses, serving."""

import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import text as text_lib
from tfspeech.models import alignment_metrics
from tfspeech.models import registry
from tfspeech.models import serving as serving_lib
from tfspeech.models.fastpitch import FastPitch, FastPitchConfig, FastPitchServing
from tfspeech.models.fastpitch import fastpitch_presets, losses
from tfspeech.models.tacotron2 import tacotron2_model
from tfspeech.testing import assert_no_python_ops

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The transcription's count of the reference LJSpeech model (arg_parser.py defaults with
# energy conditioning): 12 FFT blocks ~ 43.7M, predictors 1.5M, alignment encoder 1.0M.
LJSPEECH_PARAMETERS = 46_266_420


def _torch_reference():
  pytest.importorskip("torch")
  if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))  # after the installed tfspeech
  from benchmarks.torch_reference import fastpitch as reference
  return reference


def test_registered_with_presets():
  cls = registry.get("fastpitch")
  assert cls.presets is fastpitch_presets.PRESETS
  assert set(cls.presets) == {"tiny", "ljspeech"}
  assert cls.config_class is FastPitchConfig
  # ljspeech keeps the reference's 148-symbol english_basic size: english_arpabet.
  assert cls.preset("ljspeech").n_symbols == len(text_lib.english_arpabet()) == 148
  assert cls.preset("tiny").n_symbols == len(text_lib.english_characters())
  ljspeech = cls.preset("ljspeech")
  assert (ljspeech.symbols_embedding_dim, ljspeech.in_fft_n_layers, ljspeech.out_fft_n_layers,
          ljspeech.in_fft_n_heads, ljspeech.in_fft_conv1d_filter_size) == (384, 6, 6, 1, 1536)
  train = cls.default_train_config("ljspeech")
  assert (train.optimizer, train.lr_schedule, train.batch_size) == ("lamb", "noam", 256)
  assert cls.serving_role == "acoustic"
  assert [c.name for c in cls.serving_controls] == ["pace", "pitch_shift", "pitch_scale",
                                                    "energy_scale"]


def test_config_rejects_bad_values_with_the_fix():
  with pytest.raises(ValueError, match="in_fft_conv1d_kernel_size.*odd"):
    FastPitchConfig(in_fft_conv1d_kernel_size=4)
  with pytest.raises(ValueError, match="p_in_fft_dropout"):
    FastPitchConfig(p_in_fft_dropout=1.5)
  with pytest.raises(ValueError, match="padding_idx"):
    FastPitchConfig(n_symbols=10, padding_idx=10)


def test_ljspeech_parameter_count_equals_the_torch_reference():
  reference = _torch_reference()
  for name in ("ljspeech", "tiny"):
    config = fastpitch_presets.preset(name)
    model = FastPitch(config)
    torch_model = reference.FastPitch(reference.params_from_tfspeech(config))
    assert model.count_params() == reference.count_parameters(torch_model), name
  assert FastPitch(fastpitch_presets.ljspeech()).count_params() == LJSPEECH_PARAMETERS
  assert 45e6 < LJSPEECH_PARAMETERS < 48e6  # FastPitch 1.1 LJSpeech is ~46M.
  # Without energy conditioning / with speakers, still the same count as the reference.
  for config in (fastpitch_presets.tiny(energy_conditioning=False),
                 fastpitch_presets.tiny(n_speakers=3)):
    torch_model = reference.FastPitch(reference.params_from_tfspeech(config))
    assert FastPitch(config).count_params() == reference.count_parameters(torch_model)


def _batch():
  text_ids = tf.constant([[5, 6, 7, 8, 0, 0], [9, 10, 11, 12, 13, 14]])
  text_lengths = tf.constant([4, 6])
  mel_lengths = tf.constant([15, 22])
  mel = tf.random.stateless_normal([2, 22, 80], [1, 2])
  return text_ids, text_lengths, mel, mel_lengths


def test_alignment_losses_match_the_torch_reference():
  reference = _torch_reference()
  import torch
  model = FastPitch(fastpitch_presets.tiny())
  text_ids, text_lengths, mel, mel_lengths = _batch()
  aligned = model.align(text_ids, text_lengths, mel, mel_lengths)
  # MAS durations cover every frame of each item.
  np.testing.assert_array_equal(aligned["durations"].numpy().sum(1), mel_lengths.numpy())
  assert (aligned["durations"].numpy()[0, 4:] == 0).all()

  ctc = losses.attention_ctc_loss(aligned["log_prob"], text_lengths, mel_lengths)
  log_prob = torch.from_numpy(aligned["log_prob"].numpy())[:, None]
  expected = reference.attention_ctc_loss(log_prob, torch.from_numpy(text_lengths.numpy()),
                                          torch.from_numpy(mel_lengths.numpy()))
  np.testing.assert_allclose(float(tf.reduce_mean(ctc)), float(expected), rtol=1e-4)

  binarization = losses.binarization_loss(aligned["hard"], aligned["soft"])
  expected = reference.binarization_loss(torch.from_numpy(aligned["hard"].numpy()),
                                         torch.from_numpy(aligned["soft"].numpy()))
  np.testing.assert_allclose(float(binarization), float(expected), rtol=1e-5)
  # The reference's own MAS finds the same path on an item's log-probabilities.
  item = aligned["log_prob"].numpy()[1]
  np.testing.assert_array_equal(reference.mas_width1(item), aligned["hard"].numpy()[1])


def test_ctc_loss_drops_items_without_a_monotonic_alignment():
  log_prob = tf.zeros([2, 3, 5])
  values = losses.attention_ctc_loss(log_prob, tf.constant([5, 2]), tf.constant([3, 3]))
  assert values.numpy()[0] == 0.0 and values.numpy()[1] > 0.0
  with tf.GradientTape() as tape:
    tape.watch(log_prob)
    total = tf.reduce_sum(losses.attention_ctc_loss(log_prob, tf.constant([5, 2]),
                                                    tf.constant([3, 3])))
  assert np.isfinite(tape.gradient(total, log_prob).numpy()).all()


def _dense_ctc(log_prob, text_lengths, mel_lengths):
  """What `attention_ctc_loss` computed before: tf.nn.ctc_loss (dense CPU path)."""
  batch, tokens = log_prob.shape[0], log_prob.shape[2]
  logits = tf.concat([tf.fill([batch, log_prob.shape[1], 1], losses.BLANK_LOGPROB), log_prob],
                     -1)
  labels = tf.tile(tf.range(1, tokens + 1)[None], [batch, 1])
  return tf.nn.ctc_loss(labels, logits, text_lengths, mel_lengths, logits_time_major=False,
                        blank_index=0) / tf.cast(text_lengths, tf.float32)


def test_banded_ctc_equals_tf_ctc_loss_with_gradients():
  # Log-softmax + log prior like the alignment encoder's, padded tokens at -1e9; item 2 has
  # exactly one frame per token (a single path: the closed form below).
  rng = np.random.default_rng(0)
  text_lengths, mel_lengths = tf.constant([12, 7, 9]), tf.constant([40, 31, 9])
  values = tf.nn.log_softmax(rng.normal(0.0, 3.0, [3, 40, 12]).astype(np.float32))
  values += np.log(rng.uniform(size=[3, 40, 12]) + 1e-8).astype(np.float32)
  log_prob = tf.where(tf.range(12)[None, None] < text_lengths[:, None, None], values, -1e9)
  weights = tf.constant([1.0, 2.0, 3.0])  # a different upstream gradient per item

  def value_and_gradient(fn):
    with tf.GradientTape() as tape:
      tape.watch(log_prob)
      loss = fn(log_prob, text_lengths, mel_lengths)
      total = tf.reduce_sum(loss * weights)
    return loss.numpy(), tape.gradient(total, log_prob).numpy()

  loss, gradient = value_and_gradient(losses.attention_ctc_loss)
  expected, expected_gradient = value_and_gradient(_dense_ctc)
  np.testing.assert_allclose(loss[:2], expected[:2], rtol=1e-5)
  np.testing.assert_allclose(gradient[:2], expected_gradient[:2], atol=1e-6)
  # One frame per token: -mean over frames t of log softmax([-1, log_prob[t]])[token t].
  normalized = tf.nn.log_softmax(tf.concat([tf.fill([9, 1], -1.0), log_prob[2, :9]], -1))
  closed_form = -np.mean(np.diag(normalized.numpy()[:, 1:10]))
  np.testing.assert_allclose(loss[2], closed_form, rtol=1e-5)
  # (Longer: at 95 tokens over 95 frames tf.nn.ctc_loss gave 8.05, this and float64 9.36.)
  assert np.isfinite(gradient).all() and (gradient[0, :, 12:] == 0).all()


def test_binarization_weight_ramps_like_the_reference():
  config = fastpitch_presets.tiny(kl_loss_start_step=10, kl_loss_warmup_steps=20,
                                  kl_loss_weight=2.0)
  weights = [float(losses.binarization_weight(step, config)) for step in (0, 10, 20, 30, 99)]
  assert weights == [0.0, 0.0, 1.0, 2.0, 2.0]



def _hand_made(kind, frames, tokens, pad=3):
  """A `[1, frames + pad, tokens + pad]` alignment of one item: "diagonal" (each frame on its
  length-scaled token), "reversed" (the same read backwards: sharp but off the diagonal),
  "blurred" (the diagonal spread over three tokens) or "uniform". Padding holds garbage."""
  weights = np.zeros([frames + pad, tokens + pad], np.float32)
  on = np.minimum(((np.arange(frames) + 0.5) * tokens / frames).astype(int), tokens - 1)
  if kind == "diagonal":
    weights[np.arange(frames), on] = 1.0
  elif kind == "reversed":
    weights[np.arange(frames), tokens - 1 - on] = 1.0
  elif kind == "blurred":
    for shift in (-1, 0, 1):
      weights[np.arange(frames), np.clip(on + shift, 0, tokens - 1)] += 1.0 / 3
  else:
    weights[:frames, :tokens] = 1.0 / tokens
  weights[frames:] = 1.0  # Padded frames must not count.
  weights[:frames, tokens:] = 0.0
  return tf.constant(weights[None])


def test_alignment_measures_on_hand_made_alignments():
  frames, tokens = 60, 20
  lengths = tf.constant([frames]), tf.constant([tokens])

  def mean(per_frame):  # The task's masked mean over the valid frames of one item.
    return float(tf.reduce_sum(per_frame)) / frames

  diagonal = _hand_made("diagonal", frames, tokens)
  diagonality = {kind: mean(alignment_metrics.diagonal_band_mass(
      _hand_made(kind, frames, tokens), *lengths))
                 for kind in ("diagonal", "reversed", "blurred", "uniform")}
  assert diagonality["diagonal"] == pytest.approx(1.0)
  assert diagonality["blurred"] == pytest.approx(1.0)  # One token either side is in the band.
  # Uniform: the band holds 2 x 0.1 x 20 = 4 of the 20 tokens (fewer at the ends).
  assert 0.15 < diagonality["uniform"] < 0.2, diagonality
  # Read backwards: only the frames near the middle, where the two diagonals cross.
  assert diagonality["reversed"] < 0.15, diagonality
  # Sharpness against the MAS path (here the diagonal): 1 when the soft attention is that
  # path, 1/tokens when uniform, 1/3 spread over three tokens, ~0 on another path.
  sharpness = {kind: mean(alignment_metrics.path_probability(
      _hand_made(kind, frames, tokens), diagonal, lengths[0]))
               for kind in ("diagonal", "reversed", "blurred", "uniform")}
  assert sharpness["diagonal"] == pytest.approx(1.0)
  assert sharpness["uniform"] == pytest.approx(1.0 / tokens)
  # (11/30: the first and last 3 frames pile two thirds onto the first or last token.)
  assert sharpness["blurred"] == pytest.approx(11 / 30)
  assert sharpness["reversed"] < 0.1, sharpness
  # The moved function still answers from Tacotron 2's module, unchanged.
  assert tacotron2_model.diagonal_band_mass is alignment_metrics.diagonal_band_mass


def _serving(pitch_mean=150.0, pitch_std=40.0):
  model = FastPitch(fastpitch_presets.tiny())
  # Untrained durations are ~0 frames; a bias of log(1 + 4) gives every token ~4 frames.
  model.duration_predictor.fc.bias.assign([np.log(5.0)])
  return FastPitchServing(model, pitch_mean, pitch_std)


def test_serving_batched_equals_alone_and_controls_act():
  acoustic = _serving()
  assert acoustic.noise_channels is None and acoustic.n_mels == 80
  text_ids, text_lengths, _, _ = _batch()
  spec = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)] + [
      tf.TensorSpec([], tf.float32)] * 4

  @tf.function(input_signature=spec)
  def synthesize(ids, lengths, pace, pitch_shift, pitch_scale, energy_scale):
    return acoustic.synthesize(ids, lengths, None, pace=pace, pitch_shift=pitch_shift,
                               pitch_scale=pitch_scale, energy_scale=energy_scale)

  concrete = synthesize.get_concrete_function()
  assert_no_python_ops(concrete)
  ops = {node.op for node in concrete.graph.as_graph_def().node}
  assert not ops & {"While", "StatelessWhile"}, "serving graph must be loop-free"

  defaults = (1.0, 0.0, 1.0, 1.0)
  batched = synthesize(text_ids, text_lengths, *defaults)
  lengths = batched["mel_lengths"].numpy()
  durations = batched["durations"].numpy()
  np.testing.assert_array_equal(durations.sum(1), lengths)
  assert (durations[0, 4:] == 0).all() and lengths.min() > 4
  for i in range(2):
    alone = synthesize(text_ids[i:i + 1, :text_lengths[i]], text_lengths[i:i + 1], *defaults)
    np.testing.assert_array_equal(alone["durations"].numpy()[0],
                                  durations[i, :text_lengths[i]])
    np.testing.assert_allclose(alone["mel"].numpy()[0], batched["mel"].numpy()[i, :lengths[i]],
                               atol=1e-4)
    assert not batched["mel"].numpy()[i, lengths[i]:].any()  # 0 past each length

  slow = synthesize(text_ids, text_lengths, 0.5, 0.0, 1.0, 1.0)["mel_lengths"].numpy()
  fast = synthesize(text_ids, text_lengths, 2.0, 0.0, 1.0, 1.0)["mel_lengths"].numpy()
  assert (slow > lengths).all() and (fast < lengths).all()
  base = batched["mel"].numpy()
  for controls in ((1.0, 50.0, 1.0, 1.0), (1.0, 0.0, 0.5, 1.0), (1.0, 0.0, 1.0, 3.0)):
    changed = synthesize(text_ids, text_lengths, *controls)
    np.testing.assert_array_equal(changed["mel_lengths"].numpy(), lengths)
    assert np.abs(changed["mel"].numpy() - base).max() > 1e-4, controls
  # Controls resolve through the shared interface (flags, defaults, range checks).
  values = serving_lib.resolve_controls(acoustic.controls, {"pace": "1.5"})
  assert values == {"pace": 1.5, "pitch_shift": 0.0, "pitch_scale": 1.0, "energy_scale": 1.0}
  with pytest.raises(ValueError, match="pace"):
    serving_lib.resolve_controls(acoustic.controls, {"pace": "0"})
  assert int(acoustic.frames_bound(text_ids, text_lengths)) == lengths.max()


def test_bfloat16_serving_follows_float32():
  from tfspeech import testing  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  from tfspeech.training import precision  # pylint: disable=import-outside-toplevel
  assert precision.task_precisions(registry.get("fastpitch")) == ("float32", "bfloat16")
  tf.keras.utils.set_random_seed(5)
  exact = _serving()
  testing.randomize_weights([exact.model], seed=5)
  # Trained-like durations: ~4 frames, varying per token (the perturbed output layer alone
  # would give 0 or the 75-frame cap).
  dense = exact.model.duration_predictor.fc
  dense.kernel.assign(dense.kernel * 0.1)
  dense.bias.assign([np.log(5.0)])
  with precision.precision_policy("bfloat16"):  # what load_run(..., precision=) builds under
    fast = _serving()
  for source, target in zip(exact.model.variables, fast.model.variables):
    target.assign(source)
  text_ids, text_lengths, _, _ = _batch()
  seeds, speakers = tf.zeros([2, 2], tf.int32), tf.zeros([2], tf.int32)
  controls = [tf.constant(v) for v in (1.0, 0.0, 1.0, 1.0)]
  fast_fn = synthesize_lib.make_synthesis_fn(fast)
  concrete = fast_fn.get_concrete_function()
  assert_no_python_ops(concrete)
  compute = testing.op_dtypes(concrete, ("Conv2D", "MatMul", "BatchMatMulV2"))
  assert "bfloat16" in compute, compute
  want = synthesize_lib.make_synthesis_fn(exact)(text_ids, text_lengths, seeds, speakers,
                                                  *controls)
  got = fast_fn(text_ids, text_lengths, seeds, speakers, *controls)
  assert got["mel"].dtype == tf.float32
  # Durations are rounded from bfloat16 predictions: a token may move by a frame.
  difference = np.abs(got["durations"].numpy() - want["durations"].numpy())
  assert difference.max() <= 1 and (difference == 0).mean() > 0.8, (
      difference, want["durations"].numpy())
  # With the same durations the mels differ by bfloat16 rounding only.
  durations = want["durations"]
  want_mel = exact.model.infer(text_ids, text_lengths, durations=durations)["mel"].numpy()
  got_mel = tf.cast(fast.model.infer(text_ids, text_lengths, durations=durations)["mel"],
                    tf.float32).numpy()
  snr = 10 * np.log10(np.sum(want_mel ** 2) / np.sum((got_mel - want_mel) ** 2))
  assert 30 < snr < 80, snr  # float32 against itself would be exact (inf)


def test_ground_truth_aligned_keeps_the_target_frames():
  acoustic = _serving()
  assert acoustic.has_ground_truth_aligned
  text_ids, text_lengths, mel, mel_lengths = _batch()
  gta = acoustic.ground_truth_aligned(text_ids, text_lengths, mel, mel_lengths, None)
  assert gta.shape == mel.shape
  assert not gta.numpy()[0, 15:].any()
  assert np.isfinite(gta.numpy()).all()



def test_serving_converts_to_tflite_builtins_with_parity(tmp_path):
  # LiteRT, as the exporters use (tf.lite.Interpreter aborts once torch is loaded).
  litert = pytest.importorskip("ai_edge_litert.interpreter")
  acoustic = _serving()
  spec = [tf.TensorSpec([None, None], tf.int32, name="text_ids"),
          tf.TensorSpec([None], tf.int32, name="text_lengths"),
          tf.TensorSpec([], tf.float32, name="pace"),
          tf.TensorSpec([], tf.float32, name="pitch_shift")]

  @tf.function(input_signature=spec)
  def synthesize(text_ids, text_lengths, pace, pitch_shift):
    return acoustic.synthesize(text_ids, text_lengths, None, pace=pace,
                               pitch_shift=pitch_shift)

  module = tf.Module()
  module.model = acoustic.model
  module.synthesize = synthesize
  tf.saved_model.save(module, str(tmp_path), signatures={"synthesize": synthesize})
  loaded = tf.saved_model.load(str(tmp_path))
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [loaded.signatures["synthesize"]], loaded)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  path = tmp_path / "fastpitch.tflite"
  path.write_bytes(converter.convert())
  runner = litert.Interpreter(model_path=str(path)).get_signature_runner()
  text_ids, text_lengths, _, _ = _batch()
  for batch, pace in ((2, 1.0), (1, 1.5)):  # the runner resizes to each input's shapes
    inputs = {"text_ids": text_ids.numpy()[:batch], "text_lengths": text_lengths.numpy()[:batch],
              "pace": np.float32(pace), "pitch_shift": np.float32(20.0)}
    got = runner(**inputs)
    want = synthesize(**{k: tf.constant(v) for k, v in inputs.items()})
    np.testing.assert_array_equal(got["durations"], want["durations"].numpy())
    np.testing.assert_array_equal(got["mel_lengths"], want["mel_lengths"].numpy())
    np.testing.assert_allclose(got["mel"], want["mel"].numpy(), atol=1e-4)


def test_default_controls_leave_the_model_output_unchanged():
  acoustic = _serving()
  text_ids, text_lengths, _, _ = _batch()
  plain = acoustic.model.infer(text_ids, text_lengths)
  served = acoustic.synthesize(text_ids, text_lengths, None)
  np.testing.assert_array_equal(served["durations"].numpy(), plain["durations"].numpy())
  np.testing.assert_allclose(served["mel"].numpy(), plain["mel"].numpy(), atol=1e-4)


def test_training_conv_equals_keras_conv_with_gradients():
  import keras  # pylint: disable=import-outside-toplevel
  from tfspeech.models.fastpitch.layers import TrainingConv1D  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(5)
  fast, plain = TrainingConv1D(6, 3), keras.layers.Conv1D(6, 3, padding="same")
  for layer in (fast, plain):
    layer.build((None, None, 4))
  for source, target in zip(plain.variables, fast.variables):
    source.assign(rng.normal(size=source.shape))  # biases too: a zero bias hides its gradient
    target.assign(source)
  upstream = tf.constant(rng.normal(size=[2, 9, 6]), tf.float32)

  # Time unknown in the trace, as in a train step.
  @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
  def value_and_gradients(x):
    results = []
    for layer, kwargs in ((fast, {"training": True}), (plain, {})):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, **kwargs)
        loss = tf.reduce_sum(y * upstream)
      results.append([y] + tape.gradient(loss, [x, layer.kernel, layer.bias]))
    return results
  x = tf.constant(rng.normal(size=[2, 9, 4]), tf.float32)
  got, want = value_and_gradients(x)
  for name, a, b in zip(("output", "d_input", "d_kernel", "d_bias"), got, want):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
  # Inference is Keras's own convolution.
  np.testing.assert_array_equal(fast(x).numpy(), plain(x).numpy())
  with pytest.raises(ValueError, match="must be odd"):
    TrainingConv1D(6, 4)


def _feed_forward_op_types(concrete, stack):
  """Op types under a stack's feed-forward blocks (nested functions included)."""
  graph = concrete.graph.as_graph_def()
  nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
  return {(n.op, "conv" in n.name) for n in nodes if n.name.startswith(stack) and "feed_forward"
          in n.name}


def test_in_process_synthesis_runs_winograd_with_the_exported_graphs_values(monkeypatch):
  from tfspeech import testing  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  from tfspeech.ops import winograd  # pylint: disable=import-outside-toplevel
  # The tiny preset's 16 <-> 64 channels are below where F(4, 3) pays; take it anyway.
  monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 0)
  exported = _serving()
  testing.randomize_weights([exported.model], seed=7)  # biases too, as a trained model's
  dense = exported.model.duration_predictor.fc
  dense.kernel.assign(dense.kernel * 0.1)
  dense.bias.assign([np.log(5.0)])
  in_process = exported.in_process()
  assert in_process is exported.in_process()  # one object: its traced functions are reused
  assert in_process.in_process() is in_process
  assert in_process.winograd == "cached" and not exported.winograd  # no GPU here
  text_ids, text_lengths, _, _ = _batch()
  seeds, speakers = tf.zeros([2, 2], tf.int32), tf.zeros([2], tf.int32)
  controls = [tf.constant(v) for v in (1.0, 0.0, 1.0, 1.0)]
  functions = {}
  for name, acoustic in (("exported", exported), ("in_process", in_process)):
    fn = synthesize_lib.make_synthesis_fn(acoustic)
    concrete = fn.get_concrete_function()
    assert_no_python_ops(concrete)
    for stack in ("encoder", "decoder"):
      ops = _feed_forward_op_types(concrete, stack)
      if name == "exported":  # the exporters' graph keeps the convolutions
        assert ("Conv2D", True) in ops and not any(op == "BatchMatMulV2" for op, _ in ops)
      else:  # F(4, 3) with the kernels transformed beforehand: no convolution, no transform
        assert ("BatchMatMulV2", False) in ops and ("Conv2D", True) not in ops, ops
    functions[name] = fn

  def compare():
    want, got = (functions[name](text_ids, text_lengths, seeds, speakers, *controls)
                 for name in ("exported", "in_process"))
    np.testing.assert_array_equal(got["durations"].numpy(), want["durations"].numpy())
    np.testing.assert_array_equal(got["mel_lengths"].numpy(), want["mel_lengths"].numpy())
    want_mel, got_mel = want["mel"].numpy(), got["mel"].numpy()
    error = np.abs(got_mel - want_mel).max() / np.abs(want_mel).max()
    assert 0 < error < 2e-5, error  # F(4, 3)'s round-off, not a changed network
    return got_mel
  before = compare()
  # New weights reach the traced in-process function when in_process() is called again.
  kernel = exported.model.decoder.blocks[0].feed_forward.conv_1.kernel
  kernel.assign(kernel * 1.5)
  assert exported.in_process() is in_process
  after = compare()
  assert np.abs(after - before).max() > 1e-3

  # Training: the decoder's gradients through F(4, 3) equal the convolutions'.
  model = exported.model
  _, _, mel, mel_lengths = _batch()
  pitch = tf.random.stateless_uniform([2, 22], [3, 4], 80.0, 250.0)

  def loss_and_gradients(use_winograd):
    with tf.GradientTape() as tape:
      out = model.forward(text_ids, text_lengths, mel, mel_lengths, pitch, pitch, 150.0, 40.0,
                          training=False, winograd=use_winograd)
      loss = tf.reduce_sum(tf.sin(out["mel"]))
    variables = model.decoder.trainable_variables
    return loss, tape.gradient(loss, variables), [v.path for v in variables]

  want_loss, want_grads, names = loss_and_gradients(False)
  got_loss, got_grads, _ = loss_and_gradients(True)
  np.testing.assert_allclose(float(got_loss), float(want_loss), rtol=1e-5)
  assert any("feed_forward/conv_1/kernel" in name for name in names)
  # Round-off apart: the training pass did take F(4, 3).
  assert max(float(tf.reduce_max(tf.abs(g - w))) for g, w in zip(got_grads, want_grads)) > 0
  for name, g, w in zip(names, got_grads, want_grads):
    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0, atol=1e-4 * np.abs(w).max() + 1e-7,
                               err_msg=name)


def test_direct_convolutions_run_packed_where_the_dtype_keeps_them(monkeypatch):
  """bfloat16 keeps the feed-forward convolutions (no F(4, 3)) but still runs them over the
  batch's real steps only: forced here in float32 (F(4, 3) unsupported, every width wide
  enough), the packed pass equals the padded one, values and gradients."""
  from tfspeech import testing  # pylint: disable=import-outside-toplevel
  from tfspeech.ops import winograd  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 0)
  monkeypatch.setattr(winograd, "supported", lambda *unused: False)
  model = FastPitch(fastpitch_presets.tiny())
  testing.randomize_weights([model], seed=11)
  text_ids, text_lengths, mel, mel_lengths = _batch()
  pitch = tf.random.stateless_uniform([2, 22], [5, 6], 80.0, 250.0)
  feed_forward = model.decoder.blocks[0].feed_forward
  assert feed_forward.packed_tile(True, tf.float32) == 1
  assert feed_forward.packed_tile(False, tf.float32) is None

  def run(packed):
    with tf.GradientTape() as tape:
      out = model.forward(text_ids, text_lengths, mel, mel_lengths, pitch, pitch, 150.0, 40.0,
                          training=False, winograd=packed)
      loss = tf.reduce_sum(tf.sin(out["mel"]))
    return out["mel"].numpy(), tape.gradient(loss, model.decoder.trainable_variables)

  want_mel, want_grads = run(False)
  got_mel, got_grads = run(True)
  np.testing.assert_allclose(got_mel, want_mel, rtol=0, atol=1e-5 * np.abs(want_mel).max())
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=0, atol=1e-5 * np.abs(w).max() + 1e-7)
  graph = tf.function(lambda: model.forward(
      text_ids, text_lengths, mel, mel_lengths, pitch, pitch, 150.0, 40.0,
      winograd=True)["mel"]).get_concrete_function().graph
  gathers = [op.name for op in graph.get_operations()
             if op.type == "GatherV2" and "feed_forward" in op.name]
  assert gathers, "the feed-forward blocks did not pack the batch"


def test_bfloat16_in_process_synthesis_runs_packed_convolutions(monkeypatch):
  """load_run(..., precision="bfloat16") synthesizes through `in_process()` too: the encoder's
  and the decoder's feed-forward convolutions stay convolutions (no F(4, 3) in bfloat16) over
  the batch's packed real steps, with the padded graph's values."""
  from tfspeech import testing  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  from tfspeech.ops import winograd  # pylint: disable=import-outside-toplevel
  from tfspeech.training import precision  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 0)  # the tiny preset's widths
  with precision.precision_policy("bfloat16"):
    padded = _serving()
  testing.randomize_weights([padded.model], seed=9)
  dense = padded.model.duration_predictor.fc
  dense.kernel.assign(dense.kernel * 0.1)
  dense.bias.assign([np.log(5.0)])
  packed = padded.in_process()
  assert packed is padded.in_process() and packed.in_process() is packed
  assert packed.winograd is True and not padded.winograd
  concrete = synthesize_lib.make_synthesis_fn(packed).get_concrete_function()
  assert_no_python_ops(concrete)
  for stack in ("encoder", "decoder"):
    ops = _feed_forward_op_types(concrete, stack)
    assert ("Conv2D", True) in ops and ("GatherV2", False) in ops, (stack, ops)
    assert not any(op == "BatchMatMulV2" for op, _ in ops), (stack, ops)
  text_ids, text_lengths, _, _ = _batch()
  # The same durations for both, so that the mels compare frame by frame.
  durations = padded.model.infer(text_ids, text_lengths)["durations"]
  assert int(tf.reduce_min(tf.reduce_sum(durations, 1))) > 4
  want = tf.cast(padded.model.infer(text_ids, text_lengths, durations=durations)["mel"],
                 tf.float32).numpy()
  got = tf.cast(packed.model.infer(text_ids, text_lengths, durations=durations,
                                   winograd=packed.winograd)["mel"], tf.float32).numpy()
  error = np.abs(got - want).max() / np.abs(want).max()
  assert error < 2e-2, error  # bfloat16's rounding (8-bit mantissa), not another network
