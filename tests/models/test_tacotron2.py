"""Tacotron 2 model and decoding: presets, reference parity, batched per-item stop, purity."""

import importlib
import importlib.util
import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspeech import text as text_lib
from tfspeech.models import registry
from tfspeech.models import tacotron2
from tfspeech.models.tacotron2 import Tacotron2, Tacotron2Config, Tacotron2Serving
from tfspeech.testing import assert_no_python_ops

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (optional: the "
                                 "benchmarks' PyTorch baselines)")
# NVIDIA/tacotron2 with its 148 symbols (hparams.py), counted by the PyTorch transcription.
REFERENCE_PARAMETERS = 28_193_153
TEXTS = [[5, 9, 12, 30, 7, 44, 21, 3], [17, 4, 40], [8, 8, 25, 60, 33]]


def _torch_reference():
  if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))
  importlib.import_module("benchmarks.torch_reference")  # Sets the OpenMP policy first.
  return importlib.import_module("benchmarks.torch_reference.tacotron2")


def _trainable_count(model):
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _batch(texts):
  lengths = [len(t) for t in texts]
  ids = np.zeros([len(texts), max(lengths)], np.int32)
  for row, text in enumerate(texts):
    ids[row, :len(text)] = text
  return tf.constant(ids), tf.constant(lengths, tf.int32)


@pytest.fixture(scope="module")
def model():
  keras.utils.set_random_seed(3)  # Keras initializers ignore tf.random.set_seed.
  net = Tacotron2(tacotron2.tiny())
  # Trained-looking BatchNorm statistics, so inference-mode normalisation is not the identity.
  rng = np.random.default_rng(0)
  for layer in net.encoder.norms + net.postnet.norms:
    layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
    layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
  _counting_gate(net)
  return net


def _counting_gate(net):
  """Makes the stop gate count steps at a different rate per text of `TEXTS`.

  An untrained gate drifts the same way for every item, so no bias makes items stop at
  distinct steps. Here decoder LSTM unit 0 becomes an accumulator (input, forget and output
  gates saturated open, no recurrent input): its cell grows by `tanh(0.15 + u . context)` per
  step, with `u` chosen so that the texts' mean encodings give rates about 0.07, 0.15 and
  0.23; the gate reads only that unit (`10 * tanh(cell) + bias`). Everything else (attention,
  the mel path) is the untouched random model.
  """
  config = net.config
  units, query = config.decoder_rnn_dim, config.attention_rnn_dim
  ids, lengths = _batch(TEXTS)
  memory, mask = net.encode(ids, lengths)
  means = (tf.reduce_sum(memory * tf.cast(mask, tf.float32)[..., None], 1)
           / tf.cast(lengths, tf.float32)[:, None]).numpy()
  u = np.linalg.lstsq(means, np.array([-0.08, 0.0, 0.08]), rcond=None)[0]
  columns = [k * units for k in range(4)]  # Unit 0 of the i, f, g, o gates.
  kernel = net.decoder_rnn.kernel.numpy()
  recurrent = net.decoder_rnn.recurrent_kernel.numpy()
  bias = net.decoder_rnn.bias.numpy()
  recurrent_bias = net.decoder_rnn.recurrent_bias.numpy()
  kernel[:, columns] = 0.0
  kernel[query:, columns[2]] = u  # g reads the attention context.
  recurrent[:, columns] = 0.0
  recurrent_bias[columns] = 0.0
  bias[columns] = [30.0, 30.0, 0.15, 30.0]
  for variable, value in ((net.decoder_rnn.kernel, kernel),
                          (net.decoder_rnn.recurrent_kernel, recurrent),
                          (net.decoder_rnn.bias, bias),
                          (net.decoder_rnn.recurrent_bias, recurrent_bias)):
    variable.assign(value)
  gate = np.zeros(net.gate_layer.kernel.shape, np.float32)
  gate[0, 0] = 10.0
  net.gate_layer.kernel.assign(gate)


@pytest.fixture(scope="module")
def decode(model):
  """A traced `synthesize` of the export form (None dims) and of the in-process form."""
  serving = Tacotron2Serving(model)
  spec = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32),
          tf.TensorSpec([None, None, serving.noise_channels], tf.float32),
          tf.TensorSpec([], tf.int32)]
  functions = {}
  for name, served in (("export", serving), ("in_process", serving.in_process())):
    def synthesize(ids, lengths, noise, steps, served=served):
      return served.synthesize(ids, lengths, noise, max_decoder_steps=steps)
    concrete = tf.function(synthesize, input_signature=spec).get_concrete_function()
    # Callable with a Python step count; keeps the serving object (and so the graph) alive.
    functions[name] = (lambda ids, lengths, noise, steps, concrete=concrete, served=served:
                       concrete(ids, lengths, noise, tf.constant(steps, tf.int32)))
    functions[name].concrete = concrete
  return functions


