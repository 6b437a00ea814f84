"""TFLite export: frozen-graph rewrites, parity of every graph and precision under LiteRT.

References are the trained Keras modules themselves (Grad-TTS `synthesize` with its
`tf.while_loop` decoder, the weight-norm HiFi-GAN generator), never the exported graphs.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tensorflow.python.framework import tensor_util
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from tfspeech.export import export_lib, frozen_graph, inference_graphs, tflite
from tfspeech.testing import assert_no_python_ops

# Must equal the conftest's n_timesteps fixture (it drives every test export).
N_TIMESTEPS = 2
TEMPERATURE = np.float32(1.5)
LENGTH_SCALE = np.float32(1.0)
# float32 TFLite vs TF: max |error| <= FLOAT32_RTOL * max |reference|.
FLOAT32_RTOL = 1e-4
# Quantized weights: documented bounds on the same relative error, measured on these random
# tiny models (float16 ~1e-3, dynamic range ~3e-2), with headroom.
QUANTIZED_RTOL = {"float16": 1e-2, "dynamic_range": 0.15}


def relative_error(actual, reference):
  reference = np.asarray(reference)
  return float(np.max(np.abs(np.asarray(actual) - reference)) / max(np.max(np.abs(reference)), 1e-12))


def text_inputs(batch_lengths, seed=0, noise_frames=400, vocab=64):
  """Padded random ids (no pad id 0) and long-enough noise for `batch_lengths`."""
  rng = np.random.default_rng(seed)
  tokens = max(batch_lengths)
  ids = rng.integers(1, vocab, size=(len(batch_lengths), tokens)).astype(np.int32)
  for row, length in enumerate(batch_lengths):
    ids[row, length:] = 0
  noise = rng.standard_normal((len(batch_lengths), noise_frames, 80)).astype(np.float32)
  return {"text_ids": ids, "text_lengths": np.array(batch_lengths, np.int32), "noise": noise,
          "temperature": TEMPERATURE, "length_scale": LENGTH_SCALE}


def reference_mel(model, inputs):
  """Grad-TTS's own synthesis (while-loop decoder) on the same noise."""
  out = model.synthesize(inputs["text_ids"], inputs["text_lengths"], n_timesteps=N_TIMESTEPS,
                         temperature=float(inputs["temperature"]),
                         length_scale=float(inputs["length_scale"]), noise=inputs["noise"])
  return out.mel_decoded.numpy(), out.mel_lengths.numpy()


def builtin_only(path):
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  ops = {op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()}  # pylint: disable=protected-access
  return sorted(op for op in ops if op.startswith("Flex") or op == "CUSTOM")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, acoustic_run, vocoder_run, n_timesteps):
  """float32 text_to_audio + mel_to_audio with metadata.json (`quantized` adds the rest).

  text_to_mel is the first half of text_to_audio (same mel outputs), so it is not
  converted separately here; test_cli covers a text_to_mel-free export path.
  """
  assert n_timesteps == N_TIMESTEPS
  root = tmp_path_factory.mktemp("tflite")
  graphs = inference_graphs.graphs_for_runs(acoustic_run, vocoder_run,
                                            {"n_timesteps": N_TIMESTEPS},
                                            names=["mel_to_audio", "text_to_audio"])
  frozen_dir = str(root / "frozen")
  files = tflite.export_graphs(graphs, str(root / "float32"), frozen_dir=frozen_dir)
  metadata = inference_graphs.export_metadata(
      "tflite", graphs, {name: os.path.basename(path) for name, path in files.items()},
      acoustic_run, vocoder_run)
  files["metadata"] = tflite.write_metadata(metadata, str(root / "float32"))
  return {"graphs": graphs, "frozen_dir": frozen_dir, **files}


@pytest.fixture(scope="module")
def quantized(exported, tmp_path_factory):
  """text_to_audio converted at each quantized precision, from `exported`'s frozen graph.

  Its own fixture so that the smoke subset (float32 parity only) does not pay for two
  more conversions.
  """
  root = tmp_path_factory.mktemp("tflite_quantized")
  files = {}
  for precision in ("float16", "dynamic_range"):
    converted = tflite.export_graphs({"text_to_audio": exported["graphs"]["text_to_audio"]},
                                     str(root / precision), precision,
                                     frozen_dir=exported["frozen_dir"])
    files[precision] = converted["text_to_audio"]
  return files


