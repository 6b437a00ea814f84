"""TFJS graph-model export of the inference graphs, and a Node runner for parity checks.

  paths = export_run(acoustic_run, vocoder_run, "exported/tfjs", n_timesteps=10)
  outputs, seconds = run_in_node(paths["text_to_audio"], {"text_ids": ids, ...})

Each graph becomes `OUT/NAME/model.json` + weight shards (tensorflowjs_converter
`--output_format=tfjs_graph_model`), next to one `OUT/metadata.json` for all of them. The
graphs are the loop-free ones of `inference_graphs` (Grad-TTS unrolled with noise as an
input), frozen and rewritten by `frozen_graph` exactly as for TFLite, so they run with the
synchronous `GraphModel.execute` on every backend.

The converter lives in its own virtualenv. tensorflowjs 4.22.0 depends on tensorflow,
tensorflow-decision-forests, tensorflow-hub, tf-keras, jax/jaxlib and flax, and would pull
a second TensorFlow into the project's environment; it also only reads SavedModels, so it
runs as a separate program: `CONVERTER_VENV` (default ~/.cache/tfspeech/tfjs-converter,
about 3 GB, ~2 minutes to create from PyPI on first use) with `CONVERTER_PINS`. Protobuf is
pinned to 6.31.1 on top because the TF-DF protos tensorflowjs imports were generated for it
(pip warns that tensorflow 2.19 asks for < 6; the converter works). Point
`TFSPEECH_TFJS_CONVERTER` at an existing `tensorflowjs_converter` to skip all of this.

Precisions: float32; float16 (`--quantize_float16`: weights stored as float16); and
"dynamic_range", which for TFJS means `--quantize_uint8` (weights stored as 8-bit affine,
dequantized to float32 when the model loads; compute stays float32).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfspeech.export import frozen_graph
from tfspeech.export import inference_graphs

EXPORT_DIR = os.path.dirname(os.path.abspath(__file__))
NODE_RUNNER = os.path.join(EXPORT_DIR, "js", "run_graph_model.js")
CONVERTER_ENV = "TFSPEECH_TFJS_CONVERTER"
CONVERTER_VENV_ENV = "TFSPEECH_TFJS_VENV"
CONVERTER_VENV = os.path.join(os.path.expanduser("~"), ".cache", "tfspeech", "tfjs-converter")
CONVERTER_PINS = ("tensorflow==2.19.0", "tensorflowjs==4.22.0", "tf-keras==2.19.0",
                  "tensorflow-decision-forests==1.12.0", "jax==0.10.2", "jaxlib==0.10.2",
                  "flax==0.12.8")
CONVERTER_PROTOBUF = "protobuf==6.31.1"
_MARKER = "tfspeech_converter.json"
PRECISIONS = ("float32", "float16", "dynamic_range")
_PRECISION_FLAGS = {"float32": [], "float16": ["--quantize_float16"],
                    "dynamic_range": ["--quantize_uint8"]}


class ConverterUnavailable(RuntimeError):
  """The TFJS converter could not be found or installed (the message says how to fix it)."""


class NodeUnavailable(RuntimeError):
  """Node/npm or the export/ npm packages are missing (the message says how to fix it)."""


def _venv_dir() -> str:
  return os.environ.get(CONVERTER_VENV_ENV) or CONVERTER_VENV


def _run(command: List[str], what: str, error_class, **kwargs) -> str:
  result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
  if result.returncode != 0:
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
    raise error_class(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{tail}")
  return result.stdout


def converter_executable(create: bool = True,
                         progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr)
                         ) -> str:
  """Path of `tensorflowjs_converter`, creating its virtualenv on first use.

  Args:
    create: install the virtualenv when it is missing (else raise).
    progress: receives one line per step (the install takes minutes).

  Raises:
    ConverterUnavailable: `TFSPEECH_TFJS_CONVERTER` names no executable, or the virtualenv
      is missing (create=False) or could not be created (no PyPI access, no disk space).
  """
  given = os.environ.get(CONVERTER_ENV)
  if given:
    if not (os.path.isfile(given) and os.access(given, os.X_OK)):
      raise ConverterUnavailable(f"{CONVERTER_ENV}={given} is not an executable "
                                 "tensorflowjs_converter")
    return given
  venv = _venv_dir()
  executable = os.path.join(venv, "bin", "tensorflowjs_converter")
  marker = os.path.join(venv, _MARKER)
  pins = list(CONVERTER_PINS) + [CONVERTER_PROTOBUF]
  if os.path.isfile(executable) and os.path.isfile(marker):
    with open(marker, encoding="utf-8") as f:
      if json.load(f).get("pins") == pins:
        return executable
  if not create:
    raise ConverterUnavailable(f"no TFJS converter virtualenv at {venv}; run tfspeech-export "
                               f"--format=tfjs once to create it, or set {CONVERTER_ENV}")
  python = getattr(sys, "_base_executable", None) or sys.executable
  pip = os.path.join(venv, "bin", "pip")
  progress(f"tfjs: creating the converter virtualenv {venv} (one time, ~3 GB, minutes)")
  if os.path.isdir(venv):
    shutil.rmtree(venv)
  try:
    _run([python, "-m", "venv", venv], "creating the converter virtualenv",
         ConverterUnavailable)
    progress(f"tfjs: pip install {' '.join(CONVERTER_PINS)}")
    _run([pip, "install", "--disable-pip-version-check", "-q"] + list(CONVERTER_PINS),
         "installing tensorflowjs", ConverterUnavailable)
    progress(f"tfjs: pip install {CONVERTER_PROTOBUF} (the TF-DF protos need it)")
    _run([pip, "install", "--disable-pip-version-check", "-q", "--no-deps",
          CONVERTER_PROTOBUF], "installing protobuf", ConverterUnavailable)
    _run([executable, "--version"], "checking tensorflowjs_converter", ConverterUnavailable,
         env=_quiet_env())
  except (ConverterUnavailable, OSError) as error:
    raise ConverterUnavailable(f"{error}\nThe TFJS converter needs PyPI access and ~3 GB in "
                               f"{venv} (or set {CONVERTER_VENV_ENV} to another folder, or "
                               f"{CONVERTER_ENV} to an existing converter).") from error
  with open(marker, "w", encoding="utf-8") as f:
    json.dump({"pins": pins}, f)
  progress("tfjs: converter ready")
  return executable


def _quiet_env() -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  env.pop("PYTHONPATH", None)  # the converter must not see this project's packages
  return env


def convert_saved_model(saved_model_dir: str, signature: str, out_dir: str,
                        precision: str = "float32", converter: Optional[str] = None,
                        output_keys: Optional[List[str]] = None) -> str:
  """Runs tensorflowjs_converter on one signature of a (frozen) SavedModel.

  Args:
    output_keys: the signature's output names, to repair the keys in model.json.

  Returns:
    Path of the written `model.json`.
  """
  if precision not in PRECISIONS:
    raise ValueError(f"--precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
  converter = converter or converter_executable()
  # The quantize flags take an optional value: keep them away from the positional paths.
  command = [converter] + _PRECISION_FLAGS[precision] + [
      "--input_format=tf_saved_model", "--output_format=tfjs_graph_model",
      f"--signature_name={signature}", saved_model_dir, out_dir]
  _run(command, f"tensorflowjs_converter ({signature})", RuntimeError, env=_quiet_env())
  model_json = os.path.join(out_dir, "model.json")
  if output_keys is not None:
    _name_signature(model_json, output_keys)
  return model_json


_WRAPPER_OUTPUT = re.compile(r"^Identity(?:_(\d+))?:0$")


def _name_signature(model_json: str, output_keys: List[str]):
  """Restores the signature keys tensorflowjs_converter 4.22 mangles in model.json.

  It keys some inputs "NAME:0" and some outputs by node ("Identity_1:0"). A SavedModel
  signature wrapper names its outputs Identity, Identity_1, ... in sorted-key order, so the
  node name gives the key back.
  """
  with open(model_json, encoding="utf-8") as f:
    model = json.load(f)
  signature = model.get("signature") or {}
  keys = sorted(output_keys)
  outputs = {}
  for key, info in signature.get("outputs", {}).items():
    match = _WRAPPER_OUTPUT.match(info.get("name", ""))
    if key not in keys:
      if not match or int(match.group(1) or 0) >= len(keys):
        raise RuntimeError(f"{model_json}: cannot name signature output {key!r} "
                           f"({info.get('name')}); expected outputs {keys}")
      key = keys[int(match.group(1) or 0)]
    outputs[key] = info
  signature["outputs"] = outputs
  signature["inputs"] = {re.sub(r":0$", "", key): info
                         for key, info in signature.get("inputs", {}).items()}
  with open(model_json, "w", encoding="utf-8") as f:
    json.dump(model, f)


def export_graphs(graphs: Mapping[str, inference_graphs.InferenceGraph], out_dir: str,
                  precision: str = "float32", converter: Optional[str] = None,
                  frozen_dir: Optional[str] = None) -> Dict[str, str]:
  """Writes `OUT/NAME/model.json` (+ shards) for every graph.

  Args:
    frozen_dir: folder for the frozen SavedModels (`frozen_dir/NAME`), reused when present
      (shared with `tflite.export_graphs`).

  Returns:
    name → path of the graph's folder.
  """
  converter = converter or converter_executable()
  os.makedirs(out_dir, exist_ok=True)
  folders = {}
  with tempfile.TemporaryDirectory(prefix="tfspeech_tfjs_") as scratch:
    saved_models = frozen_graph.save_frozen_saved_models(graphs, frozen_dir or scratch)
    for name in graphs:
      folders[name] = os.path.join(out_dir, name)
      convert_saved_model(saved_models[name], name, folders[name], precision, converter,
                          output_keys=list(graphs[name].output_specs))
  return folders


def export_run(acoustic_run=None, vocoder_run=None, out_dir: str = "exported/tfjs",
               n_timesteps: int = 10, precision: str = "float32",
               converter: Optional[str] = None,
               graphs: Optional[Sequence[str]] = None) -> Dict[str, str]:
  """Exports trained runs to `out_dir`: one graph-model folder per graph and metadata.json.

  Args:
    graphs: export only these graph names (default: every graph the runs allow).

  Returns:
    name → written folder (graphs) or file ("metadata").
  """
  graphs = inference_graphs.graphs_for_runs(acoustic_run, vocoder_run, n_timesteps,
                                            graphs)
  paths = export_graphs(graphs, out_dir, precision, converter)
  files = {name: f"{name}/model.json" for name in graphs}
  metadata = inference_graphs.export_metadata("tfjs", graphs, files, acoustic_run,
                                              vocoder_run, precision)
  paths["metadata"] = os.path.join(out_dir, "metadata.json")
  with open(paths["metadata"], "w", encoding="utf-8") as f:
    json.dump(metadata, f, indent=2, ensure_ascii=False)
  return paths


# --------------------------------------------------------------------------- #
# Node runtime.


def ensure_node_modules() -> str:
  """`npm ci` in export/ when @tensorflow/tfjs is not installed there yet.

  Returns:
    The `node` executable.

  Raises:
    NodeUnavailable: node or npm missing, or npm ci failed.
  """
  node, npm = shutil.which("node"), shutil.which("npm")
  if node is None or npm is None:
    raise NodeUnavailable("node and npm are needed to run TFJS models (install Node >= 18)")
  if not os.path.isdir(os.path.join(EXPORT_DIR, "node_modules", "@tensorflow", "tfjs")):
    _run([npm, "ci", "--no-audit", "--no-fund"], f"npm ci in {EXPORT_DIR}", NodeUnavailable,
         cwd=EXPORT_DIR)
  return node


def run_in_node(model_dir: str, inputs: Mapping[str, np.ndarray], repeat: int = 1,
                warmup: int = 0) -> Tuple[Dict[str, np.ndarray], List[float]]:
  """Runs a converted graph model in Node (@tensorflow/tfjs, pure-JS CPU backend).

  Args:
    model_dir: folder with model.json.
    inputs: signature input name → float32 / int32 array.
    repeat: timed calls (outputs are the last call's).
    warmup: untimed calls before.

  Returns:
    (output name → array, seconds of each timed call).
  """
  node = ensure_node_modules()
  with tempfile.TemporaryDirectory(prefix="tfspeech_node_") as scratch:
    spec = {}
    for name, value in inputs.items():
      array = np.asarray(value)  # graph-ok: host I/O (0-d stays 0-d, unlike ascontiguousarray)
      if array.dtype not in (np.float32, np.int32):
        raise ValueError(f"run_in_node: input {name} is {array.dtype}; pass float32 or int32")
      array.tofile(os.path.join(scratch, f"{name}.bin"))
      spec[name] = {"dtype": str(array.dtype), "shape": list(array.shape), "file": f"{name}.bin"}
    with open(os.path.join(scratch, "inputs.json"), "w", encoding="utf-8") as f:
      json.dump(spec, f)
    out_dir = os.path.join(scratch, "out")
    _run([node, NODE_RUNNER, f"--model={model_dir}", f"--inputs={scratch}/inputs.json",
          f"--out={out_dir}", f"--repeat={repeat}", f"--warmup={warmup}"],
         "run_graph_model.js", RuntimeError, cwd=EXPORT_DIR)
    with open(os.path.join(out_dir, "outputs.json"), encoding="utf-8") as f:
      description = json.load(f)
    outputs = {}
    for name, entry in description["outputs"].items():
      array = np.fromfile(os.path.join(out_dir, entry["file"]), dtype=entry["dtype"])
      outputs[name] = array.reshape(entry["shape"])
  return outputs, description["seconds_per_call"]
