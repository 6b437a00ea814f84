"""Width-3 "same" 1-D convolutions by Winograd's minimal filtering, F(4, 3).

A direct width-3 convolution costs 3 multiply-adds per output step and channel pair; F(4, 3)
(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015) computes four
output steps from six input steps with six products, 1.5 per step: the convolution becomes
six matmuls `[tiles, in] x [in, out]` (one batched matmul) between two small linear maps
over the tile (the input and output transforms) and one over the kernel's taps. In TF ops
the transforms are separate memory passes, so it pays where the channels are wide and the
matmuls dominate: FastPitch's feed-forward convolutions (384 <-> 1536 channels) ran 1.42x
faster than oneDNN's direct convolutions over 16 x 300 steps (2-core AMD EPYC, float32) and
1.35x over 412 with the kernels transformed beforehand, 0.95x over 103 (0.61x transforming
them at every call: `MIN_CHANNEL_PRODUCT` below).

The work stays in a "phase" layout between convolutions: `[4, batch, tiles, channels]`
with step `t = 4 * tile + phase` at `[phase, :, tile]`. A convolution's six input rows
per tile are then the four phases and the neighbouring tiles' last and first phases
(shifted by one tile), with no gather of overlapping tiles, and its output is already in
the layout the next one reads; element-wise work between them (bias, activation, mask)
runs in it as well. `to_phases` and `from_phases` convert at the ends of a chain. A padded
batch can instead be packed into one such sequence, its items one zero step apart
(`packing`, `pack`, `unpack`), so that no multiply-add is spent on padding.

Float32 only: the transforms' coefficients (up to 8) cost a few bits, ~5e-6 of the output's
peak in float32 (within the references' parity bounds) but too much in bfloat16.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

TILE = 4  # output steps per tile
_POINTS = TILE + 2  # input steps per tile, and products per tile and channel pair

# Input transform B^T, kernel transform G and output transform A^T for the points
# 0, 1, -1, 2, -2 and infinity; Y = A^T [(G g) * (B^T d)] is the correlation of d with g,
# as TF's convolutions compute it.
_INPUT = np.array([[4, 0, -5, 0, 1, 0],
                   [0, -4, -4, 1, 1, 0],
                   [0, 4, -4, -1, 1, 0],
                   [0, -2, -1, 2, 1, 0],
                   [0, 2, -1, -2, 1, 0],
                   [0, 4, 0, -5, 0, 1]], np.float32)
_KERNEL = np.array([[1 / 4, 0, 0],
                    [-1 / 6, -1 / 6, -1 / 6],
                    [-1 / 6, 1 / 6, -1 / 6],
                    [1 / 24, 1 / 12, 1 / 6],
                    [1 / 24, -1 / 12, 1 / 6],
                    [0, 0, 1]], np.float32)
_OUTPUT = np.array([[1, 1, 1, 1, 1, 0],
                    [0, 1, -1, 2, -2, 0],
                    [0, 1, 1, 4, 4, 0],
                    [0, 1, -1, 8, -8, 1]], np.float32)


# Where F(4, 3) pays in TF ops (2-core AMD EPYC, float32; one conv k3 C -> 4C, ReLU, mask,
# conv k3 4C -> C, the kernels transformed at every call): at C = 384, 1.40x oneDNN's direct
# convolutions over 16 x 300 steps, 1.05x over 412, 1.00x over 320, 0.78x over 160 and 0.61x
# over 103 (the six transformed kernels, 6 x in x out values, are written at every call, so
# F(4, 3) is for long inputs: frames rather than tokens); at C = 192, 1.14x over 16 x 300
# steps; at C = 128, 1.05x there and 0.87x over 600 (the transforms' memory passes weigh more
# next to narrower matmuls).
MIN_CHANNEL_PRODUCT = 384 * 384  # in x out


def supported(kernel_width: int, dtype) -> bool:
  """Whether `conv1d_phases` computes this convolution (width 3, float32)."""
  return kernel_width == 3 and tf.as_dtype(dtype) == tf.float32


def wide(channels_in: int, channels_out: int) -> bool:
  """Whether a convolution has the channels (`MIN_CHANNEL_PRODUCT`) for F(4, 3), or packing
  its batch, to pay over long inputs."""
  return channels_in * channels_out >= MIN_CHANNEL_PRODUCT


def pays(kernel_width: int, channels_in: int, channels_out: int, dtype) -> bool:
  """Whether this convolution is supported and wide enough for F(4, 3) to pay over long
  inputs (hundreds of steps in the batch)."""
  return supported(kernel_width, dtype) and wide(channels_in, channels_out)


def tiles_for(length):
  """Tiles covering `length` steps: ceil(length / 4)."""
  return (length + TILE - 1) // TILE


def to_phases(x):
  """`[batch, time, channels]` -> `[4, batch, tiles, channels]`, zero past `time`."""
  batch, length = tf.shape(x)[0], tf.shape(x)[1]
  tiles = tiles_for(length)
  x = tf.pad(x, [[0, 0], [0, tiles * TILE - length], [0, 0]])
  return tf.transpose(tf.reshape(x, [batch, tiles, TILE, x.shape[-1]]), [2, 0, 1, 3])


def from_phases(phases, length):
  """`[4, batch, tiles, channels]` -> `[batch, length, channels]` (length <= 4 * tiles)."""
  batch, tiles = tf.shape(phases)[1], tf.shape(phases)[2]
  steps = tf.reshape(tf.transpose(phases, [1, 2, 0, 3]), [batch, tiles * TILE, phases.shape[-1]])
  return tf.slice(steps, [0, 0, 0], [-1, length, -1])


def transform_kernel(kernel):
  """A Conv1D kernel `[3, in, out]` -> the six transformed kernels `[6, in, out]`."""
  _, channels_in, channels_out = kernel.shape
  flat = tf.reshape(kernel, [3, -1])
  return tf.reshape(tf.linalg.matmul(tf.constant(_KERNEL, kernel.dtype), flat),
                    [_POINTS, channels_in, channels_out])


def conv1d_phases(phases, transformed_kernel, bias=None):
  """The "same" width-3 convolution of a phase-layout signal.

  Args:
    phases: `[4, batch, tiles, in]`, zero past the signal's end (as `to_phases` makes it).
    transformed_kernel: `[6, in, out]` from `transform_kernel`.
    bias: optional `[out]`.

  Returns:
    `[4, batch, tiles, out]`; past the signal's end it holds the convolution of the zero
    padding, which the caller masks as it would in the step layout.
  """
  channels_in = phases.shape[-1]
  channels_out = transformed_kernel.shape[-1]
  batch, tiles = tf.shape(phases)[1], tf.shape(phases)[2]
  # Slices by tf.slice and tf.split, whose gradients are pads and concats: a strided slice's
  # gradient (StridedSliceGrad) took 14 ms of an ljspeech batch-1 train step.
  first, _, _, last = tf.split(phases, TILE, axis=0)  # [1, batch, tiles, in] each
  edge = tf.zeros_like(tf.slice(first, [0, 0, 0, 0], [-1, -1, 1, -1]))
  shorter = [1, -1, tiles - 1, -1]
  before = tf.concat([edge, tf.slice(last, [0, 0, 0, 0], shorter)], axis=2)  # step 4 tile - 1
  after = tf.concat([tf.slice(first, [0, 0, 1, 0], shorter), edge], axis=2)  # step 4 tile + 4
  rows = tf.concat([before, phases, after], axis=0)
  transformed = tf.linalg.matmul(tf.constant(_INPUT, phases.dtype),
                                 tf.reshape(rows, [_POINTS, -1]))
  products = tf.linalg.matmul(tf.reshape(transformed, [_POINTS, -1, channels_in]),
                              transformed_kernel)  # [6, batch * tiles, out]
  out = tf.linalg.matmul(tf.constant(_OUTPUT, phases.dtype),
                         tf.reshape(products, [_POINTS, -1]))
  out = tf.reshape(out, [TILE, batch, tiles, channels_out])
  return out if bias is None else out + bias


def conv1d(x, kernel, bias=None):
  """`tf.nn.conv1d(x, kernel, 1, "SAME") (+ bias)` for a width-3 kernel, by F(4, 3).

  Args:
    x: `[batch, time, in]` float32.
    kernel: `[3, in, out]`.
    bias: optional `[out]`.

  Returns:
    `[batch, time, out]`.
  """
  return from_phases(conv1d_phases(to_phases(x), transform_kernel(kernel), bias),
                     tf.shape(x)[1])


class Packing(NamedTuple):
  """Where the real steps of a padded batch sit in one packed sequence (in F(4, 3)'s phase
  layout, or in the step layout for direct convolutions: `packing`'s `tile`).

  The items follow each other with one zero step between neighbours, which is all a width-3
  convolution needs to keep them apart, so a batch's padding costs no multiply-adds (a batch
  of 16 sentences is ~27% padding at its longest item's length).

  Attributes:
    rows: `[tile, 1, tiles]` int32: the row of the flattened `[batch * time]` input read by
      each packed step (0 at the gaps and past the end, which `mask` zeroes).
    mask: `[tile, 1, tiles, 1]` float32: 1 at real steps.
    steps: `[batch, time]` int32: the row of the flattened `[tile * tiles]` packed layout
      that each padded step reads (a neighbouring row past its item's length).
    step_mask: `[batch, time, 1]` float32: 1 at real steps.
  """
  rows: tf.Tensor
  mask: tf.Tensor
  steps: tf.Tensor
  step_mask: tf.Tensor


def packing(lengths, time, tile=TILE) -> Packing:
  """The `Packing` of a batch whose items are `lengths` steps long, padded to `time`.

  Args:
    lengths: `[batch]` int32, each at most `time`; batch at least 1.
    time: the padded length (a scalar int32 tensor).
    tile: 4 (`TILE`) for the phase layout `[4, 1, tiles, channels]` of `conv1d_phases`; 1 for
      the step layout `[1, 1, steps, channels]` (direct convolutions, after `[0]`).
  """
  lengths = tf.cast(lengths, tf.int32)
  ends = tf.cumsum(lengths + 1)  # one past each item's gap
  starts = ends - lengths - 1
  total = tf.maximum(tf.reduce_sum(lengths + 1) - 1, 1)
  tiles = (total + tile - 1) // tile
  position = tf.range(tiles * tile)
  # Steps past the last item fall to a sentinel item of length 0.
  item = tf.searchsorted(ends, position, side="right")
  offset = position - tf.gather(tf.concat([starts, [0]], 0), item)
  real = (offset >= 0) & (offset < tf.gather(tf.concat([lengths, [0]], 0), item))
  rows = tf.where(real, item * time + offset, 0)

  def phase_major(steps):  # [tile * tiles] -> [tile, tiles]: step tile * t + p at [p, t]
    return tf.transpose(tf.reshape(steps, [tiles, tile]))

  steps = tf.minimum(tf.expand_dims(starts, 1) + tf.range(time), tiles * tile - 1)
  steps = (steps % tile) * tiles + steps // tile
  return Packing(rows=tf.expand_dims(phase_major(rows), 1),
                 mask=tf.reshape(phase_major(tf.cast(real, tf.float32)), [tile, 1, tiles, 1]),
                 steps=steps,
                 step_mask=tf.expand_dims(tf.sequence_mask(lengths, time, tf.float32), 2))


def pack(x, layout):
  """`[batch, time, channels]` -> the packed layout `[tile, 1, tiles, channels]`, zero at the
  gaps and past the end (`conv1d_phases`' input for tile 4). Its gradient is `unpack`'s,
  masked."""
  channels = x.shape[-1]

  @tf.custom_gradient
  def _pack(x):
    def grad(upstream):
      return _unpack_rows(upstream, layout, channels) * tf.cast(layout.step_mask, x.dtype)
    return _pack_rows(x, layout, channels), grad
  return _pack(x)


def unpack(phases, layout):
  """The packed layout `[tile, 1, tiles, channels]` -> `[batch, time, channels]`.

  Steps past an item's length hold a neighbouring step's values, and gradients arriving
  there are dropped: mask the result, as the step layout's users do anyway.
  """
  channels = phases.shape[-1]

  @tf.custom_gradient
  def _unpack(phases):
    def grad(upstream):
      return _pack_rows(upstream, layout, channels)
    return _unpack_rows(phases, layout, channels), grad
  return _unpack(phases)


def _pack_rows(x, layout, channels):
  return (tf.gather(tf.reshape(x, [-1, channels]), layout.rows)
          * tf.cast(layout.mask, x.dtype))


def _unpack_rows(phases, layout, channels):
  return tf.gather(tf.reshape(phases, [-1, channels]), layout.steps)


def preferred() -> bool:
  """Whether width-3 feed-forward convolutions should take this path here: on CPUs, where
  it was measured (oneDNN's direct convolutions); not where a GPU is visible, whose
  convolution libraries choose their own algorithms (not measured here)."""
  return not tf.config.list_logical_devices("GPU")
