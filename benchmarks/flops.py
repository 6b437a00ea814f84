"""FLOPs of one call of a traced TensorFlow function, counted from its graph.

    concrete = flops.trace_static(step, batch)      # one trace with the batch's exact shapes
    counted = flops.count(concrete, while_trips=n_steps)
    counted.flops                                    # 2 × multiply-adds, matmuls and convolutions

Only the ops that cost (matrix products and convolutions: MatMul, BatchMatMul*, Einsum,
Conv2D/Conv3D/DepthwiseConv2dNative and their input/filter backprops, which a train step's
gradients and Conv1DTranspose produce) are counted, as 2 × multiply-adds from their static
shapes; element-wise work, reductions and FFTs are not (a few % of a conv network's cost).
TF's own `tf.compat.v1.profiler` (`ProfileOptionBuilder.float_operation()`) was not used: it
stops at the function-call ops (PartitionedCall, While, If) that every tf.function graph is made
of, and it has no FLOP rule for BatchMatMulV2/V3, Einsum or the conv backprops.

Function bodies are counted too: PartitionedCall / StatefulPartitionedCall (nested
tf.functions) once; If / Case: the costliest branch (so a count is an upper bound where
branches differ); While loops (tf.while_loop, AutoGraph `for ... in tf.range`, their
gradients): `while_trips` times their body, a trip count the caller knows (diffusion steps,
decoder frames) since the graph does not. A loop with costly ops but without a given count is
counted once and named in `Count.unknown_loops`; an op whose shapes are not static enough is counted as 0 and
named in `Count.unknown_ops`, so a partial count never passes silently as a full one.
"""

import dataclasses
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import tensorflow as tf

WhileTrips = Union[None, int, Dict[str, int], Callable[[str], Optional[int]]]

_MATMULS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
_CONVS = ("Conv2D", "Conv3D", "DepthwiseConv2dNative")
_CONV_BACKPROPS = ("Conv2DBackpropInput", "Conv2DBackpropFilter", "Conv3DBackpropInputV2",
                   "Conv3DBackpropFilterV2", "DepthwiseConv2dNativeBackpropInput",
                   "DepthwiseConv2dNativeBackpropFilter")
_CALLS = ("PartitionedCall", "StatefulPartitionedCall")
_WHILES = ("While", "StatelessWhile")
_IFS = ("If", "StatelessIf")
_CASES = ("Case", "StatelessCase")


@dataclasses.dataclass
class Count:
  """The FLOPs of one call.

  Attributes:
    flops: 2 × multiply-adds of every counted op (loop bodies × their trips).
    by_op: flops per op type.
    unknown_ops: names of costly ops whose shapes were not static (counted as 0).
    unknown_loops: names of While ops without a trip count (body counted once).
    loops: While op name → the trips used.
    n_ops: costly ops counted (loop bodies once).
  """
  flops: float = 0.0
  by_op: Dict[str, float] = dataclasses.field(default_factory=dict)
  unknown_ops: List[str] = dataclasses.field(default_factory=list)
  unknown_loops: List[str] = dataclasses.field(default_factory=list)
  loops: Dict[str, int] = dataclasses.field(default_factory=dict)
  n_ops: int = 0

  @property
  def complete(self) -> bool:
    """Whether every costly op had static shapes and every loop a trip count."""
    return not self.unknown_ops and not self.unknown_loops

  def add(self, other: "Count", times: int = 1) -> None:
    self.flops += other.flops * times
    for op_type, value in other.by_op.items():
      self.by_op[op_type] = self.by_op.get(op_type, 0.0) + value * times
    self.unknown_ops += other.unknown_ops
    self.unknown_loops += other.unknown_loops
    self.loops.update(other.loops)
    self.n_ops += other.n_ops

  def summary(self) -> Dict[str, object]:
    """A JSON-ready digest for a Measurement's `extra`."""
    return {"flops": self.flops, "flops_complete": self.complete,
            "flops_by_op": {k: v for k, v in sorted(self.by_op.items())},
            "flops_unknown_ops": self.unknown_ops[:10],
            "flops_unknown_loops": self.unknown_loops[:10], "flops_loops": dict(self.loops)}


def _dims(shape):
  """The static dims of a TensorShape, or None when any is unknown."""
  if shape.rank is None or not shape.is_fully_defined():
    return None
  return [int(d) for d in shape.as_list()]


def _attr(op, name, default=None):
  try:
    return op.get_attr(name)
  except ValueError:
    return default


def _matmul_flops(op):
  a, b = _dims(op.inputs[0].shape), _dims(op.inputs[1].shape)
  out = _dims(op.outputs[0].shape)
  if a is None or out is None:
    return None
  if op.type == "MatMul":
    k = a[0] if _attr(op, "transpose_a") else a[1]
  else:
    k = a[-2] if _attr(op, "adj_x") else a[-1]
  del b
  return 2.0 * float(np.prod(out)) * k


def _conv_flops(op):
  """Forward convolutions: 2 × output elements × filter taps × input channels per group."""
  out, kernel = _dims(op.outputs[0].shape), _dims(op.inputs[1].shape)
  if out is None or kernel is None:
    return None
  taps = float(np.prod(kernel[:-2]))
  per_output = taps if op.type == "DepthwiseConv2dNative" else taps * kernel[-2]
  return 2.0 * float(np.prod(out)) * per_output


