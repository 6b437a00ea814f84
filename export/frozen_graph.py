"""Frozen, converter-friendly SavedModels: the common input of the TFLite and TFJS exporters.

  functions = {"mel_to_audio": module.concrete_function()}
  save_frozen_saved_model(functions, "/tmp/frozen")   # constants only, one signature each

Why freeze: in this TensorFlow (2.17) the TFLite converter aborts the whole process
("missing attribute 'value'", LLVM ERROR) on the variable reads of Keras 3 layers, both from
a concrete function and from a SavedModel with variables. Folding the variables into
constants first avoids it, and the TFJS converter reads the same frozen SavedModel, so both
runtimes convert one identical graph.

How: a loop-free graph has its function calls inlined by Grappler (C++) and its variable
reads replaced by constants in the GraphDef protobuf (`_inlined_constants`), and is written
as a TF1-style SavedModel (a GraphDef and signature defs). `convert_variables_to_constants_v2`
and `tf.saved_model.save` of the frozen function rebuilt the graph op by op in Python: for a
tiny Grad-TTS's 10 unrolled steps (~30k nodes) 70 s per graph where this takes ~3 s.
Graphs with a loop (below) or a resource used other than by a read take that older path.

Two rewrites make that graph legal for TFLite builtins (both keep the TF semantics):
  * `x[:, None]`, `x[..., None]` (StridedSlice with new_axis_mask) on tensors with dynamic
    dims do not legalize to TFLite's STRIDED_SLICE; each becomes an optional plain
    StridedSlice followed by ExpandDims.
  * `Assert` ops (argument checks inside the models) are removed: the TFLite converter
    drops them itself, and removing them first keeps the TFJS graph identical; the checks
    they made cannot fail in the inference graphs (e.g. Grad-TTS's noise-length check, as
    `inference_graphs.TextToMel` always passes long-enough noise).

One more rewrite keeps the artifacts small: freezing turns every variable read into an
`Identity` of the variable's one `Const`, and the TFJS converter folds each of those into a
`Const` of its own, so a weight read N times was stored N times (Grad-TTS unrolled to 4
steps: 3x the weights, 184 MB for the ljspeech preset). Consumers of an `Identity` of a `Const`
read the `Const` directly instead.

Graphs with a loop (Tacotron 2's and DC-TTS's autoregressive decoding, DiffWave's reverse
process over runtime betas: one `tf.while_loop` each) are frozen without lowering their
control flow: the loop stays one functional `While` whose body and condition are library
functions (the rewrites here apply to the main graph, not to those bodies: a model writes
new axes in a loop body with `tf.expand_dims`, and its argument checks as `tf.debugging.Assert`
with string-only data, a plain Assert, where one with tensor data becomes an If op). TFLite
converts it to one builtin WHILE; lowered to v1 control flow
(Enter/Merge/Switch/Exit) the TFJS converter could not inline the SavedModel's function
("Unsupported Ops ...: PartitionedCall"). Loop-free graphs are lowered and checked as before.
Two more rewrites are for tfjs 4.22 and change only graphs that have those ops: `EnsureShape`
becomes `Identity` (tfjs reads its shape as a second input, TF stores an attribute: "Cannot
read properties of undefined (reading 'split')"), and a bool `ReverseV2` reverses as int32
(`_int_reverse`: the wasm backend's Reverse kernel mishandles 1-byte bools).

And one keeps the TFJS graph runnable on its WebAssembly backend: Keras adds a conv's bias as
`x + reshape(bias, [1, 1, 1, C])`, which Keras's TF backend turns into a `BiasAdd` with a
rank-1 bias except when C == 1 (the Grad-TTS score estimator's `final_conv`): that stays an
`AddV2` with a `[1, 1, 1, 1]` constant, which the TFJS converter fuses into `_FusedConv2D`
with a rank-4 bias, which tfjs-backend-wasm rejects ("FusedConv2D only supports rank-1 bias",
issue #16). An `Add`/`AddV2` of a conv or MatMul output and a constant of shape
`[1, ..., 1, C]` (no more dims than the output) gets that constant as `[C]`: the same
broadcast, so TF and TFLite compute exactly the same values.

And one lets LiteRT's XNNPACK delegate take a HiFi-GAN generator whole: a height-1 "SAME"
transposed convolution (its upsamplers) becomes a stride-1 `Conv2D` over a polyphase kernel and a
`Reshape` (`_polyphase_upsampling`; same values up to float rounding), because TFLite's
TRANSPOSE_CONV is delegated only with a constant output shape, which a dynamic length does not
give (V2, 4 s of mel: 0.091 s per call with it, 0.080 s without; TF 0.078 s).
"""

