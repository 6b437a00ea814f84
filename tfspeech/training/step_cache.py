"""Traced training functions kept on disk, so a resumed run does not trace their Python again.

Every start of `tfspeech-train` traced the task's train step afresh (autograph, the Keras
layers' Python, the gradient graph: most of a tiny Grad-TTS resume's first step, see
benchmarks/startup.py), and its eval step and media summaries at their first use. Each
graph is a function of the code, the TensorFlow, Keras and Python versions, the run's
config, the corpus's metadata and the batches' spec, and of nothing else a resume changes.
So after a function's first traced call `fit` writes its graph (the `FunctionDefLibrary`)
to WORKDIR/trace_cache/<name>-<digest>/, under a digest of all of those, and a later start
with the same digest calls that graph by name, as a `tf.function` calls its own, on the
live variables in the order the graph captured them: nothing is traced. Any difference in
the digest (an edited source file, another TensorFlow, a config field that may reach the
graph) traces afresh and replaces the entry; an entry that cannot be used (other
variables, a graph the runtime refuses) is set aside with a log line and the function is
traced as before. A cached graph is the one the same code traced, so its results are the
traced function's (tested bit for bit).

Only single-replica runs under the default strategy use it; distributed steps trace.

  cache = StepCache(os.path.join(workdir, "trace_cache"), "train_step",
                    cache_key(key_parts, element_spec))
  train_fn = CachingFunction(traced_fn, cache, element_spec, variables)  # batch -> dict
"""

import dataclasses
import datetime
import functools
import hashlib
import importlib.util
import json
import os
import pathlib
import re
import shutil
import sys
import time
from typing import Any, Callable, List, Mapping, Optional, Sequence

import keras
import tensorflow as tf
from absl import logging
from google.protobuf import message as protobuf_message
from tensorflow.core.framework import function_pb2
from tensorflow.python.eager import context

FORMAT_VERSION = 1
_FUNCTIONS = "functions.pb"
_CONSTANTS = "constants.tfrecord"
_META = "meta.json"


class Uncacheable(ValueError):
  """The traced function captures or returns something a later process cannot rebuild."""


@functools.lru_cache(maxsize=None)
def source_digest() -> str:
  """sha256 over every Python file of tfspeech and tfspeech.ops, and its path.

  tfspeech.export is outside an editable install's tfspeech/ folder, and no train step
  runs its code (it sits above training and the models: tests/training/test_floors.py).
  """
  digest = hashlib.sha256()
  for package in ("tfspeech", "tfspeech.ops"):
    for location in importlib.util.find_spec(package).submodule_search_locations:
      root = pathlib.Path(location)
      for path in sorted(root.rglob("*.py")):
        digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
        digest.update(path.read_bytes())
  return digest.hexdigest()