def _noise(batch, frames, channels, seed=0):
  return tf.random.stateless_normal([batch, frames, channels], [seed, 1])


def _with_gate_bias(model, bias, fn):
  saved = model.gate_layer.bias.numpy()
  model.gate_layer.bias.assign([bias])
  try:
    return fn()
  finally:
    model.gate_layer.bias.assign(saved)


def test_registered_presets_and_config_checks():
  cls = registry.get("tacotron2")
  assert cls is tacotron2.Tacotron2Task and cls.serving_role == "acoustic"
  assert cls.presets is tacotron2.PRESETS and set(cls.presets) == {"tiny", "ljspeech"}
  reference = cls.preset("ljspeech")
  assert reference == Tacotron2Config()  # The defaults are hparams.py.
  assert reference.n_symbols == len(text_lib.english_arpabet()) == 148
  assert cls.preset("tiny").n_symbols == len(text_lib.english_characters())
  assert (reference.encoder_embedding_dim, reference.attention_rnn_dim,
          reference.decoder_rnn_dim, reference.prenet_dim, reference.attention_dim,
          reference.attention_location_n_filters, reference.attention_location_kernel_size,
          reference.postnet_n_convolutions, reference.max_decoder_steps) == (
              512, 1024, 1024, 256, 128, 32, 31, 5, 1000)
  assert cls.default_train_config("ljspeech").learning_rate == 1e-3
  assert tacotron2.tiny(n_symbols=10).n_symbols == 10
  with pytest.raises(ValueError, match="n_frames_per_step: only 1"):
    tacotron2.tiny(n_frames_per_step=2)
  with pytest.raises(ValueError, match="encoder_embedding_dim"):
    tacotron2.tiny(encoder_embedding_dim=15)
  # The guided-attention loss: off in the reference recipe, on in tiny.
  assert reference.guided_attention_weight == 0.0 and cls.preset("tiny").guided_attention_weight > 0
  with pytest.raises(ValueError, match="guided_attention_weight: must be >= 0"):
    tacotron2.tiny(guided_attention_weight=-1.0)
  with pytest.raises(ValueError, match="guided_attention_g: must be > 0"):
    tacotron2.tiny(guided_attention_g=0.0)
  with pytest.raises(ValueError, match="unknown Tacotron 2 preset"):
    tacotron2.preset("paper")


def _synthetic_alignments(kind, frames, tokens, pad_frames=3, pad_tokens=2):
  """One `[1, frames + pad_frames, tokens + pad_tokens]` alignment: "diagonal" (each frame on
  its length-scaled token), "stuck" (every frame on the first two tokens) or "uniform"."""
  weights = np.zeros([1, frames + pad_frames, tokens + pad_tokens], np.float32)
  for t in range(frames):
    if kind == "diagonal":
      weights[0, t, min(int((t + 0.5) * tokens / frames), tokens - 1)] = 1.0
    elif kind == "stuck":
      weights[0, t, :2] = 0.5
    else:
      weights[0, t, :tokens] = 1.0 / tokens
  # Padding frames hold garbage that must not count.
  weights[0, frames:, 0] = 1.0
  return tf.constant(weights), tf.constant([frames]), tf.constant([tokens])


@pytest.mark.parametrize("frames, tokens", [(200, 40), (37, 50)])
def test_diagonality_separates_diagonal_from_stuck_alignments(frames, tokens):
  measure = {kind: float(tacotron2.alignment_diagonality(
      *_synthetic_alignments(kind, frames, tokens))[0])
             for kind in ("diagonal", "stuck", "uniform")}
  assert measure["diagonal"] == pytest.approx(1.0)
  # Stuck on the first tokens: only the first ~10% of the frames are near them.
  assert measure["stuck"] < 0.15, measure
  assert 0.1 < measure["uniform"] < 0.25, measure
  penalty = {kind: float(tf.reduce_sum(tacotron2.guided_attention_penalty(
      *_synthetic_alignments(kind, frames, tokens))) / frames) for kind in measure}
  assert penalty["diagonal"] < 0.01 and penalty["stuck"] > 0.5, penalty
  assert penalty["diagonal"] < penalty["uniform"] < penalty["stuck"], penalty
  # A wrong diagonal (the text read twice as fast, then stuck at its end) is half off.
  weights, mel_lengths, text_lengths = _synthetic_alignments("diagonal", frames, tokens)
  fast = tf.concat([weights[:, ::2], weights[:, ::2]], axis=1)[:, :frames]
  fast = tf.where(tf.range(frames)[None, :, None] < (frames + 1) // 2, fast,
                  tf.one_hot(tokens - 1, tokens + 2)[None, None])
  value = float(tacotron2.alignment_diagonality(
      fast, mel_lengths, text_lengths)[0])
  assert 0.2 < value < 0.75, value