import os
from typing import Dict, List, Mapping, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import node_def_pb2
from tensorflow.python.framework import convert_to_constants
from tensorflow.python.framework import tensor_util
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from tfspeech.export import progress


def _bits(mask: int, count: int) -> List[bool]:
  return [bool((mask >> i) & 1) for i in range(count)]


def _mask(flags: List[bool]) -> int:
  return sum(1 << i for i, flag in enumerate(flags) if flag)


def _const_array(nodes: Mapping[str, node_def_pb2.NodeDef], tensor_name: str):
  node = nodes.get(tensor_name.split(":")[0])
  if node is None or node.op != "Const":
    return None
  return tensor_util.MakeNdarray(node.attr["value"].tensor)


def _const_node(name: str, array) -> node_def_pb2.NodeDef:
  array = np.asarray(array)  # graph-ok: building GraphDef constants offline.
  node = node_def_pb2.NodeDef(name=name, op="Const")
  node.attr["dtype"].type = tf.as_dtype(array.dtype).as_datatype_enum
  node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(array))
  return node


def _split_new_axes(node, nodes) -> List[node_def_pb2.NodeDef]:
  """StridedSlice with new axes → [StridedSlice without them] + ExpandDims per new axis.

  Returns [] when the node cannot be split (non-constant begin/end/strides); the last node
  returned carries the original name, so consumers need no rewiring.
  """
  specs = [_const_array(nodes, name) for name in node.input[1:4]]
  if any(s is None for s in specs):
    return []
  begin, end, strides = specs
  count = len(begin)
  new_axis = _bits(node.attr["new_axis_mask"].i, count)
  shrink = _bits(node.attr["shrink_axis_mask"].i, count)
  ellipsis = _bits(node.attr["ellipsis_mask"].i, count)
  begin_mask = _bits(node.attr["begin_mask"].i, count)
  end_mask = _bits(node.attr["end_mask"].i, count)
  ellipsis_at = ellipsis.index(True) if any(ellipsis) else count
  # Which spec entries make an output dim (the ellipsis makes an unknown number of them).
  makes_dim = [(new_axis[i] or not shrink[i]) and i != ellipsis_at for i in range(count)]
  # New axes before the ellipsis sit at a position from the front, those after it at a
  # position from the back. Inserting front ones in ascending order and back ones from the
  # last dim inwards puts each at its final place.
  front = sorted(sum(makes_dim[:i]) for i in range(count) if new_axis[i] and i < ellipsis_at)
  back = sorted((-1 - sum(makes_dim[i + 1:]) for i in range(count)
                 if new_axis[i] and i > ellipsis_at), reverse=True)
  keep = [i for i in range(count) if not new_axis[i]]
  controls = [name for name in node.input if name.startswith("^")]
  source = node.input[0]
  out = []
  inner_is_identity = all(i == ellipsis_at or (begin_mask[i] and end_mask[i] and strides[i] == 1
                                               and not shrink[i]) for i in keep)
  if not inner_is_identity:
    names = [f"{node.name}/sliced_{part}" for part in ("begin", "end", "strides")]
    for name, values in zip(names, (begin, end, strides)):
      out.append(_const_node(name, values[keep]))
    inner = node_def_pb2.NodeDef(name=f"{node.name}/sliced", op="StridedSlice",
                                 input=[source] + names + controls)
    inner.attr["T"].CopyFrom(node.attr["T"])
    inner.attr["Index"].CopyFrom(node.attr["Index"])
    for key, flags in (("begin_mask", begin_mask), ("end_mask", end_mask),
                       ("shrink_axis_mask", shrink), ("ellipsis_mask", ellipsis)):
      inner.attr[key].i = _mask([flags[i] for i in keep])
    inner.attr["new_axis_mask"].i = 0
    out.append(inner)
    source, controls = inner.name, []
  positions = front + back
  for index, position in enumerate(positions):
    last = index == len(positions) - 1
    axis_name = f"{node.name}/new_axis_{index}/axis"
    out.append(_const_node(axis_name, np.int32(position)))  # graph-ok: GraphDef constant.
    expand = node_def_pb2.NodeDef(name=node.name if last else f"{node.name}/new_axis_{index}",
                                  op="ExpandDims", input=[source, axis_name] + controls)
    expand.attr["T"].CopyFrom(node.attr["T"])
    expand.attr["Tdim"].type = tf.int32.as_datatype_enum
    out.append(expand)
    source, controls = expand.name, []
  return out


