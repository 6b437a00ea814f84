"""TensorBoard summaries: scalar/image/audio writers and pure-TF matrix → image helpers.

Layout: WORKDIR/train/ (training scalars) and WORKDIR/eval/ (validation
scalars, images, audio), so TensorBoard overlays `losses/*` of both.
"""

import os

import tensorflow as tf

# Viridis sampled at 0, 1/8, …, 1 (matplotlib's perceptually uniform map);
# linear interpolation between these anchors stays within ~0.02 of the full map.
_VIRIDIS = (
    (0.267004, 0.004874, 0.329415),
    (0.282623, 0.140926, 0.457517),
    (0.253935, 0.265254, 0.529983),
    (0.206756, 0.371758, 0.553117),
    (0.163625, 0.471133, 0.558148),
    (0.127568, 0.566949, 0.550556),
    (0.134692, 0.658636, 0.517649),
    (0.266941, 0.748751, 0.440573),
    (0.993248, 0.906157, 0.143936),
)
_GRAY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
COLORMAPS = {"viridis": _VIRIDIS, "gray": _GRAY}


def apply_colormap(values, colormap: str = "viridis"):
  """Maps values in [0, 1] to RGB.

  Args:
    values: float tensor of any shape `[...]`; clipped to [0, 1].
    colormap: "viridis" or "gray".

  Returns:
    float32 `[..., 3]` in [0, 1].
  """
  if colormap not in COLORMAPS:
    raise ValueError(f"unknown colormap {colormap!r}; choose from {sorted(COLORMAPS)}")
  lut = tf.constant(COLORMAPS[colormap], tf.float32)
  n = len(COLORMAPS[colormap])
  position = tf.clip_by_value(tf.cast(values, tf.float32), 0.0, 1.0) * (n - 1)
  low = tf.clip_by_value(tf.floor(position), 0.0, n - 2.0)
  frac = (position - low)[..., None]
  low = tf.cast(low, tf.int32)
  return tf.gather(lut, low) * (1.0 - frac) + tf.gather(lut, low + 1) * frac


def matrix_image(matrix, *, transpose: bool = False, flip_vertical: bool = True,
                 colormap: str = "viridis"):
  """Renders 2-D matrices as RGB images for `tf.summary.image`.

  Each matrix is min-max normalised on its own finite values (non-finite
  entries render as the minimum).

  Args:
    matrix: `[height, width]` or `[k, height, width]` float tensor.
    transpose: swap the two matrix axes first.
    flip_vertical: put row 0 at the bottom (origin="lower").
    colormap: "viridis" or "gray".

  Returns:
    float32 `[k, height', width', 3]` in [0, 1].
  """
  matrix = tf.convert_to_tensor(matrix, tf.float32)
  if matrix.shape.rank == 2:
    matrix = matrix[None]
  if matrix.shape.rank != 3:
    raise ValueError(f"matrix_image expects [h, w] or [k, h, w], got shape {matrix.shape}")
  if transpose:
    matrix = tf.transpose(matrix, [0, 2, 1])
  finite = tf.math.is_finite(matrix)
  big = tf.constant(3.0e38, tf.float32)
  low = tf.reduce_min(tf.where(finite, matrix, big), axis=[1, 2], keepdims=True)
  high = tf.reduce_max(tf.where(finite, matrix, -big), axis=[1, 2], keepdims=True)
  low = tf.where(low > high, tf.zeros_like(low), low)  # All entries non-finite.
  high = tf.maximum(high, low)
  scaled = (tf.where(finite, matrix, low) - low) / tf.maximum(high - low, 1e-12)
  if flip_vertical:
    scaled = tf.reverse(scaled, axis=[1])
  return apply_colormap(scaled, colormap)


def mel_image(mel, colormap: str = "viridis"):
  """`[frames, mels]` (or `[k, frames, mels]`) → `[k, mels, frames, 3]`, low bins at the bottom."""
  return matrix_image(mel, transpose=True, flip_vertical=True, colormap=colormap)


def alignment_image(alignment, colormap: str = "viridis"):
  """`[T_text, T_mel]` (or batched) → `[k, T_text, T_mel, 3]`: text on y (first token at the bottom), mel frames on x."""
  return matrix_image(alignment, transpose=False, flip_vertical=True, colormap=colormap)


class SummaryWriters:
  """TensorBoard writers for one workdir: `train` and `eval` subdirectories.

  `enabled=False` (a non-chief worker) writes nothing and creates no directory.
  """

  def __init__(self, workdir: str, enabled: bool = True):
    if enabled:
      self.train = tf.summary.create_file_writer(os.path.join(workdir, "train"))
      self.eval = tf.summary.create_file_writer(os.path.join(workdir, "eval"))
    else:
      self.train = self.eval = tf.summary.create_noop_writer()

  def scalars(self, step: int, values: dict, split: str = "train"):
    """Writes `tag → float` at `step`."""
    writer = self.train if split == "train" else self.eval
    with writer.as_default(step=step):
      for tag, value in values.items():
        tf.summary.scalar(tag, value)

  def media(self, step: int, outputs: dict, sample_rate: int, max_outputs: int = 3):
    """Writes a task's `summaries()` dict: "images/<tag>" and "audio/<tag>" entries."""
    with self.eval.as_default(step=step):
      for tag, value in outputs.items():
        if tag.startswith("images/"):
          tf.summary.image(tag, value, max_outputs=max_outputs)
        elif tag.startswith("audio/"):
          audio = tf.convert_to_tensor(value, tf.float32)
          if audio.shape.rank == 2:
            audio = audio[..., None]  # [k, samples, channels]
          tf.summary.audio(tag, tf.clip_by_value(audio, -1.0, 1.0), sample_rate,
                           max_outputs=max_outputs)
        else:
          raise ValueError(f"summary tag {tag!r} must start with 'images/' or 'audio/'")

  def flush(self):
    self.train.flush()
    self.eval.flush()

  def close(self):
    self.train.close()
    self.eval.close()