@needs_torch
@pytest.mark.parametrize("name", ["tiny", "ljspeech"])
def test_parameter_counts_match_the_pytorch_reference(name):
  reference = _torch_reference()
  config = tacotron2.preset(name)
  torch_count = reference.count_parameters(
      reference.Tacotron2(reference.params_from_tfspeech(config)))
  assert _trainable_count(Tacotron2(config)) == torch_count
  if name == "ljspeech":
    assert torch_count == REFERENCE_PARAMETERS


def test_ljspeech_parameter_count_without_torch():
  # The same number, so the parity holds where torch is not installed too.
  assert _trainable_count(Tacotron2(tacotron2.ljspeech())) == REFERENCE_PARAMETERS


@needs_torch
def test_matches_the_pytorch_reference_with_copied_weights():
  """Teacher forcing (a padded batch against unpadded reference runs) and free decoding,
  without prenet dropout (the one randomness the two cannot share)."""
  import torch  # pylint: disable=import-outside-toplevel
  reference = _torch_reference()
  config = tacotron2.tiny(prenet_dropout=0.0)
  keras.utils.set_random_seed(1)
  net = Tacotron2(config)
  rng = np.random.default_rng(1)
  for layer in net.encoder.norms + net.postnet.norms:
    layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
    layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
  torch_net = reference.load_tfspeech_weights(
      reference.Tacotron2(reference.params_from_tfspeech(config)), net).eval()
  ids, lengths = _batch(TEXTS[:2])
  mel = rng.normal(-5, 2, [2, 12, 80]).astype(np.float32)
  mel_lengths = tf.constant([12, 12])
  ours = net.teacher_forced(ids, lengths, tf.constant(mel), mel_lengths,
                            noise=tf.zeros([2, 1, config.prenet_noise_channels]))
  for row, text in enumerate(TEXTS[:2]):
    # The reference computes padding positions too (its convolutions mix them into the last
    # real tokens); tfspeech zeroes them. So each text is compared unpadded, against the
    # batch.
    with torch.no_grad():
      theirs = torch_net(torch.as_tensor([text]).long(), torch.as_tensor([len(text)]),
                         torch.as_tensor(mel[row:row + 1].transpose(0, 2, 1)),
                         torch.as_tensor([12]))
    np.testing.assert_allclose(ours["mel_before"][row], theirs[0][0].numpy().T, atol=2e-5)
    np.testing.assert_allclose(ours["mel_after"][row], theirs[1][0].numpy().T, atol=2e-5)
    np.testing.assert_allclose(ours["gate_logits"][row], theirs[2][0].numpy(), atol=2e-5)
    np.testing.assert_allclose(ours["alignments"][row, :, :len(text)], theirs[3][0].numpy(),
                               atol=2e-5)
    assert np.all(ours["alignments"][row, :, len(text):] == 0)

  # Free decoding of one text until the step limit (gate bias forced low in both).
  net.gate_layer.bias.assign([-100.0])
  reference_steps = 15
  torch_net = reference.load_tfspeech_weights(
      reference.Tacotron2(reference.params_from_tfspeech(
          config.replace(max_decoder_steps=reference_steps))), net).eval()
  ours = net.infer(ids[:1], lengths[:1], tf.zeros([1, 1, config.prenet_noise_channels]),
                   max_decoder_steps=reference_steps)
  with torch.no_grad():
    theirs = torch_net.inference(torch.as_tensor(ids.numpy()[:1]).long())
  assert int(ours["mel_lengths"][0]) == theirs[1].shape[2] == reference_steps
  np.testing.assert_allclose(ours["mel"][0], theirs[1][0].numpy().T, atol=5e-5)
  np.testing.assert_allclose(ours["alignments"][0], theirs[3][0].numpy(), atol=5e-5)


def _raw_gate_logits(model, ids, lengths, noise, steps):
  """Gate logits without the gate bias `[batch, steps]`, from a run that never stops."""
  never = -1e4
  out = _with_gate_bias(model, never, lambda: model.infer(ids, lengths, noise,
                                                          max_decoder_steps=steps))
  return out["gate_logits"].numpy() - never