def _const_identities(graph_def, keep) -> Dict[str, str]:
  """{name of an Identity (chain) of a Const, not in `keep`: that Const's name}."""
  consts = {node.name for node in graph_def.node if node.op == "Const"}
  identities = {node.name: node.input[0].split(":")[0] for node in graph_def.node
                if node.op == "Identity" and node.name not in keep and len(node.input) == 1
                and not node.input[0].startswith("^")}
  renames = {}
  for name in identities:
    source, seen = identities[name], {name}
    while source in identities and source not in seen:  # an Identity of an Identity of ...
      seen.add(source)
      source = identities[source]
    if source in consts:
      renames[name] = source
  return renames


def _rename_input(name: str, renames: Mapping[str, str]) -> str:
  control = name.startswith("^")
  node = name.lstrip("^").split(":")[0]
  if node not in renames:
    return name
  return ("^" if control else "") + renames[node]


# Ops whose output an Add with a per-channel constant is a bias of (the TFJS converter fuses
# them), and the rank of that output.
_BIASED_OPS = {"Conv2D": 4, "Conv2DBackpropInput": 4, "DepthwiseConv2dNative": 4, "MatMul": 2}


def _folded_const(nodes: Mapping[str, node_def_pb2.NodeDef], tensor_name: str):
  """The value of a `Const`, or of `Reshape`/`ExpandDims`/`Identity` chains of one, else None."""
  node = nodes.get(tensor_name.split(":")[0])
  if node is None or tensor_name.startswith("^"):
    return None
  if node.op == "Const":
    return tensor_util.MakeNdarray(node.attr["value"].tensor)
  if node.op == "Identity":
    return _folded_const(nodes, node.input[0])
  if node.op == "ExpandDims":
    value, axis = (_folded_const(nodes, name) for name in node.input[:2])
    if value is None or axis is None:
      return None
    return np.expand_dims(value, int(axis))  # graph-ok: folding GraphDef constants offline.
  if node.op == "Reshape":
    value, shape = (_folded_const(nodes, name) for name in node.input[:2])
    if value is None or shape is None:
      return None
    return np.reshape(value, shape)  # graph-ok: folding GraphDef constants offline.
  return None


def _rank1_biases(nodes_list: List[node_def_pb2.NodeDef]
                  ) -> Tuple[List[node_def_pb2.NodeDef], int]:
  """Gives each `Add(conv or MatMul, constant [1, ..., 1, C])` a `[C]` constant instead.

  See the module docstring. Returns (nodes, how many Adds changed); the old constant's nodes
  stay (unused: the converters prune them).
  """
  nodes = {node.name: node for node in nodes_list}
  out, changed = [], 0
  for node in nodes_list:
    out.append(node)
    if node.op not in ("Add", "AddV2") or len(node.input) < 2:
      continue
    producers = [nodes.get(name.split(":")[0]) for name in node.input[:2]]
    for side in (0, 1):
      producer = producers[1 - side]
      if producer is None or producer.op not in _BIASED_OPS:
        continue
      value = _folded_const(nodes, node.input[side])
      if (value is None or value.ndim < 2 or value.ndim > _BIASED_OPS[producer.op]
          or any(dim != 1 for dim in value.shape[:-1])):
        continue
      name = f"{node.name}/rank1_bias"
      out.insert(len(out) - 1, _const_node(name, value.reshape([-1])))
      node.input[side] = name
      changed += 1
      break
  return out, changed


def _phase_taps(width: int, stride: int, crop: int):
  """One axis of a transposed convolution as a stride-1 one: (rows, left pad, right pad).

  Output sample `p * stride + r` is `sum_q x[p - q] W[q * stride + r + crop]` over the q that
  index W; tap i of the stride-1 convolution reads `x[p + i - left]`, i.e. q = left - i.
  `rows[i][r]` is the kernel row tap i applies for phase r, None where it has none.
  """
  offsets = [q for q in range(-width - crop - stride, width + 1)
             if any(0 <= q * stride + r + crop < width for r in range(stride))]
  q_low, q_high = min(offsets), max(offsets)
  rows = [[row if 0 <= row < width else None
           for row in ((q_high - i) * stride + r + crop for r in range(stride))]
          for i in range(q_high - q_low + 1)]
  return rows, q_high, -q_low


