"""Helpers for tests of the graph-mode contract, usable by downstream projects too."""

import contextlib

import numpy as np
import tensorflow as tf

# Ops that call back into the Python interpreter. A graph containing any of them
# cannot be exported, run under XLA, or run without Python.
PYTHON_OP_TYPES = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc", "NumpyFunction"})


# `randomize_weights`: a variable with spread (kernels, embeddings) moves by N(0, this * its
# std); one that starts constant (biases and offsets 0, norm scales 1, ReZero gates 0, the
# prenet's zero projection, weight-norm gains) by N(0, this * max(|value|, 1)). Small enough
# that outputs stay finite and of the untrained model's size, large enough that no bias,
# offset or gate is zero (or folds away when frozen).
WEIGHT_JITTER = 0.2
CONSTANT_JITTER = 0.1


def randomize_weights(layers, seed: int) -> int:
  """Perturbs every float variable of `layers` (Keras layers/models) in place, seeded.

  Integer variables (seed-generator states) are left alone.

  Returns:
    How many variables changed.
  """
  rng = np.random.default_rng(seed)
  changed = 0
  for layer in layers:
    for variable in layer.variables:
      if not tf.as_dtype(variable.dtype).is_floating:
        continue
      value = variable.numpy()  # graph-ok: an eager test helper, never traced.
      spread = float(np.std(value))
      scale = (WEIGHT_JITTER * spread if spread > 0
               else CONSTANT_JITTER * max(float(np.max(np.abs(value))), 1.0))
      variable.assign(value + rng.normal(0.0, scale, value.shape).astype(value.dtype))
      changed += 1
  return changed


def _all_graph_defs(graph_def):
  yield graph_def.node
  for function in graph_def.library.function:
    yield function.node_def


def python_ops(fn_or_graph):
  """Returns the names of Python/NumPy callback ops in a traced graph.

  Args:
    fn_or_graph: a `tf.Graph`, a `GraphDef`, or a `ConcreteFunction`. Nested
      functions (while-loop bodies, conditionals) are searched too.

  Returns:
    A sorted list of `"op_type:node_name"` strings; empty when the graph is pure TF.
  """
  if hasattr(fn_or_graph, "graph") and not isinstance(fn_or_graph, tf.Graph):
    fn_or_graph = fn_or_graph.graph
  graph_def = fn_or_graph.as_graph_def() if isinstance(fn_or_graph, tf.Graph) else fn_or_graph
  found = set()
  for nodes in _all_graph_defs(graph_def):
    for node in nodes:
      if node.op in PYTHON_OP_TYPES:
        found.add(f"{node.op}:{node.name}")
  return sorted(found)


def op_dtypes(concrete_function, op_types) -> set:
  """The `T` dtype names of every op of `op_types` in a traced function (nested ones too)."""
  graph_def = concrete_function.graph.as_graph_def()
  return {tf.dtypes.as_dtype(node.attr["T"].type).name for nodes in _all_graph_defs(graph_def)
          for node in nodes if node.op in op_types}


def assert_no_python_ops(fn_or_graph):
  """Raises AssertionError naming every Python/NumPy callback op in the graph."""
  found = python_ops(fn_or_graph)
  if found:
    raise AssertionError("graph calls back into Python: " + ", ".join(found))


def summary_events(workdir, split):
  """Every summary a run wrote under `workdir/split`: {tag: {step: value}} (values as NumPy).

  Reads the TensorBoard event files directly (no TensorBoard needed), for tests that check
  which scalars, images and audio a training run logged.
  """
  import glob  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  from tensorflow.core.util import event_pb2  # pylint: disable=import-outside-toplevel
  found = {}
  for path in sorted(glob.glob(os.path.join(workdir, split, "events*"))):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())  # graph-ok: reads files in tests
      for value in event.summary.value:
        found.setdefault(value.tag, {})[event.step] = tf.make_ndarray(value.tensor)
  return found


@contextlib.contextmanager
def grappler_disabled():
  """Runs the block with Grappler off (`disable_meta_optimizer`), then restores the setting.

  For tests that trace a big train step and run it a few times: its first call otherwise
  spends most of the test optimising the graph. Results stay within float noise (no op
  fusion); runs that a test compares value for value must all be made the same way.
  """
  previous = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer",
                                                                False)
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  try:
    yield
  finally:
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": previous})


@contextlib.contextmanager
def captured_train_functions():
  """Collects the traced train-step `tf.function` of every `Trainer` built inside the block.

  Yields a list that fills as trainers make their train steps (`Trainer.train_step_fn`), for
  graph checks on a run made through `training.train`.
  """
  from tfspeech.training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  captured = []
  original = trainer_lib.Trainer.train_step_fn

  def capture(self, element_spec):
    fn = original(self, element_spec)
    captured.append(fn)
    return fn
  trainer_lib.Trainer.train_step_fn = capture
  try:
    yield captured
  finally:
    trainer_lib.Trainer.train_step_fn = original


def export_every_format(run_binary, root, *args, formats=("saved_model", "tflite", "tfjs")):
  """Runs `run_binary("export", *args, --format=F, --out=root/F)` for every format at once.

  Each export is mostly a single-threaded Python + TF start-up and trace, so on a small host
  they overlap well. TFJS needs its converter: without one its entry is the
  `ConverterUnavailable` error instead of a folder (tests then skip, saying why).

  Args:
    run_binary: `(binary, *args) -> subprocess.CompletedProcess`, e.g. one that registers a
      test's models first.
    root: a `pathlib.Path` under which each format gets its folder.
    *args: the other `tfspeech-export` flags.
    formats: which formats.

  Returns:
    {format: folder path, or the ConverterUnavailable error}.

  Raises:
    AssertionError: an export failed (its stderr's tail in the message).
  """
  import concurrent.futures  # pylint: disable=import-outside-toplevel
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  paths, running = {}, {}
  with concurrent.futures.ThreadPoolExecutor(len(formats)) as pool:
    for fmt in formats:
      if fmt == "tfjs":
        try:
          tfjs.converter_executable(create=False)
        except tfjs.ConverterUnavailable as error:
          paths[fmt] = error
          continue
      paths[fmt] = root / fmt
      running[fmt] = pool.submit(run_binary, "export", *args, f"--format={fmt}",
                                 f"--out={paths[fmt]}")
  for fmt, future in running.items():
    result = future.result()
    assert result.returncode == 0, (fmt, result.stderr[-3000:])
  return paths