def _conv_backprop_flops(op):
  """A conv backprop costs its forward conv: 2 × out_backprop elements × taps × in channels."""
  out_backprop = _dims(op.inputs[2].shape)
  if "Filter" in op.type:
    kernel = _dims(op.outputs[0].shape)  # input 1 is the filter's shape as a tensor
  else:
    kernel = _dims(op.inputs[1].shape)
  if out_backprop is None or kernel is None:
    return None
  taps = float(np.prod(kernel[:-2]))
  depthwise = op.type.startswith("Depthwise")
  if depthwise:
    # out_backprop has in_channels × multiplier channels: one tap product each.
    return 2.0 * float(np.prod(out_backprop)) * taps
  return 2.0 * float(np.prod(out_backprop)) * taps * kernel[-2]


def _einsum_flops(op):
  """2 × the product of every distinct index's size (each output element sums the others)."""
  equation = _attr(op, "equation")
  if isinstance(equation, bytes):
    equation = equation.decode()
  inputs_spec = equation.split("->")[0].split(",")
  sizes = {}
  for spec, tensor in zip(inputs_spec, op.inputs):
    dims = _dims(tensor.shape)
    if dims is None:
      return None
    if "..." in spec:
      head, tail = spec.split("...")
      n_ellipsis = len(dims) - len(head) - len(tail)
      for i, d in enumerate(dims[len(head):len(head) + n_ellipsis]):
        key = f"...{n_ellipsis - i}"  # right-aligned, as broadcasting aligns them
        sizes[key] = max(sizes.get(key, 1), d)
      spec = head + "#" * n_ellipsis + tail
      dims = dims[:len(head)] + [1] * n_ellipsis + dims[len(head) + n_ellipsis:]
    for letter, d in zip(spec, dims):
      if letter != "#":
        sizes[letter] = max(sizes.get(letter, 1), d)
  return 2.0 * float(np.prod(list(sizes.values()) or [1]))


_RULES = {**{t: _matmul_flops for t in _MATMULS}, **{t: _conv_flops for t in _CONVS},
          **{t: _conv_backprop_flops for t in _CONV_BACKPROPS}, "Einsum": _einsum_flops}


def _function_graph(graph, name, root):
  """The FuncGraph of library function `name`, from `graph` or the outermost `root`."""
  for g in (graph, root):
    fn = g._get_function(name)  # pylint: disable=protected-access
    if fn is not None:
      return fn.graph
  return None


def _trips(while_trips, op_name):
  if while_trips is None:
    return None
  if isinstance(while_trips, int):
    return while_trips
  if isinstance(while_trips, dict):
    for key, value in while_trips.items():
      if key in op_name:
        return value
    return None
  return while_trips(op_name)


def _count_graph(graph, root, while_trips, prefix, memo):
  count = Count()
  for op in graph.get_operations():
    name = prefix + op.name
    rule = _RULES.get(op.type)
    if rule is not None:
      value = rule(op)
      if value is None:
        count.unknown_ops.append(f"{name} ({op.type})")
      else:
        count.flops += value
        count.n_ops += 1
        count.by_op[op.type] = count.by_op.get(op.type, 0.0) + value
      continue
    if op.type in _CALLS or op.type in _WHILES or op.type in _IFS or op.type in _CASES:
      if op.type in _CALLS:
        names = [_attr(op, "f").name]
      elif op.type in _WHILES:
        names = [_attr(op, "body").name]
      elif op.type in _IFS:
        names = [_attr(op, "then_branch").name, _attr(op, "else_branch").name]
      else:
        names = [f.name for f in _attr(op, "branches")]
      counts = []
      for fn_name in names:
        body = _function_graph(graph, fn_name, root)
        if body is None:
          count.unknown_ops.append(f"{name} ({op.type}: function {fn_name} not found)")
          continue
        key = (fn_name, id(while_trips))
        if key not in memo:
          memo[key] = _count_graph(body, root, while_trips, name + "/", memo)
        counts.append(memo[key])
      if not counts:
        continue
      if op.type in _WHILES:
        trips = _trips(while_trips, name)
        if trips is None and not counts[0].flops and not counts[0].unknown_ops:
          trips = 1  # a loop without costly ops (e.g. MAS over frames): its trips do not matter
        elif trips is None:
          count.unknown_loops.append(name)
          trips = 1
        else:
          count.loops[name] = trips
        count.add(counts[0], trips)
      else:
        count.add(max(counts, key=lambda c: c.flops))  # If/Case: the costliest branch
  return count


def count(concrete_function, while_trips: WhileTrips = None) -> Count:
  """FLOPs of one call of `concrete_function` (a `tf.function`'s ConcreteFunction).

  Args:
    concrete_function: traced with the shapes of the call being measured (see `trace_static`).
    while_trips: trips of the While loops: one int for every loop, {substring of the op name:
      trips}, or a callable name -> trips (None: unknown). Op names are nested with "/" through
      function calls, e.g. "StatefulPartitionedCall/while".

  Returns:
    a `Count`.
  """
  graph = concrete_function.graph
  return _count_graph(graph, graph, while_trips, "", {})


def trace_static(fn, *args, **kwargs):
  """`fn`'s ConcreteFunction for exactly these arguments' shapes (one extra trace).

  `fn` is a `tf.function` (its Python function is traced again without its input signature,
  whose `None` dims would hide the shapes) or a Python callable. Tracing only builds the graph:
  no grappler pass, no XLA, nothing runs.
  """
  python_fn = getattr(fn, "python_function", fn)
  return tf.function(python_fn, autograph=True).get_concrete_function(*args, **kwargs)


def count_call(fn, *args, while_trips: WhileTrips = None, **kwargs) -> Count:
  """`count(trace_static(fn, *args, **kwargs), while_trips)`."""
  return count(trace_static(fn, *args, **kwargs), while_trips)

