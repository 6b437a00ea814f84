"""One traced function per step network of an unrolled (loop-free) inference graph.

Exported graphs unroll their step loops: Grad-TTS's reverse diffusion calls its U-Net once per
step. `step_function` gives every unrolled step the same `tf.function` (traced once, stored
once in a SavedModel) instead of a traced copy per step.

How the calls run is the exporter's choice:

- Frozen graphs (TFLite, TFJS) inline them: neither runtime has function calls, and the
  freezing step inlines every call (`tfspeech.export.frozen_graph`).
- A SavedModel keeps them as calls when traced inside `calls_not_inlined()`: the function
  carries TF's `_noinline` attribute, so the runtime optimizes its body once for all the calls
  instead of inlining one copy per step and running grappler over all of them at the first
  call. Measured (tiny Grad-TTS text_to_mel, 10 steps, fresh process, 2-core AMD EPYC,
  2026-12-06): first call 13.6-13.9 s inlined, 3.1-4.5 s as calls; later calls unchanged
  (0.106-0.114 s either way).

A SavedModel written this way and then frozen by another tool (e.g. TensorFlow.js's own
converter) keeps the calls; `tfspeech-export --format=tflite|tfjs` freezes from the models, not
from the SavedModel, and is unaffected.
"""

import contextlib
import threading
from typing import Callable, Hashable, Iterator, Sequence

import tensorflow as tf

_STATE = threading.local()
_CACHE_ATTRIBUTE = "_tfspeech_step_functions"


class _StepFunctions:
  """{(key, not inlined): tf.function}, held by the owner. A plain object, not a dict: a
  SavedModel saves the tf.functions it finds in a saved object's (tracked) dicts, and would
  store both modes' traces; a module-level WeakKeyDictionary would keep every owner alive,
  since the functions' closures refer to their owner."""

  def __init__(self):
    self.functions = {}


def not_inlined() -> bool:
  """Whether step functions made now are marked `_noinline` (inside `calls_not_inlined`)."""
  return getattr(_STATE, "depth", 0) > 0


@contextlib.contextmanager
def calls_not_inlined() -> Iterator[None]:
  """Within: `step_function` returns functions TF's runtime calls rather than inlines.

  Use around the tracing of graphs that will be saved as a SavedModel (and not frozen).
  """
  _STATE.depth = getattr(_STATE, "depth", 0) + 1
  try:
    yield
  finally:
    _STATE.depth -= 1


def step_function(owner, key: Hashable, python_function: Callable,
                  input_signature: Sequence[tf.TensorSpec]) -> tf.function:
  """The `tf.function` of `python_function` for `owner` and `key`, made once per mode.

  Args:
    owner: the object whose network the function calls (the function lives as long as it).
    key: tells apart the owner's step functions (e.g. single- vs multi-speaker signatures).
    python_function: the step; called with tensors of `input_signature`.
    input_signature: `None` dims where batch and length vary, so one trace serves all calls.

  Returns:
    a `tf.function` (AutoGraph off: the step is straight-line code), `_noinline` inside
    `calls_not_inlined()`.
  """
  functions = owner.__dict__.setdefault(_CACHE_ATTRIBUTE, _StepFunctions()).functions
  noinline = not_inlined()
  if (key, noinline) not in functions:
    functions[key, noinline] = tf.function(
        python_function, input_signature=list(input_signature), autograph=False,
        experimental_attributes={"_noinline": True} if noinline else None)
  return functions[key, noinline]