def _stop_bias(gate_logits, max_steps):
  """A gate bias under which the items of a never-stopping run stop at distinct steps.

  Decoding is deterministic, and an item's frames before its stop do not depend on the bias
  (only the gate reads it), so its stop step under bias `b` is the first step whose logit
  (without bias) exceeds `-b` (threshold 0.5 = logit 0).
  """
  candidates = np.sort(np.unique(-gate_logits))
  best = None
  for low, high in zip(candidates[:-1], candidates[1:]):
    if high - low < 1e-2:
      continue  # Keep away from ties: every logit is at least 5e-3 from the threshold.
    bias = (low + high) / 2
    stops = [int(np.argmax(row + bias > 0)) + 1 if np.any(row + bias > 0) else max_steps
             for row in gate_logits]
    # Distinct stops after the first frame, all before the limit; of those, the latest first
    # stop.
    if len(set(stops)) == len(stops) and 1 < min(stops) and max(stops) < max_steps:
      if best is None or min(stops) > min(best[1]):
        best = (bias, stops)
  assert best is not None, "no bias separates the items' stops; pick other texts"
  return best


def test_batched_decoding_stops_per_item_and_respects_max_steps(model, decode):
  ids, lengths = _batch(TEXTS)
  channels = model.config.prenet_noise_channels
  noise = _noise(3, 7, channels)  # Shorter than the frames: repeated cyclically.
  steps = 40
  never = _with_gate_bias(model, -1e4, lambda: decode["export"](ids, lengths, noise, steps))
  # The max-steps guard: nobody stops, every item gets exactly `steps` frames.
  np.testing.assert_array_equal(never["mel_lengths"], [steps] * 3)
  assert never["mel"].shape[1] == steps
  bias, expected = _stop_bias(_raw_gate_logits(model, ids, lengths, noise, steps), steps)
  out = _with_gate_bias(model, bias, lambda: decode["export"](ids, lengths, noise, steps))
  np.testing.assert_array_equal(out["mel_lengths"], expected)
  assert out["mel"].shape[1] == max(expected) < steps  # The loop ended with the last item.
  mel = out["mel"].numpy()
  config = model.config
  reach = (config.postnet_kernel_size // 2) * config.postnet_n_convolutions
  for row, length in enumerate(expected):
    assert np.all(mel[row, length:] == 0) and np.all(np.abs(mel[row, :length]).sum(-1) > 0)
    # Frames before the stop are those of the never-stopping run, except the last ones the
    # postnet mixes with the zeros past the stop.
    kept = max(length - reach, 0)
    np.testing.assert_allclose(mel[row, :kept], never["mel"][row, :kept], atol=1e-5)
    assert not np.allclose(mel[row, length - 1], never["mel"][row, length - 1])
  durations = out["durations"].numpy()
  np.testing.assert_array_equal(durations.sum(1), expected)
  for row, text in enumerate(TEXTS):
    assert np.all(durations[row, len(text):] == 0)
  # The in-process form (TensorArrays) decodes the same.
  again = _with_gate_bias(model, bias, lambda: decode["in_process"](ids, lengths, noise, steps))
  for key in ("mel", "mel_lengths", "durations", "alignments"):
    np.testing.assert_allclose(again[key], out[key], atol=1e-6, err_msg=key)


def test_an_item_alone_equals_the_same_item_in_a_batch(model, decode):
  ids, lengths = _batch(TEXTS)
  channels = model.config.prenet_noise_channels
  steps = 40
  noise = _noise(3, steps, channels, seed=5)
  bias, _ = _stop_bias(_raw_gate_logits(model, ids, lengths, noise, steps), steps)
  together = _with_gate_bias(model, bias, lambda: decode["export"](ids, lengths, noise, steps))
  for row, text in enumerate(TEXTS):
    alone_ids, alone_lengths = _batch([text])
    alone = _with_gate_bias(model, bias, lambda: decode["export"](
        alone_ids, alone_lengths, noise[row:row + 1], steps))
    length = int(alone["mel_lengths"][0])
    assert length == int(together["mel_lengths"][row])
    np.testing.assert_allclose(alone["mel"][0], together["mel"][row, :length], atol=1e-5)
    np.testing.assert_allclose(alone["alignments"][0],
                               together["alignments"][row, :length, :len(text)], atol=1e-5)
    np.testing.assert_array_equal(alone["durations"][0],
                                  together["durations"][row, :len(text)])
  # The prenet noise is the model's randomness: other noise, another mel.
  other = _with_gate_bias(model, bias, lambda: decode["export"](
      ids, lengths, _noise(3, steps, channels, seed=6), steps))
  assert not np.allclose(other["mel"][0, :5], together["mel"][0, :5])


def test_graphs_are_pure_and_teacher_forcing_matches_gta(model, decode):
  for function in decode.values():
    assert_no_python_ops(function.concrete)
  serving = Tacotron2Serving(model)
  spec = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32),
          tf.TensorSpec([None, None, 80], tf.float32), tf.TensorSpec([None], tf.int32),
          tf.TensorSpec([None, None, serving.noise_channels], tf.float32)]
  gta = tf.function(serving.ground_truth_aligned, input_signature=spec).get_concrete_function()
  assert_no_python_ops(gta)
  ids, lengths = _batch(TEXTS)
  mel = tf.random.stateless_normal([3, 10, 80], [0, 2]) - 5.0
  mel_lengths = tf.constant([10, 6, 8])
  noise = _noise(3, 10, serving.noise_channels)
  out = gta(ids, lengths, mel, mel_lengths, noise).numpy()
  assert out.shape == (3, 10, 80) and np.all(out[1, 6:] == 0) and np.all(np.isfinite(out))
  # GTA is the training forward pass in inference mode, with the given prenet noise.
  forced = model.teacher_forced(ids, lengths, mel, mel_lengths, noise=noise)
  np.testing.assert_allclose(out, forced["mel_after"], atol=1e-6)
  # Training mode draws its dropout and prenet noise from the seed (a fresh model: training
  # mode moves the BatchNorm statistics).
  fresh = Tacotron2(model.config)
  first = fresh.teacher_forced(ids, lengths, mel, mel_lengths, training=True, seed=[1, 2])
  second = fresh.teacher_forced(ids, lengths, mel, mel_lengths, training=True, seed=[1, 2])
  third = fresh.teacher_forced(ids, lengths, mel, mel_lengths, training=True, seed=[1, 3])
  np.testing.assert_array_equal(first["gate_logits"], second["gate_logits"])
  assert not np.allclose(first["gate_logits"], third["gate_logits"])