def test_new_axis_slices_are_rewritten_to_expand_dims():
  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32, name="x")])
  def fn(x):
    check = tf.debugging.assert_positive(tf.shape(x)[0])
    with tf.control_dependencies([check]):
      return {"a": x[:, None], "b": x[..., None, :], "c": x[1:, None, ::2, None],
              "d": x[None, :, -1], "e": x[..., None]}
  frozen = frozen_graph.freeze(fn.get_concrete_function())
  nodes = frozen.graph.as_graph_def().node
  assert not [n.name for n in nodes if n.op == "StridedSlice" and n.attr["new_axis_mask"].i]
  assert not [n.name for n in nodes if n.op == "Assert"]
  for shape in [(1, 1, 3), (2, 5, 3), (4, 3, 3)]:
    x = tf.random.normal(shape)
    expected, actual = fn(x), frozen(x)
    for key, value in expected.items():
      assert actual[key].shape == value.shape, key
      np.testing.assert_array_equal(actual[key], value, err_msg=key)


def test_variable_reads_become_one_constant():
  """Freezing makes each read an Identity of one Const; consumers read the Const itself, so
  a converter folding those Identities cannot store the weight once per read."""
  weight = tf.Variable(tf.random.normal([3, 4]))

  @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
  def fn(x):
    hidden = tf.matmul(x, weight)
    return {"y": tf.matmul(tf.nn.relu(hidden), weight, transpose_b=True) + tf.identity(x),
            "w": weight + 0.0}
  frozen = frozen_graph.freeze(fn.get_concrete_function())
  nodes = {n.name: n for n in frozen.graph.as_graph_def().node}
  consts = {name for name, node in nodes.items() if node.op == "Const"}
  const_identities = [name for name, node in nodes.items() if node.op == "Identity"
                      and node.input and node.input[0].split(":")[0] in consts]
  assert const_identities == []
  weight_consts = [name for name in consts if nodes[name].attr["value"].tensor.tensor_shape.dim
                   and [d.size for d in nodes[name].attr["value"].tensor.tensor_shape.dim]
                   == [3, 4]]
  assert len(weight_consts) == 1, weight_consts
  x = tf.random.normal([5, 3])
  for key, value in fn(x).items():
    np.testing.assert_array_equal(frozen(x)[key], value, err_msg=key)


def const_operands(graph_def, producer_ops):
  """Shapes of the Const operands of Add/AddV2/BiasAdd nodes that add to a producer_ops output."""
  nodes = {n.name: n for n in graph_def.node}
  shapes = []
  for node in graph_def.node:
    if node.op in ("Add", "AddV2", "BiasAdd"):
      inputs = [nodes[name.split(":")[0]] for name in node.input[:2]]
      if any(n.op in producer_ops for n in inputs):
        shapes += [[d.size for d in n.attr["value"].tensor.tensor_shape.dim]
                   for n in inputs if n.op == "Const"]
  return sorted(shapes)


def test_conv_biases_become_rank_1():
  """A conv's bias added as a [1, 1, 1, C] constant (Keras does so for C == 1: the Grad-TTS
  score estimator's final_conv) becomes [C]: the TFJS converter fuses it into _FusedConv2D,
  whose wasm kernel rejects any other rank (issue #16). TF outputs stay bit-identical."""
  conv_1 = tf.keras.layers.Conv2D(1, 1, bias_initializer="random_normal")
  conv_3 = tf.keras.layers.Conv2D(3, 1, bias_initializer="random_normal")
  offset = tf.constant(np.arange(2, dtype=np.float32).reshape([1, 1, 1, 2]))

  @tf.function(input_signature=[tf.TensorSpec([None, None, 5, 2], tf.float32, name="x")])
  def fn(x):
    flat = tf.reshape(x, [-1, 2])
    return {"conv_1": conv_1(x), "conv_3": conv_3(x),
            "matmul": tf.matmul(flat, tf.ones([2, 3])) + tf.ones([1, 3]),
            "not_a_bias": tf.sin(x) + offset}  # no conv/MatMul: left as it is
  function = fn.get_concrete_function()
  constants = convert_variables_to_constants_v2(function).graph.as_graph_def()
  _, counts = frozen_graph.make_converter_friendly(constants)
  assert counts["rank1_biases"] == 2  # conv_1's bias and the matmul's [1, 3]
  frozen = frozen_graph.freeze(function)
  frozen_def = frozen.graph.as_graph_def()
  assert const_operands(frozen_def, ("Conv2D", "MatMul")) == [[1], [3]]
  assert const_operands(frozen_def, ("Sin",)) == [[1, 1, 1, 2]]
  for shape in [(2, 7, 5, 2), (1, 1, 5, 2)]:
    x = tf.random.normal(shape)
    for key, value in fn(x).items():
      np.testing.assert_array_equal(frozen(x)[key], value, err_msg=key)