def _phase_axes(kernel, strides, crops):
  """`_phase_taps` of the height and width axes of a `[kh, kw, out, in]` transposed-conv
  kernel with strides `(sh, sw)` whose output drops its first `crops` rows and columns."""
  return [_phase_taps(kernel.shape[axis], stride, crop)
          for axis, (stride, crop) in enumerate(zip(strides, crops))]


def _polyphase_kernel(kernel, axes):
  """A transposed convolution as a stride-1 one: (kernel `[taps_h, taps_w, in, sh * sw * out]`,
  pads `[[top, bottom], [left, right]]`) for a `[kh, kw, out, in]` transposed-conv kernel and
  its `_phase_axes`.

  Output channel `(a * sw + b) * out + o` is phase (a, b) of channel o: a Reshape (sh = 1) or
  a DepthToSpace (sh = sw) interleaves them.
  """
  _, _, out_channels, in_channels = kernel.shape
  (rows_h, top, bottom), (rows_w, left, right) = axes
  stride_h, stride_w = len(rows_h[0]), len(rows_w[0])
  table = np.zeros([len(rows_h), len(rows_w), in_channels, stride_h, stride_w, out_channels],
                   kernel.dtype)
  for i, phases_h in enumerate(rows_h):
    for j, phases_w in enumerate(rows_w):
      for a, row in enumerate(phases_h):
        for b, column in enumerate(phases_w):
          if row is not None and column is not None:
            table[i, j, :, a, b, :] = kernel[row, column].T
  return (table.reshape([len(rows_h), len(rows_w), in_channels, -1]),
          [[top, bottom], [left, right]])


def _phase_kernels(kernel, axes):
  """The polyphase form as one small convolution per phase, with no zero taps: a list, in
  output-channel order `a * sw + b`, of (kernel `[ta, tb, in, out]`, pads `[[top, bottom],
  [left, right]]`) for a "VALID" Conv2D of the padded input; None when a phase would need a
  negative pad (then `_polyphase_kernel`'s one convolution serves)."""
  table, pads = _polyphase_kernel(kernel, axes)
  stride_h, stride_w = (len(rows[0]) for rows, _, _ in axes)
  table = table.reshape(table.shape[:3] + (stride_h, stride_w, kernel.shape[2]))
  # Per axis, per phase: the taps that phase reads (a contiguous range).
  taps = [[[i for i, row in enumerate(rows) if row[phase] is not None]
           for phase in range(len(rows[0]))] for rows, _, _ in axes]
  phases = []
  for a in range(stride_h):
    for b in range(stride_w):
      rows, columns = taps[0][a], taps[1][b]
      if not rows or not columns:
        return None
      sub = table[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1, :, a, b, :]
      phase_pads = []
      for (before, _), first, size in zip(pads, (rows[0], columns[0]), sub.shape[:2]):
        phase_pads.append([before - first, size - 1 - (before - first)])
      if min(min(pad) for pad in phase_pads) < 0:
        return None
      phases.append((sub, phase_pads))
  return phases


def _stride_times(nodes, tensor_name: str, stride: int) -> bool:
  """Whether `tensor_name` is a `Mul` by the constant `stride` (an output length's form), or
  a constant multiple of `stride` (a static one)."""
  value = _folded_const(nodes, tensor_name)
  if value is not None:
    return value.size == 1 and int(value.reshape(())) % stride == 0
  node = nodes.get(tensor_name.split(":")[0])
  if node is None or node.op != "Mul":
    return False
  values = [_folded_const(nodes, name) for name in node.input[:2]]
  return any(v is not None and v.size == 1 and int(v.reshape(())) == stride for v in values)