def cache_key(parts: Mapping[str, Any], element_spec) -> str:
  """Digest of what a traced function depends on: `parts` (config, data), code, versions."""
  material = {
      "format": FORMAT_VERSION,
      "parts": parts,
      "element_spec": repr(element_spec),
      "tensorflow": tf.__version__,
      "keras": keras.__version__,
      "python": list(sys.version_info[:2]),
      "sources": source_digest(),
      "devices": sorted({d.device_type for d in tf.config.list_logical_devices()}),
      "policy": keras.config.dtype_policy().name,
  }
  text = json.dumps(material, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()


def _resource_variables(variables: Sequence[Any]) -> List[Any]:
  """`variables` with a resource handle, each handle once, in order."""
  seen, out = set(), []
  for v in variables:
    handle = getattr(v, "handle", None)
    if not isinstance(handle, tf.Tensor) or handle.dtype != tf.resource:
      continue
    if id(handle) not in seen:
      seen.add(id(handle))
      out.append(v)
  return out


def _variable_name(variable) -> str:
  """The variable's path without the numbers Keras appends to repeated layer names.

  Those numbers come from process-wide counters (a second model built in one process gets
  other ones); the rest of the path catches a variable list that came out in another order.
  """
  name = getattr(variable, "path", None) or variable.name
  return re.sub(r"_\d+(?=/|:|$)", "", name.split(":")[0])


def trackable_variables(root) -> List[Any]:
  """Every variable reachable from the trackable `root`, in a deterministic order.

  The order is the checkpoint's traversal order, so two processes that build the same
  objects from the same config list the same variables at the same positions.
  """
  return _resource_variables(tf.train.TrackableView(root).descendants())


def _flat_specs(element_spec) -> List[tf.TensorSpec]:
  specs = tf.nest.flatten(element_spec, expand_composites=False)
  if not all(isinstance(s, tf.TensorSpec) for s in specs):
    raise Uncacheable("the batch holds composite tensors")
  return specs


@dataclasses.dataclass
class CachedFunction:
  """A graph loaded from the cache: call it like the traced function it came from."""
  function_name: str
  flat_keys: List[str]  # the graph's outputs, in tf.nest order (sorted)
  output_keys: List[str]  # the order the traced function returned them in
  captures: List[tf.Tensor]  # variable handles and constants, in the graph's order

  def __call__(self, batch) -> dict:
    # As a tf.function runs its traced graph: the function called by name, with the
    # context's call options (the same Grappler and executor settings).
    outputs = context.context().call_function(
        self.function_name.encode(), tf.nest.flatten(batch) + self.captures,
        len(self.flat_keys))
    by_key = dict(zip(self.flat_keys, outputs))
    return {k: by_key[k] for k in self.output_keys}


def _rename_functions(library: function_pb2.FunctionDefLibrary, prefix: str) -> dict:
  """Prefixes every function's name and every reference to it (call/while/if attrs, ops).

  The names in a traced library come from a process-wide counter, so another function
  traced later in a loading process could otherwise take one of them.
  """
  renamed = {f.signature.name: prefix + f.signature.name for f in library.function}

  def fix(attr):
    if attr.HasField("func") and attr.func.name in renamed:
      attr.func.name = renamed[attr.func.name]
    if attr.HasField("list"):
      for func in attr.list.func:
        if func.name in renamed:
          func.name = renamed[func.name]

  for function in library.function:
    function.signature.name = renamed[function.signature.name]
    for attr in function.attr.values():
      fix(attr)
    for node in function.node_def:
      if node.op in renamed:  # a library function called as an op
        node.op = renamed[node.op]
      for attr in node.attr.values():
        fix(attr)
  return renamed


class StepCache:
  """One cached traced function, `directory/<name>-<key prefix>/`."""

  def __init__(self, directory: str, name: str, key: str):
    self.directory = directory
    self.name = name
    self.key = key
    self.path = os.path.join(directory, f"{name}-{key[:16]}")

  # ------------------------------------------------------------------ save
  def save(self, concrete, element_spec, variables: Sequence[Any]) -> bool:
    """Writes a traced `ConcreteFunction`'s graph. False, logged, if it cannot."""
    try:
      started = time.perf_counter()
      self._write(concrete, element_spec, variables)
    except (Uncacheable, OSError, ValueError, TypeError) as e:
      logging.info("trace cache: not saving %s (%s); the next start traces it again",
                   self.name, e)
      return False
    logging.info("trace cache: saved %s to %s in %.2f s", self.name, self.path,
                 time.perf_counter() - started)
    return True

  def _write(self, concrete, element_spec, variables):
    specs = _flat_specs(element_spec)
    outputs = concrete.structured_outputs
    if not isinstance(outputs, dict) or not outputs or not all(
        isinstance(v, tf.Tensor) for v in outputs.values()):
      raise Uncacheable("it does not return a non-empty flat dict of tensors")
    flat_keys = tf.nest.flatten({k: k for k in outputs})
    function_def = concrete.function_def
    if len(function_def.signature.output_arg) != len(flat_keys):
      raise Uncacheable("outputs do not map one to one onto the graph's")
    captured = list(concrete.captured_inputs)
    if len(function_def.signature.input_arg) != len(specs) + len(captured):
      raise Uncacheable("inputs do not map one to one onto the graph's")
    variables = _resource_variables(variables)
    position = {id(v.handle): i for i, v in enumerate(variables)}
    captures, constants = [], []
    for tensor in captured:
      if tensor.dtype == tf.resource:
        if id(tensor) not in position:
          inner = dict((id(e), i) for e, i in concrete.graph.captures)[id(tensor)]
          raise Uncacheable("it captures a resource that is not one of the run's "
                            f"variables ({inner.name})")
        v = variables[position[id(tensor)]]
        captures.append({"variable": position[id(tensor)], "name": _variable_name(v),
                         "dtype": tf.as_dtype(v.dtype).name, "shape": list(v.shape)})
      elif tensor.dtype == tf.variant or not hasattr(tensor, "numpy"):
        raise Uncacheable(f"it captures a {tensor.dtype.name} tensor")
      else:
        captures.append({"constant": len(constants), "dtype": tensor.dtype.name})
        constants.append(tf.io.serialize_tensor(tensor).numpy())  # graph-ok: host-side.

    library = function_pb2.FunctionDefLibrary()
    library.function.extend(concrete.graph.as_graph_def().library.function)
    library.function.append(function_def)
    renamed = _rename_functions(library, f"tfspeech_cached_{self.key[:12]}_")
    meta = {
        "format": FORMAT_VERSION,
        "key": self.key,
        "function": renamed[function_def.signature.name],
        "inputs": len(specs),
        "flat_outputs": flat_keys,
        "outputs": list(outputs),
        "captures": captures,
        "variables": len(variables),
        "tensorflow": tf.__version__,
        "written": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    os.makedirs(self.directory, exist_ok=True)
    scratch = f"{self.path}.tmp-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    with open(os.path.join(scratch, _FUNCTIONS), "wb") as f:
      f.write(library.SerializeToString())
    with tf.io.TFRecordWriter(os.path.join(scratch, _CONSTANTS)) as writer:
      for blob in constants:
        writer.write(blob)
    with open(os.path.join(scratch, _META), "w", encoding="utf-8") as f:
      json.dump(meta, f, indent=1)
    # Other keys' entries of this function are stale from now on, and a scratch folder
    # left by a killed process is garbage (the workdir lock admits one writer).
    for entry in os.listdir(self.directory):
      if entry.startswith(f"{self.name}-") and entry != os.path.basename(scratch):
        shutil.rmtree(os.path.join(self.directory, entry), ignore_errors=True)
    os.replace(scratch, self.path)

  # ------------------------------------------------------------------ load
  def load(self, element_spec, variables: Sequence[Any]) -> Optional[CachedFunction]:
    """The cached graph for this key, or None (nothing cached, or unusable: logged)."""
    if not os.path.isdir(self.path):
      if os.path.isdir(self.directory) and any(
          e.startswith(f"{self.name}-") for e in os.listdir(self.directory)):
        logging.info("trace cache: %s was traced by other code, versions or config; "
                     "tracing it again", self.name)
      return None
    started = time.perf_counter()
    try:
      loaded = self._read(element_spec, variables)
    except (Uncacheable, OSError, ValueError, KeyError, tf.errors.OpError,
            protobuf_message.DecodeError) as e:
      logging.warning("trace cache: cannot use %s (%s); tracing it instead",
                      self.path, e)
      self.discard()
      return None
    logging.info("trace cache: loaded %s in %.2f s (no tracing)", self.name,
                 time.perf_counter() - started)
    return loaded

  def _read(self, element_spec, variables) -> CachedFunction:
    with open(os.path.join(self.path, _META), encoding="utf-8") as f:
      meta = json.load(f)
    if meta.get("format") != FORMAT_VERSION or meta.get("key") != self.key:
      raise Uncacheable("written for another key or format")
    if meta["inputs"] != len(_flat_specs(element_spec)):
      raise Uncacheable("the batch has another structure")
    variables = _resource_variables(variables)
    if meta["variables"] != len(variables):
      raise Uncacheable(f"{meta['variables']} variables when traced, {len(variables)} now")
    constants = [tf.io.parse_tensor(blob, tf.as_dtype(dtype)) for blob, dtype in zip(
        tf.data.TFRecordDataset(os.path.join(self.path, _CONSTANTS)),
        [c["dtype"] for c in meta["captures"] if "constant" in c])]
    captures = []
    for capture in meta["captures"]:
      if "variable" in capture:
        v = variables[capture["variable"]]
        now = (_variable_name(v), tf.as_dtype(v.dtype).name, list(v.shape))
        if now != (capture["name"], capture["dtype"], capture["shape"]):
          raise Uncacheable(f"variable {capture['variable']} is {now}, was "
                            f"{(capture['name'], capture['dtype'], capture['shape'])}")
        captures.append(v.handle)
      else:
        captures.append(constants[capture["constant"]])
    library = function_pb2.FunctionDefLibrary()
    with open(os.path.join(self.path, _FUNCTIONS), "rb") as f:
      library.ParseFromString(f.read())
    ctx = context.context()
    for function in library.function:
      if not ctx.has_function(function.signature.name):
        ctx.add_function_def(function)
    return CachedFunction(function_name=meta["function"], flat_keys=meta["flat_outputs"],
                          output_keys=meta["outputs"], captures=captures)

  def discard(self):
    """Removes this key's entry (unusable); the next save writes it again."""
    shutil.rmtree(self.path, ignore_errors=True)


class CachingFunction:
  """A traced function whose graph a later process takes from the cache.

  The first call runs the cached graph when `cache` holds a usable one; otherwise (or if
  the runtime refuses that graph: it fails before running, so nothing was applied) it
  calls `traced` and saves the trace. Later calls go to whichever ran.

  Args:
    traced: the `tf.function`, mapping a batch to a flat dict of tensors.
    cache: its `StepCache`, or None (always `traced`, nothing saved).
    element_spec: the batches' spec (the cache key covers it).
    variables: returns every variable the graph may capture, in a deterministic order
      (`trackable_variables`); called at load and at save.
  """

  def __init__(self, traced: Callable, cache: Optional[StepCache], element_spec,
               variables: Callable[[], Sequence[Any]]):
    self._function = traced
    self._cache = cache
    self._element_spec = element_spec
    self._variables = variables
    self._cached = cache.load(element_spec, variables()) if cache is not None else None

  def __call__(self, batch):
    if self._cache is None:
      return self._function(batch)
    cache, self._cache = self._cache, None
    if self._cached is not None:
      try:
        outputs = self._cached(batch)
      except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
              tf.errors.UnimplementedError, tf.errors.FailedPreconditionError) as e:
        logging.warning("trace cache: the cached %s failed (%s); tracing it instead",
                        cache.name, str(e).splitlines()[0])
        cache.discard()
      else:
        self._function = self._cached
        return outputs
    outputs = self._function(batch)
    cache.save(self._function.get_concrete_function(batch), self._element_spec,
               self._variables())
    return outputs
