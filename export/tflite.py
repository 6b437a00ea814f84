"""TFLite export of the inference graphs, and a LiteRT runner for parity checks.

  graphs = inference_graphs.build_graphs(acoustic, vocoder, controls={"n_timesteps": 10})
  files = export_graphs(graphs, "exported/tflite", precision="float16")
  runner = TFLiteGraph(files["text_to_audio"])
  outputs = runner(text_ids=..., text_lengths=..., noise=..., **dynamic_controls)

Pipeline: inference `tf.Module` → frozen converter-friendly SavedModel
(`export.frozen_graph`) → `tf.lite.TFLiteConverter.from_saved_model`, one `.tflite` file per
graph holding one signature of the same name (`interpreter.get_signature_runner(name)`).
Every input dim except channel sizes stays dynamic: resize the inputs (the signature runner
does it for you) to any batch and length. The converter names a signature's output tensors
`PartitionedCall:0`, `:1`, ...; metadata.json's `output_tensors` maps each graph's tensor
names to the output names, for runtimes that read tensors rather than signatures.

Precisions (inputs and outputs are float32/int32 in every variant):
  float32        exact up to float rounding (tests: max |error| <= 1e-4 * max |reference|).
  float16        weights stored as float16, dequantized when the model loads (tests: <= 1e-2
                 relative; measured ~7e-4).
  dynamic_range  weights int8, matmuls/convs quantize activations on the fly (tests: vocoder
                 <= 0.15 relative, measured ~2e-2). Durations rounded up (ceil) by a
                 quantized duration predictor may give a token one frame more or less
                 than float32: mel lengths are tested to within 2 frames or 5 %.
Only TFLite builtin ops are used; `select_tf_ops=True` additionally allows TF kernels
(Flex), which none of tfspeech's graphs needs: the one op that needed it, StridedSlice
with new_axis_mask on dynamic shapes (`mask[:, :, None]`), is rewritten to
ExpandDims by `export.frozen_graph`. The flag stays for models with ops without a builtin.

Fixed shapes (`fixed_shapes={"tokens": T, "frames": F}`, `tfspeech-export --fixed_shapes`):
every input and output of every graph is static at batch 1 (`inference_graphs.FixedShape`),
as LiteRT.js (@litertjs/core, which cannot resize tensors) needs; the acoustic model's mel
length stays data-dependent inside the graph, which LiteRT.js runs. Pad the inputs with
`fixed_shape_inputs` (a text longer than T is a ValueError); an utterance that needs more
than F frames comes back cut at F with output `clipped` = 1 (`check_not_clipped` raises).
metadata.json records `fixed_shapes` {"batch": 1, "tokens": T, "frames": F}.
"""

import os
import tempfile
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfspeech.export import frozen_graph
from tfspeech.export import inference_graphs
from tfspeech.export import progress

PRECISIONS = ("float32", "float16", "dynamic_range")


def _check_precision(precision: str):
  if precision not in PRECISIONS:
    raise ValueError(f"--precision={precision!r}: choose one of {', '.join(PRECISIONS)}")


def convert_saved_model(saved_model_dir: str, signature: str, precision: str = "float32",
                        select_tf_ops: bool = False) -> bytes:
  """Converts one signature of a frozen SavedModel to a TFLite flatbuffer.

  Raises:
    ValueError: bad precision, or ops without a TFLite builtin (the message names them and
      says to pass select_tf_ops).
  """
  _check_precision(precision)
  converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                       signature_keys=[signature])
  if precision in ("float16", "dynamic_range"):
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if precision == "float16":
    converter.target_spec.supported_types = [tf.float16]
  if select_tf_ops:
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
  try:
    return converter.convert()
  except Exception as error:  # ConverterError is not public API.
    text = str(error)
    if "TF Select ops" in text or "ERROR_NEEDS_FLEX_OPS" in text:
      ops = text.split("TF Select ops:")[-1].split("\n")[0].strip()
      raise ValueError(f"TFLite: graph {signature!r} needs TF ops without a TFLite builtin "
                       f"({ops}); pass --select_tf_ops to embed TF kernels (the app then "
                       "needs the Flex delegate)") from error
    raise