def _polyphase_upsampling(nodes_list: List[node_def_pb2.NodeDef]
                          ) -> Tuple[List[node_def_pb2.NodeDef], int]:
  """Rewrites "SAME" transposed convolutions as stride-1 Conv2Ds and an interleave.

  LiteRT's XNNPACK delegate takes a TRANSPOSE_CONV only with a constant output shape, so an
  upsampler with a dynamic length ran on TFLite's own kernel, between delegate partitions:
  HiFi-GAN V2, 4 s of audio: 0.091 s per call vs 0.081 s in this form; Grad-TTS's U-Net
  upsamplers (4x4, stride 2) at ljspeech size: 66 and 73 ms in LiteRT vs 18 and 11 ms in TF,
  now 12 and 15 ms. Each phase is its own small convolution (`_phase_kernels`), concatenated
  phase-major: one convolution over the whole phase table (`_polyphase_kernel`, the fallback
  when a phase would need a negative pad) multiplies zeros too, 2.25x the multiply-adds for
  4x4 stride 2 (23 and 25 ms).

  Rewritten: `Conv2DBackpropInput` with a constant `[kh, kw, out, in]` filter, NHWC, no
  dilation, and an output size packed as `[batch, sh * H, sw * W, out]` (each a `Mul` by its
  stride or a constant multiple of it), where either the height is 1 (kh = sh = 1: HiFi-GAN's
  `[batch, 1, time, channels]`; a Reshape interleaves) or sh = sw (a DepthToSpace does).
  TF's "SAME" then crops `(k - s) // 2` at the start of each axis, the polyphase form's crop.
  The last node keeps the transposed conv's name, so its consumers are unchanged.
  """
  nodes = {node.name: node for node in nodes_list}
  out, changed = [], 0
  for node in nodes_list:
    if node.op != "Conv2DBackpropInput" or node.attr["padding"].s != b"SAME":
      out.append(node)
      continue
    strides = list(node.attr["strides"].list.i)
    dilations = list(node.attr["dilations"].list.i) or [1, 1, 1, 1]
    kernel = _folded_const(nodes, node.input[1])
    sizes = nodes.get(node.input[0].split(":")[0])
    if (node.attr["data_format"].s not in (b"", b"NHWC") or len(strides) != 4
        or strides[0] != 1 or strides[3] != 1 or dilations != [1, 1, 1, 1]
        or kernel is None or kernel.ndim != 4
        or sizes is None or sizes.op != "Pack" or len(sizes.input) != 4
        or not _stride_times(nodes, sizes.input[2], strides[2])):
      out.append(node)
      continue
    stride_h, stride_w = strides[1:3]
    height_one = stride_h == 1 and kernel.shape[0] == 1
    if not (height_one or (stride_h == stride_w > 1  # DepthToSpace needs a block of 2+
                           and _stride_times(nodes, sizes.input[1], stride_h))):
      out.append(node)
      continue
    strides_hw = (stride_h, stride_w)
    axes = _phase_axes(kernel, strides_hw, [max(width - stride, 0) // 2
                                            for width, stride in zip(kernel.shape[:2], strides_hw)])
    phases = _phase_kernels(kernel, axes) or [_polyphase_kernel(kernel, axes)]
    convs = []
    for index, (phase_kernel, pads) in enumerate(phases):
      prefix = f"{node.name}/polyphase_{index}"
      kernel_node = _const_node(f"{prefix}/kernel", phase_kernel)
      out.append(kernel_node)
      source = node.input[2]
      padding = b"SAME"
      if any(pad != [(taps - 1) // 2, taps // 2]
             for pad, taps in zip(pads, phase_kernel.shape[:2])):
        pads_node = _const_node(f"{prefix}/pads", np.array([[0, 0]] + pads + [[0, 0]], np.int32))
        pad = node_def_pb2.NodeDef(name=f"{prefix}/pad", op="Pad",
                                   input=[source, pads_node.name])
        pad.attr["T"].CopyFrom(node.attr["T"])
        pad.attr["Tpaddings"].type = tf.int32.as_datatype_enum
        out.extend([pads_node, pad])
        source, padding = pad.name, b"VALID"
      conv = node_def_pb2.NodeDef(name=prefix, op="Conv2D", input=[source, kernel_node.name])
      conv.attr["T"].CopyFrom(node.attr["T"])
      conv.attr["strides"].list.i.extend([1, 1, 1, 1])
      conv.attr["dilations"].list.i.extend([1, 1, 1, 1])
      conv.attr["padding"].s = padding
      conv.attr["data_format"].s = b"NHWC"
      out.append(conv)
      convs.append(conv.name)
    phases_out = convs[0]
    if len(convs) > 1:  # phase-major channels, as the one-convolution form has them
      axis = _const_node(f"{node.name}/polyphase_axis", np.array(3, np.int32))
      concat = node_def_pb2.NodeDef(name=f"{node.name}/polyphase", op="ConcatV2",
                                    input=convs + [axis.name])
      concat.attr["T"].CopyFrom(node.attr["T"])
      concat.attr["N"].i = len(convs)
      concat.attr["Tidx"].type = tf.int32.as_datatype_enum
      out.extend([axis, concat])
      phases_out = concat.name
    if height_one:
      interleave = node_def_pb2.NodeDef(name=node.name, op="Reshape",
                                        input=[phases_out, node.input[0]])
      interleave.attr["Tshape"].type = tf.int32.as_datatype_enum
    else:
      interleave = node_def_pb2.NodeDef(name=node.name, op="DepthToSpace", input=[phases_out])
      interleave.attr["block_size"].i = stride_h
      interleave.attr["data_format"].s = b"NHWC"
    interleave.attr["T"].CopyFrom(node.attr["T"])
    out.append(interleave)
    changed += 1
  return out, changed


def _int_reverse(node) -> List[node_def_pb2.NodeDef]:
  """A bool ReverseV2 → Cast to int32, ReverseV2, Cast back (the last keeps the name).

  tfjs-backend-wasm 4.22's Reverse kernel reads and writes 4 bytes per element while the
  wasm backend stores bool tensors with 1 byte per element: a bool reverse (Tacotron 2's
  bidirectional encoder reverses its valid-step mask) gave wrong values and then "memory
  access out of bounds". Found by running each tfjs kernel of the graph on cpu in turn.
  """
  controls = [name for name in node.input if name.startswith("^")]
  to_int = node_def_pb2.NodeDef(name=f"{node.name}/as_int", op="Cast",
                                input=[node.input[0]] + controls)
  to_int.attr["SrcT"].type = tf.bool.as_datatype_enum
  to_int.attr["DstT"].type = tf.int32.as_datatype_enum
  reverse = node_def_pb2.NodeDef(name=f"{node.name}/reversed", op="ReverseV2",
                                 input=[to_int.name, node.input[1]])
  reverse.attr["T"].type = tf.int32.as_datatype_enum
  reverse.attr["Tidx"].CopyFrom(node.attr["Tidx"])
  back = node_def_pb2.NodeDef(name=node.name, op="Cast", input=[reverse.name])
  back.attr["SrcT"].type = tf.int32.as_datatype_enum
  back.attr["DstT"].type = tf.bool.as_datatype_enum
  return [to_int, reverse, back]


def make_converter_friendly(graph_def: tf.compat.v1.GraphDef, keep=()
                            ) -> Tuple[tf.compat.v1.GraphDef, Dict[str, int]]:
  """Applies the rewrites in the module docstring to a frozen (function-free) GraphDef.

  Args:
    graph_def: the frozen graph.
    keep: node names that must stay (the function's outputs).

  Returns:
    (new GraphDef, counts {"new_axis_slices": n, "asserts": n, "const_identities": n,
    "rank1_biases": n, "ensure_shapes": n, "bool_reverses": n, "polyphase_upsamplers": n}).
  """
  nodes = {node.name: node for node in graph_def.node}
  asserts = {node.name for node in graph_def.node if node.op == "Assert"}
  bypassed = _const_identities(graph_def, set(keep))
  out, split, ensured, bool_reverses = [], 0, 0, 0
  for node in graph_def.node:
    if node.name in asserts or node.name in bypassed:
      continue
    if asserts:
      kept = [name for name in node.input if name.lstrip("^").split(":")[0] not in asserts]
      del node.input[:]
      node.input.extend(kept)
    if bypassed and any(name.lstrip("^").split(":")[0] in bypassed for name in node.input):
      renamed = [_rename_input(name, bypassed) for name in node.input]
      del node.input[:]
      node.input.extend(renamed)
    if node.op == "EnsureShape":
      # tfjs 4.22 reads EnsureShape's shape as a second input (TF stores an attribute) and
      # fails on it ("Cannot read properties of undefined (reading 'split')"); the check
      # cannot fail here (the traced graph fixed those dims), so it becomes an Identity.
      node.op = "Identity"
      del node.attr["shape"]
      ensured += 1
    if node.op == "ReverseV2" and node.attr["T"].type == tf.bool.as_datatype_enum:
      out.extend(_int_reverse(node))
      bool_reverses += 1
      continue
    if node.op == "StridedSlice" and node.attr["new_axis_mask"].i:
      replacement = _split_new_axes(node, nodes)
      if replacement:
        out.extend(replacement)
        split += 1
        continue
    out.append(node)
  out, biases = _rank1_biases(out)
  out, upsamplers = _polyphase_upsampling(out)
  result = tf.compat.v1.GraphDef()
  result.CopyFrom(graph_def)
  del result.node[:]
  result.node.extend(out)
  return result, {"new_axis_slices": split, "asserts": len(asserts),
                  "const_identities": len(bypassed), "rank1_biases": biases,
                  "ensure_shapes": ensured, "bool_reverses": bool_reverses,
                  "polyphase_upsamplers": upsamplers}


LOOP_OPS = ("While", "StatelessWhile")


def has_loops(concrete_function) -> bool:
  """Whether a traced function has a `tf.while_loop` (a While op, at any nesting depth)."""
  graph_def = concrete_function.graph.as_graph_def()
  nodes = list(graph_def.node)
  for function in graph_def.library.function:
    nodes.extend(function.node_def)
  return any(node.op in LOOP_OPS for node in nodes)


def _inlined_constants(concrete_function):
  """A loop-free function's GraphDef with its calls inlined and its variables as constants,
  or None where this fast path does not apply (TensorFlow without the inliner, a loop, or a
  resource used by anything but a read).

  Grappler inlines (C++), and the reads become `Identity`s of one `Const` per variable in
  the GraphDef's protobuf. `convert_variables_to_constants_v2` did the same by rebuilding
  the graph op by op in Python, twice with `freeze`'s pruning: ~25 s for a tiny Grad-TTS's
  10-step graph (~30k nodes), where this takes ~2 s. Control inputs and NoOps go: the
  inliner orders each call's body after its inputs with them, which a loop-free graph of
  stateless ops does not need, and the TFJS converter turned them into `^Fill`-style extra
  inputs of `Pack` nodes, which tfjs then stacked as tensors ("the input tensors shape does
  not match").
  """
  inline = getattr(convert_to_constants, "_run_inline_graph_optimization", None)
  if inline is None:
    return None
  graph_def = inline(concrete_function, True, False)
  if graph_def.library.function:
    return None
  captured = concrete_function.captured_inputs
  placeholders = concrete_function.graph.inputs[len(concrete_function.graph.inputs)
                                                - len(captured):]
  variables = {id(v.handle): v for v in concrete_function.graph.variables}
  values, resources = {}, {}
  for placeholder, tensor in zip(placeholders, captured):
    if tensor.dtype == tf.resource:
      if id(tensor) not in variables:
        return None
      resources[placeholder.op.name] = placeholder.op.name
      values[placeholder.op.name] = variables[id(tensor)].numpy()  # graph-ok: freezing offline
    else:  # an eager tensor captured by value
      values[placeholder.op.name] = tensor.numpy()  # graph-ok: freezing offline
  # Identities of a resource (the inliner's function inputs) stand for its variable.
  grown = True
  while grown:
    grown = False
    for node in graph_def.node:
      if (node.op == "Identity" and node.name not in resources
          and node.input[0].split(":")[0] in resources):
        resources[node.name] = resources[node.input[0].split(":")[0]]
        grown = True
  out = []
  for node in graph_def.node:
    if node.name in values:
      out.append(_const_node(node.name, values[node.name]))
      continue
    if node.name in resources:
      continue
    if node.op == "ReadVariableOp" and node.input[0] in resources:
      read = node_def_pb2.NodeDef(name=node.name, op="Identity",
                                  input=[resources[node.input[0]]])
      read.attr["T"].type = node.attr["dtype"].type
      out.append(read)
      continue
    if node.op == "NoOp":
      continue
    inputs = []
    for name in node.input:
      if name.startswith("^"):
        continue
      if name.split(":")[0] in resources:
        return None  # e.g. ResourceGather: convert_variables_to_constants_v2 handles it
      inputs.append(name)
    del node.input[:]
    node.input.extend(inputs)
    out.append(node)
  result = tf.compat.v1.GraphDef()
  result.CopyFrom(graph_def)
  del result.node[:]
  result.node.extend(out)
  return result


def frozen_graph_def(concrete_function) -> Tuple[tf.compat.v1.GraphDef, Dict[str, str],
                                                 Dict[str, str]]:
  """A constants-only, converter-friendly GraphDef of a concrete function with a dict output.

  Args:
    concrete_function: traced with an input signature whose specs have names (the
      signature's input names) and returning a dict of tensors (the output names).

  Returns:
    (GraphDef, {input name: tensor name}, {output key: tensor name}).
  """
  outputs = concrete_function.structured_outputs
  if not isinstance(outputs, dict):
    raise ValueError(f"freeze: {concrete_function.name} must return a dict of named tensors, "
                     f"got {type(outputs).__name__}")
  loops = has_loops(concrete_function)
  graph_def = None if loops else _inlined_constants(concrete_function)
  if graph_def is not None:
    count = len(concrete_function.inputs) - len(concrete_function.captured_inputs)
    inputs, results = concrete_function.inputs[:count], concrete_function.outputs
  else:
    # A loop stays one functional While (see the module docstring): lowered to v1 control
    # flow it could not be inlined by the TFJS converter's own freezing.
    frozen = convert_variables_to_constants_v2(concrete_function, lower_control_flow=not loops)
    graph_def = frozen.graph.as_graph_def()
    inputs, results = frozen.inputs, frozen.outputs
  graph_def, _ = make_converter_friendly(
      graph_def, keep=[t.name.split(":")[0] for t in list(results) + list(inputs)])
  if graph_def.library.function and not loops:
    raise ValueError(f"freeze: {concrete_function.name} still has "
                     f"{len(graph_def.library.function)} nested functions (control flow); "
                     "export a loop-free graph (e.g. Grad-TTS with unroll=True)")
  specs = tf.nest.flatten(concrete_function.structured_input_signature)
  names = [getattr(spec, "name", None) or t.name.split(":")[0]
           for spec, t in zip(specs, inputs)]
  # The function lists outputs in tf.nest order of the dict (sorted keys).
  return (graph_def, dict(zip(names, (t.name for t in inputs))),
          dict(zip(sorted(outputs), (t.name for t in results))))


def freeze(concrete_function) -> tf.types.experimental.ConcreteFunction:
  """`frozen_graph_def` as a ConcreteFunction taking the named inputs, returning the dict."""
  graph_def, inputs, outputs = frozen_graph_def(concrete_function)

  def import_graph():
    tf.compat.v1.import_graph_def(graph_def, name="")

  wrapped = tf.compat.v1.wrap_function(import_graph, [])
  graph = wrapped.graph
  return wrapped.prune(feeds=[graph.get_tensor_by_name(n) for n in inputs.values()],
                       fetches={k: graph.get_tensor_by_name(v) for k, v in outputs.items()})


def save_frozen_saved_model(functions: Mapping[str, object], out_dir: str) -> str:
  """Saves frozen copies of `functions` (signature name → concrete function) as a SavedModel.

  A TF1-style SavedModel (one GraphDef, a signature def per function, no variables): both
  converters read it like a TF2 one, and writing it takes about a second where
  `tf.saved_model.save` of `freeze`'s functions spent ~45 s on a 30k-node graph.

  Returns:
    `out_dir`.
  """
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    raise ValueError(f"save_frozen_saved_model: {out_dir} is not empty")
  info = tf.compat.v1.saved_model.utils.build_tensor_info
  signatures = {}
  frozen = {name: frozen_graph_def(function) for name, function in functions.items()}
  with tf.Graph().as_default() as graph:
    for name, (graph_def, inputs, outputs) in frozen.items():
      prefix = name if len(functions) > 1 else ""
      tf.compat.v1.import_graph_def(graph_def, name=prefix)

      def tensor(tensor_name, prefix=prefix):
        return graph.get_tensor_by_name(f"{prefix}/{tensor_name}" if prefix else tensor_name)
      signatures[name] = tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
          {key: info(tensor(t)) for key, t in inputs.items()},
          {key: info(tensor(t)) for key, t in outputs.items()},
          tf.compat.v1.saved_model.signature_constants.PREDICT_METHOD_NAME)
    with tf.compat.v1.Session(graph=graph) as session:
      builder = tf.compat.v1.saved_model.Builder(out_dir)
      builder.add_meta_graph_and_variables(session, [tf.saved_model.SERVING],
                                           signature_def_map=signatures,
                                           strip_default_attrs=True)
      builder.save()
  return out_dir


def save_frozen_saved_models(graphs: Mapping[str, object], root: str) -> Dict[str, str]:
  """One frozen SavedModel per graph, `root/NAME` with signature NAME; existing ones are kept.

  One graph per SavedModel because both converters load every function of the SavedModel
  they read (converting a small vocoder out of a file that also holds Grad-TTS took
  minutes).

  Args:
    graphs: name → object with `concrete_function()` (an `InferenceGraph`).

  Returns:
    name → SavedModel folder.
  """
  folders = {}
  for name, graph in graphs.items():
    folders[name] = os.path.join(root, name)
    if not os.path.isfile(os.path.join(folders[name], "saved_model.pb")):
      with progress.step(f"{name}: traced and frozen"):
        save_frozen_saved_model({name: graph.concrete_function()}, folders[name])
  return folders


def op_types(saved_model_dir: str, signature: str) -> List[str]:
  """Sorted op types of one signature of a SavedModel (for reports and tests)."""
  loaded = tf.saved_model.load(saved_model_dir)
  graph_def = loaded.signatures[signature].graph.as_graph_def()
  ops = {node.op for node in graph_def.node}
  for function in graph_def.library.function:
    ops.update(node.op for node in function.node_def)
  return sorted(ops)
