"""TFJS graph-model export of the inference graphs, and a Node runner for parity checks.

  paths = export_run(acoustic_run, vocoder_run, "exported/tfjs", controls={"n_timesteps": 10})
  outputs, seconds = run_in_node(paths["text_to_audio"], {"text_ids": ids, ...})
  run = run_graph_model(paths["mel_to_audio"], {"mel": mel}, backend="cpu")  # or "wasm"

Each graph becomes `OUT/NAME/model.json` + weight shards (tensorflowjs_converter
`--output_format=tfjs_graph_model`), next to one `OUT/metadata.json` for all of them. The
graphs are those of `inference_graphs` (static controls fixed, noise an input), frozen and
rewritten by `frozen_graph` exactly as for TFLite. Loop-free graphs run with the synchronous
`GraphModel.execute` on every backend; the decoding loops of Tacotron 2 and DC-TTS and
DiffWave's reverse process with a runtime schedule (`--control=steps=runtime`) stay
functional While ops (`frozen_graph`), which tfjs runs with `GraphModel.executeAsync` (the Node
runner picks it from model.json; the browser demo always calls it, and so must an app that
runs them). `_repair_function_inputs` fixes the loop-body inputs the converter breaks.

The converter lives in its own virtualenv. tensorflowjs 4.22.0 depends on tensorflow,
tensorflow-decision-forests, tensorflow-hub, tf-keras, jax/jaxlib and flax, and would pull
a second TensorFlow into the project's environment; it also only reads SavedModels, so it
runs as a separate program: `CONVERTER_VENV` (default ~/.cache/tfspeech/tfjs-converter,
about 3 GB) with `CONVERTER_PINS`, created on first use: 1 min 55 s measured with a fast
package index, longer on a slow network; pip's output (each package collected, downloaded,
installed) is passed on as progress lines meanwhile. Protobuf is
pinned to 6.31.1 on top because the TF-DF protos tensorflowjs imports were generated for it
(pip warns that tensorflow 2.19 asks for < 6; the converter works). Point
`TFSPEECH_TFJS_CONVERTER` at an existing `tensorflowjs_converter` to skip all of this.

In Node the graphs run with @tensorflow/tfjs 4.22.0 on the WebAssembly backend
(@tensorflow/tfjs-backend-wasm: XNNPACK kernels, SIMD; the .wasm binaries ship in the npm
package) or the pure-JS CPU backend; `backend="auto"` takes wasm when it loads and runs the
graph, else cpu (a kernel wasm lacks, or one that fails at run time), and says why. Both come
from `npm ci` in export/.

Precisions: float32; float16 (`--quantize_float16`: weights stored as float16); and
"dynamic_range", which for TFJS means `--quantize_uint8` (weights stored as 8-bit affine,
dequantized to float32 when the model loads; compute stays float32).
"""

import concurrent.futures
import contextvars
import dataclasses
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from tfspeech.export import frozen_graph
from tfspeech.export import inference_graphs
from tfspeech.export import progress

EXPORT_DIR = os.path.dirname(os.path.abspath(__file__))
NODE_RUNNER = os.path.join(EXPORT_DIR, "js", "run_graph_model.js")
# Node backends of run_graph_model.js: "auto" is wasm when it loads and runs the graph, else cpu.
BACKENDS = ("auto", "wasm", "cpu")
WASM_PACKAGE = "@tensorflow/tfjs-backend-wasm"
WASM_BINARIES = ("tfjs-backend-wasm.wasm", "tfjs-backend-wasm-simd.wasm",
                 "tfjs-backend-wasm-threaded-simd.wasm")
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


def _run_with_progress(command: List[str], what: str, error_class,
                       progress: Callable[[str], None], prefix: str):
  """`_run`, passing each line the command prints to `progress` (prefixed) as it comes."""
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
  lines = []
  for line in process.stdout:
    line = line.rstrip()
    if line:
      lines.append(line)
      progress(f"{prefix}{line}")
  if process.wait() != 0:
    tail = "\n".join(lines[-25:])
    raise error_class(f"{what} failed (exit {process.returncode}): {' '.join(command)}\n{tail}")