def export_graphs(graphs: Mapping[str, inference_graphs.InferenceGraph], out_dir: str,
                  precision: str = "float32", select_tf_ops: bool = False,
                  frozen_dir: Optional[str] = None) -> Dict[str, str]:
  """Writes `NAME.tflite` for every graph into `out_dir` (created).

  Args:
    graphs: name → `InferenceGraph` (see `inference_graphs.build_graphs`).
    out_dir: output folder.
    precision: one of `PRECISIONS`.
    select_tf_ops: allow TF (Flex) ops.
    frozen_dir: folder for the intermediate frozen SavedModels (`frozen_dir/NAME`, one per
      graph): each is written when absent and reused when present (several precisions).

  Returns:
    name → path of the `.tflite` file.
  """
  _check_precision(precision)
  os.makedirs(out_dir, exist_ok=True)
  with tempfile.TemporaryDirectory(prefix="tfspeech_tflite_") as scratch:
    saved_models = frozen_graph.save_frozen_saved_models(graphs, frozen_dir or scratch)
    paths = {}
    for name in graphs:
      with progress.step(f"{name}: converted to TFLite {precision}") as step:
        flatbuffer = convert_saved_model(saved_models[name], name, precision, select_tf_ops)
        step["suffix"] = f"({len(flatbuffer) / 1e6:.1f} MB)"
      paths[name] = os.path.join(out_dir, f"{name}.tflite")
      with open(paths[name], "wb") as f:
        f.write(flatbuffer)
  return paths


class TFLiteGraph:
  """Runs one exported `.tflite` graph with LiteRT (`ai_edge_litert`).

  Call it with NumPy inputs by name; inputs are resized to the given shapes on every call.

  Args:
    path: the `.tflite` file.
    signature: signature name (default: the file's only signature).
    num_threads: interpreter threads.
  """

  def __init__(self, path: str, signature: Optional[str] = None, num_threads: int = 1):
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path}: no such TFLite file")
    self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
    signatures = self.interpreter.get_signature_list()
    if signature is None:
      if len(signatures) != 1:
        raise ValueError(f"{path} has signatures {sorted(signatures)}; pass signature=")
      signature = next(iter(signatures))
    self.signature = signature
    self.input_names = list(signatures[signature]["inputs"])
    self.output_names = list(signatures[signature]["outputs"])
    self._runner = self.interpreter.get_signature_runner(signature)

  def __call__(self, **inputs) -> Dict[str, np.ndarray]:
    missing = sorted(set(self.input_names) - set(inputs))
    if missing:
      raise ValueError(f"TFLite graph {self.signature!r}: missing inputs {missing} "
                       f"(it takes {self.input_names})")
    # The signature runner resizes every input whose shape changed, then reallocates.
    return self._runner(**{name: np.asarray(inputs[name]) for name in self.input_names})  # graph-ok: host runtime


def output_tensors(path: str) -> Dict[str, str]:
  """{tensor name (e.g. "PartitionedCall:1"): signature output name} of a `.tflite` file."""
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  except ImportError:
    Interpreter = tf.lite.Interpreter  # pylint: disable=invalid-name
  interpreter = Interpreter(model_path=path)
  details = {d["index"]: d["name"] for d in interpreter.get_output_details()}
  mapping = {}
  for signature in interpreter.get_signature_list():
    runner = interpreter.get_signature_runner(signature)
    for key, detail in runner.get_output_details().items():
      mapping[details.get(detail["index"], detail["name"])] = key
  return mapping


def fixed_shape_inputs(fixed_shapes: Mapping[str, int], **inputs) -> Dict[str, np.ndarray]:
  """Inputs of one utterance (batch 1) zero-padded to a fixed-shape export's sizes.

  text_ids to `tokens` along axis 1, noise and mel to `frames`; other inputs unchanged
  (vocoder_noise must already have its input's length: metadata.json's graph inputs).

  Raises:
    ValueError: batch is not 1, or an input is longer than the export's size (re-export
      with larger --fixed_shapes, or split the text).
  """
  sizes = {"text_ids": fixed_shapes["tokens"], "noise": fixed_shapes["frames"],
           "mel": fixed_shapes["frames"]}
  padded = {}
  for name, value in inputs.items():
    value = np.asarray(value)  # graph-ok: host I/O
    if name in sizes:
      size = sizes[name]
      if value.shape[0] != 1:
        raise ValueError(f"fixed-shape TFLite: {name} has batch {value.shape[0]}; these "
                         "graphs take one utterance (batch 1)")
      if value.shape[1] > size:
        unit = "tokens" if name == "text_ids" else "frames"
        raise ValueError(f"fixed-shape TFLite: {name} has {value.shape[1]} {unit} but the "
                         f"export takes at most {unit}={size}; split the text or re-export "
                         f"with a larger --fixed_shapes {unit}=")
      pad = [(0, 0)] * value.ndim
      pad[1] = (0, size - value.shape[1])
      value = np.pad(value, pad)
    padded[name] = value
  return padded