@pytest.mark.parametrize("width,stride", [(16, 8), (4, 2), (8, 4), (5, 2), (3, 3)])
def test_same_transposed_convs_become_polyphase_convs(width, stride):
  """A height-1 "SAME" transposed conv with output length stride × frames (HiFi-GAN's
  upsamplers) is frozen as a stride-1 Conv2D and a Reshape: the same values at any length
  and batch (odd widths take the explicit-pad form); other output lengths are left alone."""
  rng = np.random.default_rng(width * 10 + stride)
  kernel = tf.constant(rng.standard_normal((1, width, 3, 4)).astype(np.float32))

  @tf.function(input_signature=[tf.TensorSpec([None, 1, None, 4], tf.float32, name="x")])
  def fn(x):
    batch, frames = tf.shape(x)[0], tf.shape(x)[2]
    same = tf.nn.conv2d_transpose(x, kernel, tf.stack([batch, 1, stride * frames, 3]),
                                  [1, 1, stride, 1], "SAME")
    shorter = tf.nn.conv2d_transpose(x, kernel, tf.stack([batch, 1, stride * frames - 1, 3]),
                                     [1, 1, stride, 1], "SAME")
    return {"same": same, "shorter": shorter}
  function = fn.get_concrete_function()
  constants = convert_variables_to_constants_v2(function).graph.as_graph_def()
  _, counts = frozen_graph.make_converter_friendly(constants)
  assert counts["polyphase_upsamplers"] == 1  # "shorter" keeps its Conv2DBackpropInput
  frozen = frozen_graph.freeze(function)
  ops = [n.op for n in frozen.graph.as_graph_def().node]
  assert ops.count("Conv2DBackpropInput") == 1 and "Conv2D" in ops
  for shape in [(1, 1, 1, 4), (2, 1, 9, 4), (3, 1, 40, 4)]:
    x = tf.constant(rng.standard_normal(shape).astype(np.float32))
    for key, value in fn(x).items():
      np.testing.assert_allclose(frozen(x)[key], value, rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("size,stride", [(4, 2), (3, 2), (2, 2), (6, 3)])
def test_same_2d_transposed_convs_become_polyphase_convs_and_depth_to_space(size, stride):
  """A "SAME" transposed conv with equal strides and an output of stride x the input on both
  axes (Grad-TTS's U-Net upsamplers: 4x4, stride 2, mel bins static, frames dynamic) is
  frozen as stride-1 Conv2Ds, one per phase, and a DepthToSpace: the same values at any size
  and batch, with a static or a dynamic width; unequal strides and other output sizes are left
  alone."""
  rng = np.random.default_rng(size * 10 + stride)
  kernel = tf.constant(rng.standard_normal((size, size, 3, 4)).astype(np.float32))
  bins = 5

  @tf.function(input_signature=[tf.TensorSpec([None, None, bins, 4], tf.float32, name="x"),
                                tf.TensorSpec([None, None, None, 4], tf.float32, name="y")])
  def fn(x, y):
    batch, frames = tf.shape(x)[0], tf.shape(x)[1]
    shape_y = tf.shape(y)
    return {
        "static_width": tf.nn.conv2d_transpose(
            x, kernel, tf.stack([batch, stride * frames, stride * bins, 3]), stride, "SAME"),
        "dynamic_width": tf.nn.conv2d_transpose(
            y, kernel, tf.stack([shape_y[0], stride * shape_y[1], stride * shape_y[2], 3]),
            stride, "SAME"),
        "shorter": tf.nn.conv2d_transpose(
            x, kernel, tf.stack([batch, stride * frames - 1, stride * bins, 3]), stride,
            "SAME"),
        "unequal_strides": tf.nn.conv2d_transpose(
            x, kernel, tf.stack([batch, stride * frames, bins, 3]), [1, stride, 1, 1],
            "SAME")}
  function = fn.get_concrete_function()
  constants = convert_variables_to_constants_v2(function).graph.as_graph_def()
  _, counts = frozen_graph.make_converter_friendly(constants)
  assert counts["polyphase_upsamplers"] == 2
  frozen = frozen_graph.freeze(function)
  ops = [n.op for n in frozen.graph.as_graph_def().node]
  assert ops.count("Conv2DBackpropInput") == 2 and ops.count("DepthToSpace") == 2
  # One small convolution per phase (no zero taps: the transposed conv's multiply-adds).
  assert ops.count("Conv2D") == 2 * stride * stride
  for frames, batch in [(1, 1), (9, 2), (40, 3)]:
    x = tf.constant(rng.standard_normal((batch, frames, bins, 4)).astype(np.float32))
    y = tf.constant(rng.standard_normal((batch, frames, frames + 1, 4)).astype(np.float32))
    for key, value in fn(x, y).items():
      np.testing.assert_allclose(frozen(x, y)[key], value, rtol=1e-5, atol=1e-5,
                                 err_msg=f"{key} at {frames} frames")


def test_mel_to_audio_runs_in_few_xnnpack_partitions(exported, vocoder_run):
  """The generator's convolutions stay 4-D and its upsamplers are polyphase convs, so LiteRT's
  XNNPACK delegate takes the network in a few partitions (one per upsampler at most, between
  which the dynamic-shape reshapes run); the 3-D layout split V2 into 66 and ran 4x slower."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  interpreter = Interpreter(model_path=exported["mel_to_audio"])
  interpreter.allocate_tensors()  # applies the default (XNNPACK) delegate
  ops = [op["op_name"] for op in interpreter._get_ops_details()]  # pylint: disable=protected-access
  assert "TRANSPOSE_CONV" not in ops
  stages = len(vocoder_run.modules["generator"].config.upsample_rates)
  assert 1 <= ops.count("DELEGATE") <= stages + 2, ops


def test_text_to_audio_has_no_transposed_convs(exported):
  """Grad-TTS's U-Net upsamplers (4x4, stride 2, dynamic frames) are polyphase convs and a
  DEPTH_TO_SPACE, which XNNPACK delegates: as TRANSPOSE_CONV they ran on TFLite's own kernel,
  5x slower than TF at ljspeech size."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  interpreter = Interpreter(model_path=exported["text_to_audio"])
  ops = [op["op_name"] for op in interpreter._get_ops_details()]  # pylint: disable=protected-access
  assert "TRANSPOSE_CONV" not in ops
  assert ops.count("DEPTH_TO_SPACE") == 2 * N_TIMESTEPS  # two upsamplers per U-Net call


def test_exported_graphs_are_loop_free_and_pure_tf(exported):
  for name, graph in exported["graphs"].items():
    assert_no_python_ops(graph.concrete_function())
    ops = set(frozen_graph.op_types(os.path.join(exported["frozen_dir"], name), name))
    assert not ops & {"While", "StatelessWhile", "If", "TensorListReserve", "Assert",
                      "RandomStandardNormal", "StatelessRandomNormalV2"}, name
    # The TFJS wasm backend has no Einsum kernel (and a wrong float OneHot): none in our graphs.
    assert "Einsum" not in ops, name


def test_frozen_unrolled_graph_is_inlined_with_each_weight_stored_once(exported):
  # The unrolled steps call one traced U-Net; freezing inlines the calls in C++, drops the
  # inliner's control edges (tfjs stacked them as tensors) and keeps one Const per weight.
  function = exported["graphs"]["text_to_audio"].concrete_function()
  calls = [op for op in function.graph.get_operations()
           if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
  assert len(calls) >= 2
  assert frozen_graph._inlined_constants(function) is not None  # the fast path applies
  graph_def, inputs, outputs = frozen_graph.frozen_graph_def(function)
  assert list(inputs) == [spec.name for spec in function.structured_input_signature[0]]
  assert sorted(outputs) == ["audio", "audio_lengths", "durations", "mel", "mel_lengths"]
  assert not graph_def.library.function
  assert not [node.name for node in graph_def.node
              if node.op == "NoOp" or any(name.startswith("^") for name in node.input)]
  weights = sum(int(np.prod(v.shape)) for v in function.graph.variables)
  stored = sum(tensor_util.MakeNdarray(node.attr["value"].tensor).size
               for node in graph_def.node
               if node.op == "Const" and node.attr["dtype"].type == tf.float32.as_datatype_enum)
  assert weights <= stored < 1.2 * weights, (weights, stored)


@pytest.mark.smoke
def test_mel_to_audio_float32_matches_weight_norm_generator(exported, vocoder_run):
  generator = vocoder_run.modules["generator"]
  assert generator.weight_norm
  runner = tflite.TFLiteGraph(exported["mel_to_audio"])
  assert builtin_only(exported["mel_to_audio"]) == []
  rng = np.random.default_rng(3)
  for batch, frames in [(1, 1), (1, 2), (3, 7), (1, 120)]:
    mel = rng.normal(-5.0, 2.0, (batch, frames, 80)).astype(np.float32)
    lengths = np.full([batch], frames, np.int32)
    lengths[0] = max(frames // 2, 1)
    out = runner(mel=mel, mel_lengths=lengths)
    reference = generator(mel).numpy()
    assert out["audio"].shape == (batch, frames * 256)
    np.testing.assert_array_equal(out["audio_lengths"], lengths * 256)
    # Zero past each item's length, the generator's audio before it.
    assert not np.any(out["audio"][0, lengths[0] * 256:])
    valid = np.arange(frames * 256)[None, :] < (lengths * 256)[:, None]
    assert relative_error(out["audio"], reference * valid) <= FLOAT32_RTOL, (batch, frames)


@pytest.mark.smoke
@pytest.mark.parametrize("lengths", [[1], [2], [2, 1], [60, 13]])
def test_text_to_audio_float32_matches_models(exported, acoustic_run, vocoder_run, lengths):
  runner = tflite.TFLiteGraph(exported["text_to_audio"])
  inputs = text_inputs(lengths, seed=len(lengths) * 100 + lengths[0])
  out = runner(**inputs)
  mel, mel_lengths = reference_mel(acoustic_run.modules["grad_tts"], inputs)
  np.testing.assert_array_equal(out["mel_lengths"], mel_lengths)
  np.testing.assert_array_equal(out["audio_lengths"], mel_lengths * 256)
  assert out["mel"].shape == mel.shape
  assert relative_error(out["mel"], mel) <= FLOAT32_RTOL
  np.testing.assert_array_equal(out["durations"].sum(axis=1), mel_lengths)
  audio = vocoder_run.modules["generator"](mel).numpy()
  valid = np.arange(audio.shape[1])[None, :] < (mel_lengths * 256)[:, None]
  assert relative_error(out["audio"], audio * valid) <= FLOAT32_RTOL
  assert builtin_only(exported["text_to_audio"]) == []


def test_short_noise_is_repeated_along_time(exported, acoustic_run):
  runner = tflite.TFLiteGraph(exported["text_to_audio"])
  inputs = text_inputs([9], seed=5, noise_frames=3)
  out = runner(**inputs)
  tiled = dict(inputs, noise=np.tile(inputs["noise"], [1, 200, 1]))
  mel, mel_lengths = reference_mel(acoustic_run.modules["grad_tts"], tiled)
  np.testing.assert_array_equal(out["mel_lengths"], mel_lengths)
  assert relative_error(out["mel"], mel) <= FLOAT32_RTOL


@pytest.mark.parametrize("precision", ["float16", "dynamic_range"])
def test_quantized_variants_are_smaller_and_within_tolerance(exported, quantized, acoustic_run,
                                                             vocoder_run, precision):
  path = quantized[precision]
  assert os.path.getsize(path) < 0.9 * os.path.getsize(exported["text_to_audio"])
  assert builtin_only(path) == []
  inputs = text_inputs([17, 4], seed=7)
  out = tflite.TFLiteGraph(path)(**inputs)
  mel, mel_lengths = reference_mel(acoustic_run.modules["grad_tts"], inputs)
  # Quantized duration predictors may round a token's duration the other way.
  assert np.all(np.abs(out["mel_lengths"] - mel_lengths) <= np.maximum(2, 0.05 * mel_lengths))
  # The vocoder half alone: the quantized graph's audio vs the float generator on its mel.
  float_audio = vocoder_run.modules["generator"](out["mel"]).numpy()
  valid = np.arange(float_audio.shape[1])[None, :] < out["audio_lengths"][:, None]
  audio_error = relative_error(out["audio"], float_audio * valid)
  message = f"{precision}: mel_to_audio rel error {audio_error:.2e}"
  assert 0 < audio_error <= QUANTIZED_RTOL[precision], message
  if np.array_equal(out["mel_lengths"], mel_lengths):
    mel_error = relative_error(out["mel"], mel)
    message += f", text_to_mel rel error {mel_error:.2e}"
    assert 0 < mel_error <= QUANTIZED_RTOL[precision], message
  print(message)


def test_metadata_describes_files_and_front_end(exported):
  with open(exported["metadata"], encoding="utf-8") as f:
    metadata = json.load(f)
  assert metadata["runtime"] == "tflite" and metadata["precision"] == "float32"
  assert metadata["sample_rate"] == 22050 and metadata["hop_length"] == 256
  assert metadata["n_mels"] == 80
  assert metadata["controls"]["n_timesteps"]["value"] == N_TIMESTEPS
  assert metadata["controls"]["temperature"]["recommended"] == 1.5
  assert metadata["add_blank"] and metadata["blank_id"] == 64
  assert metadata["symbols"]["symbols"][64] == metadata["symbols"]["blank"]
  assert metadata["vocoder"]["model"] == "hifigan"
  assert sorted(metadata["graphs"]) == ["mel_to_audio", "text_to_audio"]
  for name, graph in metadata["graphs"].items():
    assert os.path.isfile(os.path.join(os.path.dirname(exported["metadata"]), graph["file"]))
    runner = tflite.TFLiteGraph(exported[name])
    assert sorted(graph["inputs"]) == sorted(runner.input_names)
    assert sorted(graph["outputs"]) == sorted(runner.output_names)
  assert metadata["graphs"]["text_to_audio"]["inputs"]["noise"]["shape"] == [
      "batch", "noise_frames", 80]
  assert sorted(metadata["graphs"]["mel_to_audio"]["inputs"]) == ["mel", "mel_lengths"]
  assert sorted(metadata["graphs"]["text_to_audio"]["outputs"]) == [
      "audio", "audio_lengths", "durations", "mel", "mel_lengths"]


def test_cli_exports_vocoder_run(tmp_path, vocoder_run, run_saver):
  workdir = run_saver(vocoder_run, str(tmp_path / "run"))
  paths = export_lib.export_workdir(workdir, "tflite", str(tmp_path / "out"))
  assert sorted(paths) == ["mel_to_audio", "metadata"]
  with open(paths["metadata"], encoding="utf-8") as f:
    tensors = json.load(f)["graphs"]["mel_to_audio"]["output_tensors"]
  # The converter's tensor names ("PartitionedCall:0", ...) map to the output names.
  assert sorted(tensors.values()) == ["audio", "audio_lengths"] and len(set(tensors)) == 2
  mel = np.random.default_rng(0).normal(-5, 2, (1, 9, 80)).astype(np.float32)
  audio = tflite.TFLiteGraph(paths["mel_to_audio"])(mel=mel, mel_lengths=np.array([9], np.int32))["audio"]
  assert relative_error(audio, vocoder_run.modules["generator"](mel).numpy()) <= FLOAT32_RTOL
  with pytest.raises(ValueError, match="already a vocoder run"):
    export_lib.export_workdir(workdir, "tflite", str(tmp_path / "out2"), vocoder=workdir)


def test_bad_precision_is_a_clear_error(acoustic_run, tmp_path):
  with pytest.raises(ValueError, match="--precision='int4'"):
    tflite.export_run(acoustic_run, None, str(tmp_path), precision="int4")
  with pytest.raises(ValueError, match="text_to_audio needs an acoustic and a vocoder run"):
    tflite.export_run(acoustic_run, None, str(tmp_path), graphs=["text_to_audio"])