def test_teacher_forced_gradients_equal_the_per_step_form(model):
  # Training makes the LSTM weight gradients once after the decoder loop (`LoopMatmul`);
  # TFLite's preallocated form multiplies step by step. Same dropout seed, same values: the
  # gradients of every variable must agree, LSTM kernels included.
  ids, lengths = _batch(TEXTS)
  rng = np.random.default_rng(1)
  frames = 9
  mel = tf.constant(rng.normal(size=[3, frames, model.config.n_mel_channels]), tf.float32)
  mel_lengths = tf.constant([9, 6, 7], tf.int32)
  noise = _noise(3, frames, model.config.prenet_noise_channels)
  seed = tf.constant([4, 5], tf.int32)
  weights = tf.constant(rng.normal(size=[3, frames, model.config.n_mel_channels]), tf.float32)

  def gradients(preallocated):
    with tf.GradientTape() as tape:
      out = model.teacher_forced(ids, lengths, mel, mel_lengths, noise, training=True,
                                 seed=seed, preallocated=preallocated)
      loss = (tf.reduce_sum(out["mel_after"] * weights) + tf.reduce_sum(out["gate_logits"])
              + tf.reduce_sum(out["alignments"] ** 2))
    return loss, [tf.convert_to_tensor(g)
                  for g in tape.gradient(loss, model.trainable_variables)]

  batched_loss, batched = tf.function(lambda: gradients(False))()
  stepwise_loss, stepwise = tf.function(lambda: gradients(True))()
  np.testing.assert_allclose(batched_loss, stepwise_loss, rtol=1e-5)
  names = [v.path for v in model.trainable_variables]
  assert any("decoder_rnn" in n and "recurrent_kernel" in n for n in names)
  # Float rounding differs (one product of [input kernel; recurrent kernel], other sums):
  # each variable within 1e-4 of its own largest gradient, plus 1e-6 of the largest of all
  # (a conv bias before training-mode BatchNorm has a gradient that is zero but for noise).
  largest = max(float(tf.reduce_max(tf.abs(b))) for b in stepwise)
  worst = 0.0
  for name, a, b in zip(names, batched, stepwise):
    scale = float(tf.reduce_max(tf.abs(b)))
    np.testing.assert_allclose(a, b, atol=1e-4 * scale + 1e-6 * largest, err_msg=name)
    if "_rnn" in name:
      worst = max(worst, float(tf.reduce_max(tf.abs(a - b))) / scale)
  print(f"largest gradient {largest:.3g}; LSTM weights' worst error relative to their largest "
        f"{worst:.2g}")
  # Every LSTM kernel gets a gradient that is not zero.
  for name, a in zip(names, batched):
    if "_rnn" in name:
      assert float(tf.reduce_max(tf.abs(a))) > 0, name