def check_not_clipped(outputs: Mapping[str, np.ndarray], fixed_shapes: Mapping[str, int]):
  """Raises ValueError when a fixed-shape graph cut the utterance at `frames`."""
  if inference_graphs.CLIPPED in outputs and np.any(outputs[inference_graphs.CLIPPED]):
    frames = fixed_shapes["frames"]
    needed = ""
    if "durations" in outputs:
      needed = f" (it needs {int(np.sum(outputs['durations']))})"
    raise ValueError(f"fixed-shape TFLite: the utterance needs more than frames={frames} mel "
                     f"frames{needed}; its mel and audio stop at {frames}. Split the text or "
                     "re-export with a larger --fixed_shapes frames=")


def export_run(acoustic_run=None, vocoder_run=None, out_dir: str = "exported/tflite",
               controls: Optional[Mapping[str, object]] = None, precision: str = "float32",
               select_tf_ops: bool = False,
               graphs: Optional[Sequence[str]] = None,
               vocoder_controls: Optional[Mapping[str, object]] = None,
               fixed_shapes: Optional[Mapping[str, int]] = None) -> Dict[str, str]:
  """Exports trained runs to `out_dir`: `.tflite` files and `metadata.json`.

  Args:
    acoustic_run: `LoadedRun` of an acoustic-model run, or None.
    vocoder_run: `LoadedRun` of a vocoder run, or None (with an acoustic run, the
      text_to_audio graph is exported too).
    controls: the acoustic model's control values (static ones fixed in the graphs).
    graphs: export only these graph names (default: every graph the runs allow).
    vocoder_controls: the vocoder's control values (likewise).
    fixed_shapes: {"tokens": T, "frames": F}: every graph at batch 1 with static inputs and
      outputs (LiteRT.js; see the module docstring). None: dynamic batch and lengths.

  Returns:
    name → written path (graphs and "metadata").
  """
  graphs = inference_graphs.graphs_for_runs(acoustic_run, vocoder_run, controls, graphs,
                                            vocoder_controls)
  if fixed_shapes is not None:
    graphs = inference_graphs.fix_shapes(graphs, fixed_shapes["tokens"],
                                         fixed_shapes["frames"])
  return export_built_graphs(graphs, out_dir, acoustic_run, vocoder_run, precision,
                             select_tf_ops)


def export_built_graphs(graphs: Mapping[str, inference_graphs.InferenceGraph], out_dir: str,
                        acoustic_run=None, vocoder_run=None, precision: str = "float32",
                        select_tf_ops: bool = False) -> Dict[str, str]:
  """`export_run` for graphs already built from the runs (`inference_graphs.graphs_for_runs`,
  optionally `fix_shapes`): `.tflite` files and `metadata.json` (its `fixed_shapes` null, or
  the graphs' sizes)."""
  fixed = [graph.describe()["fixed_shapes"] for graph in graphs.values()
           if isinstance(graph, inference_graphs.FixedShape)]
  extra = {"select_tf_ops": select_tf_ops, "fixed_shapes": fixed[0] if fixed else None}
  paths = export_graphs(graphs, out_dir, precision, select_tf_ops)
  metadata = inference_graphs.export_metadata(
      "tflite", graphs, {name: os.path.basename(p) for name, p in paths.items()},
      acoustic_run, vocoder_run, precision, extra=extra)
  for name, path in paths.items():
    metadata["graphs"][name]["output_tensors"] = output_tensors(path)
  paths["metadata"] = write_metadata(metadata, out_dir)
  return paths


def write_metadata(metadata: Mapping, out_dir: str) -> str:
  """Writes `metadata.json` into `out_dir`; returns its path."""
  return inference_graphs.write_metadata(metadata, out_dir)