def converter_executable(create: bool = True,
                         progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr)
                         ) -> str:
  """Path of `tensorflowjs_converter`, creating its virtualenv on first use.

  Args:
    create: install the virtualenv when it is missing (else raise).
    progress: receives one line per step and each line pip prints (the install takes
      minutes).

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
  pins = list(CONVERTER_PINS) + [CONVERTER_PROTOBUF]
  if _venv_ready(venv, pins):
    return executable
  if not create:
    raise ConverterUnavailable(f"no TFJS converter virtualenv at {venv}; run tfspeech-export "
                               f"--format=tfjs once to create it, or set {CONVERTER_ENV}")
  # Two processes (parallel test sessions, an export beside a test run) must not both delete
  # and install the same folder: the second waits for the first and then finds it ready.
  os.makedirs(os.path.dirname(os.path.abspath(venv)), exist_ok=True)
  with open(os.path.abspath(venv) + ".lock", "w", encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if _venv_ready(venv, pins):
      return executable
    _create_converter_venv(venv, executable, pins, progress)
  return executable


def _venv_ready(venv: str, pins: List[str]) -> bool:
  """Whether `venv` holds a converter installed with exactly `pins` (its marker says so)."""
  marker = os.path.join(venv, _MARKER)
  if not (os.path.isfile(os.path.join(venv, "bin", "tensorflowjs_converter"))
          and os.path.isfile(marker)):
    return False
  with open(marker, encoding="utf-8") as f:
    return json.load(f).get("pins") == pins


def _create_converter_venv(venv: str, executable: str, pins: List[str],
                           progress: Callable[[str], None]):
  """(Re)creates the converter virtualenv and writes its marker last."""
  python = getattr(sys, "_base_executable", None) or sys.executable
  pip = os.path.join(venv, "bin", "pip")
  progress(f"tfjs: creating the converter virtualenv {venv} (one time, ~3 GB, minutes)")
  if os.path.isdir(venv):
    shutil.rmtree(venv)
  try:
    _run([python, "-m", "venv", venv], "creating the converter virtualenv",
         ConverterUnavailable)
    progress(f"tfjs: pip install {' '.join(CONVERTER_PINS)}")
    # Not quiet: pip's lines (Collecting / Downloading / Installing ...) show the minutes pass.
    _run_with_progress([pip, "install", "--disable-pip-version-check", "--progress-bar=off"]
                       + list(CONVERTER_PINS), "installing tensorflowjs", ConverterUnavailable,
                       progress, "tfjs: pip: ")
    progress(f"tfjs: pip install {CONVERTER_PROTOBUF} (the TF-DF protos need it)")
    _run_with_progress([pip, "install", "--disable-pip-version-check", "--progress-bar=off",
                        "--no-deps", CONVERTER_PROTOBUF], "installing protobuf",
                       ConverterUnavailable, progress, "tfjs: pip: ")
    _run([executable, "--version"], "checking tensorflowjs_converter", ConverterUnavailable,
         env=_quiet_env())
  except (ConverterUnavailable, OSError) as error:
    raise ConverterUnavailable(f"{error}\nThe TFJS converter needs PyPI access and ~3 GB in "
                               f"{venv} (or set {CONVERTER_VENV_ENV} to another folder, or "
                               f"{CONVERTER_ENV} to an existing converter).") from error
  with open(os.path.join(venv, _MARKER), "w", encoding="utf-8") as f:
    json.dump({"pins": pins}, f)
  progress("tfjs: converter ready")


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
  _repair_function_inputs(model_json)
  if output_keys is not None:
    _name_signature(model_json, output_keys)
  return model_json


def _repair_function_inputs(model_json: str) -> int:
  """Points the loop-body inputs tensorflowjs_converter 4.22 breaks back at their nodes.

  The converter names each Const of a library function (a While's body or condition)
  `FUNCTION/NAME` and rewrites every input of that function that *starts with* some Const's
  name (`graph_rewrite_util.rename_constants`), so in DC-TTS's decoding loop the input
  `while/strided_slice/stack_1:output:0` (a Pack) became
  `FUNCTION/while/strided_slice/stack_1:output:0` because of the Const
  `while/strided_slice/stack`: tfjs then fails to load the model ("Cannot read properties of
  undefined (reading 'outputs')"). An input `FUNCTION/NAME...` whose node is not in the
  function but `NAME` is gets `NAME...` back. Loop-free graphs have no functions: unchanged.

  Returns:
    How many inputs were repaired.
  """
  with open(model_json, encoding="utf-8") as f:
    model = json.load(f)
  repaired = 0
  for function in model.get("modelTopology", {}).get("library", {}).get("function", []):
    prefix = function["signature"]["name"] + "/"
    nodes = function.get("nodeDef", [])
    names = {node["name"] for node in nodes}
    names.update(arg["name"] for arg in function["signature"].get("inputArg", []))
    for node in nodes:
      for index, name in enumerate(node.get("input", [])):
        control = "^" if name.startswith("^") else ""
        bare = name[len(control):]
        node_name = bare.split(":")[0]
        if (node_name not in names and bare.startswith(prefix)
            and node_name[len(prefix):] in names):
          node["input"][index] = control + bare[len(prefix):]
          repaired += 1
  if repaired:
    with open(model_json, "w", encoding="utf-8") as f:
      json.dump(model, f)
  return repaired


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
  folders = {name: os.path.join(out_dir, name) for name in graphs}
  with tempfile.TemporaryDirectory(prefix="tfspeech_tfjs_") as scratch:
    saved_models = frozen_graph.save_frozen_saved_models(graphs, frozen_dir or scratch)
    reporter = contextvars.copy_context()  # the caller's progress callback, in every thread

    def convert(name):
      with progress.step(f"{name}: converted to TFJS {precision}"):
        convert_saved_model(saved_models[name], name, folders[name], precision, converter,
                            output_keys=list(graphs[name].output_specs))
    # One converter process per graph, as many at once as there are cores: each spends
    # ~5 s importing TensorFlow and then runs mostly on one core (Python, Grappler).
    workers = max(1, min(len(graphs), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      jobs = [pool.submit(reporter.copy().run, convert, name) for name in graphs]
      for job in jobs:
        job.result()
  return folders


def export_run(acoustic_run=None, vocoder_run=None, out_dir: str = "exported/tfjs",
               controls: Optional[Mapping[str, object]] = None, precision: str = "float32",
               converter: Optional[str] = None,
               graphs: Optional[Sequence[str]] = None,
               vocoder_controls: Optional[Mapping[str, object]] = None) -> Dict[str, str]:
  """Exports trained runs to `out_dir`: one graph-model folder per graph and metadata.json.

  Args:
    controls: the acoustic model's control values (static ones fixed in the graphs).
    graphs: export only these graph names (default: every graph the runs allow).
    vocoder_controls: the vocoder's control values (likewise).

  Returns:
    name → written folder (graphs) or file ("metadata").
  """
  graphs = inference_graphs.graphs_for_runs(acoustic_run, vocoder_run, controls, graphs,
                                            vocoder_controls)
  paths = export_graphs(graphs, out_dir, precision, converter)
  files = {name: f"{name}/model.json" for name in graphs}
  metadata = inference_graphs.export_metadata("tfjs", graphs, files, acoustic_run,
                                              vocoder_run, precision)
  paths["metadata"] = inference_graphs.write_metadata(metadata, out_dir)
  return paths


# --------------------------------------------------------------------------- #
# Node runtime.


def _pinned_packages() -> Dict[str, str]:
  """name → version spec of export/package.json's dependencies and devDependencies."""
  with open(os.path.join(EXPORT_DIR, "package.json"), encoding="utf-8") as f:
    package = json.load(f)
  return {**package.get("dependencies", {}), **package.get("devDependencies", {})}


def _installed_version(name: str) -> Optional[str]:
  manifest = os.path.join(EXPORT_DIR, "node_modules", *name.split("/"), "package.json")
  if not os.path.isfile(manifest):
    return None
  with open(manifest, encoding="utf-8") as f:
    return json.load(f).get("version")


def _stale_packages() -> List[str]:
  """The pinned npm packages that node_modules lacks or holds at another version."""
  stale = []
  for name, spec in _pinned_packages().items():
    version = _installed_version(name)
    exact = re.fullmatch(r"\d+\.\d+\.\d+", spec) is not None
    if version is None or (exact and version != spec):
      stale.append(f"{name}@{spec} (installed: {version or 'none'})")
  return stale


def ensure_node_modules() -> str:
  """`npm ci` in export/ when a package of export/package.json is missing or another version.

  An older checkout's node_modules (e.g. without @tensorflow/tfjs-backend-wasm) is
  reinstalled from package-lock.json, so the wasm backend is never skipped for staleness.

  Returns:
    The `node` executable.

  Raises:
    NodeUnavailable: node or npm missing, or npm ci failed.
  """
  node, npm = shutil.which("node"), shutil.which("npm")
  if node is None or npm is None:
    raise NodeUnavailable("node and npm are needed to run TFJS models (install Node >= 18)")
  if _stale_packages():
    _run([npm, "ci", "--no-audit", "--no-fund"], f"npm ci in {EXPORT_DIR}", NodeUnavailable,
         cwd=EXPORT_DIR)
  return node


def wasm_backend_missing() -> Optional[str]:
  """None when @tensorflow/tfjs-backend-wasm and its .wasm binaries are installed, else why."""
  dist = os.path.join(EXPORT_DIR, "node_modules", *WASM_PACKAGE.split("/"), "dist")
  missing = [name for name in WASM_BINARIES if not os.path.isfile(os.path.join(dist, name))]
  if missing:
    return (f"{WASM_PACKAGE} is not installed in {EXPORT_DIR}/node_modules (missing "
            f"{', '.join(missing)}); run `npm ci` there")
  return None


@dataclasses.dataclass
class NodeRun:
  """What one `run_graph_model.js` call produced.

  Attributes:
    outputs: signature output name → array (the last timed call's).
    seconds: wall seconds of each timed call, until every output is on the host.
    backend: the tfjs backend that ran: "wasm" or "cpu".
    fallback: with backend="auto", why wasm was not used (None when it was).
    profile: with profile=True, time per tfjs kernel of one more call: {"total_ms",
      "kernels": [{"kernel", "calls", "ms", "share"}, ...] (most time first), "slowest":
      the 20 slowest kernel calls with their shapes}; else None.
  """
  outputs: Dict[str, np.ndarray]
  seconds: List[float]
  backend: str
  fallback: Optional[str] = None
  profile: Optional[Dict[str, Any]] = None


def run_graph_model(model_dir: str, inputs: Mapping[str, np.ndarray], backend: str = "auto",
                    repeat: int = 1, warmup: int = 0,
                    wasm_dir: Optional[str] = None, profile: bool = False) -> NodeRun:
  """Runs a converted graph model in Node (export/js/run_graph_model.js).

  Args:
    model_dir: folder with model.json.
    inputs: signature input name → float32 / int32 array.
    backend: "wasm" (@tensorflow/tfjs-backend-wasm, fails when it cannot run the graph),
      "cpu" (pure-JS), or "auto": wasm when it loads and runs the graph, else cpu (any
      failure on wasm, stated in `NodeRun.fallback`).
    repeat: timed calls (outputs are the last call's).
    warmup: untimed calls before.
    wasm_dir: folder of the tfjs-backend-wasm*.wasm binaries (default: the npm package's).
    profile: also time each kernel of one more call (`NodeRun.profile`).

  Raises:
    ValueError: unknown backend or input dtype.
    NodeUnavailable: node/npm missing or npm ci failed.
    RuntimeError: the runner failed (its message ends the error).
  """
  if backend not in BACKENDS:
    raise ValueError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
  node = ensure_node_modules()
  with tempfile.TemporaryDirectory(prefix="tfspeech_node_") as scratch:
    for name, value in inputs.items():
      dtype = np.asarray(value).dtype  # graph-ok: host I/O
      if dtype not in (np.float32, np.int32):
        raise ValueError(f"run_graph_model: input {name} is {dtype}; pass float32 or int32")
    write_runner_inputs(inputs, scratch)
    out_dir = os.path.join(scratch, "out")
    command = [node, NODE_RUNNER, f"--model={model_dir}", f"--inputs={scratch}/inputs.json",
               f"--out={out_dir}", f"--backend={backend}", f"--repeat={repeat}",
               f"--warmup={warmup}"]
    if wasm_dir:
      command.append(f"--wasm_dir={wasm_dir}")
    if profile:
      command.append("--profile")
    _run(command, "run_graph_model.js", RuntimeError, cwd=EXPORT_DIR)
    description, outputs = read_runner_outputs(out_dir)
  return NodeRun(outputs, description["seconds_per_call"], description["backend"],
                 description.get("fallback"), description.get("profile"))


def write_runner_inputs(inputs: Mapping[str, np.ndarray], folder: str) -> str:
  """Writes `inputs` as the JS runners read them (run_graph_model.js, run_tflite.js,
  check_web_demo.js): `NAME.bin` (raw little-endian row-major values) per input and
  `inputs.json` ({name: {"dtype", "shape", "file"}}); returns the inputs.json path."""
  os.makedirs(folder, exist_ok=True)
  spec = {}
  for name, value in inputs.items():
    array = np.asarray(value)  # graph-ok: host I/O (0-d stays 0-d, unlike ascontiguousarray)
    array.tofile(os.path.join(folder, f"{name}.bin"))
    spec[name] = {"dtype": str(array.dtype), "shape": list(array.shape), "file": f"{name}.bin"}
  path = os.path.join(folder, "inputs.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(spec, f)
  return path


def read_runner_outputs(out_dir: str) -> Tuple[dict, Dict[str, np.ndarray]]:
  """(outputs.json, {name: array}) of a JS runner's `--out` folder."""
  with open(os.path.join(out_dir, "outputs.json"), encoding="utf-8") as f:
    description = json.load(f)
  outputs = {name: np.fromfile(os.path.join(out_dir, entry["file"]), dtype=entry["dtype"]
                               ).reshape(entry["shape"])
             for name, entry in description["outputs"].items()}
  return description, outputs


def run_in_node(model_dir: str, inputs: Mapping[str, np.ndarray], repeat: int = 1,
                warmup: int = 0, backend: str = "auto"
                ) -> Tuple[Dict[str, np.ndarray], List[float]]:
  """`run_graph_model` returning (output name → array, seconds of each timed call).

  Args: as `run_graph_model`; backend "auto" runs on wasm when it can, else on cpu.
  """
  run = run_graph_model(model_dir, inputs, backend=backend, repeat=repeat, warmup=warmup)
  return run.outputs, run.seconds
