"""Vocoding with a trained vocoder run: log-mels → waveforms, WAV files, real-time factor.

  vocoder = load_vocoder("runs/vocoder")          # any run whose task serves as a vocoder
  vocoder.check_mel_config(acoustic_mel_config)   # the mels must follow its convention
  audio, audio_lengths = vocoder.vocode(mels, mel_lengths)   # one traced tf.function
  write_wavs("out/", ["a", "b"], audio, audio_lengths, vocoder.sample_rate)

`vocode` takes `[batch, frames, n_mels]` padded log-mels (any batch, any frame
count down to 0: one trace) and `[batch]` valid frame counts; it returns `[batch, frames *
hop]` audio, zero past each item's `mel_lengths * hop` samples, and those lengths.
The model is driven through `tfspeech.models.serving.Vocoder`; padding a short item in a
batch changes its audio only within `receptive_field` frames of its end.
"""

import dataclasses
import os
import time
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.inference import serving_runs
from tfspeech.models import serving as serving_lib


def make_vocode_fn(vocoder: serving_lib.Vocoder):
  """The traced `vocode(mels, mel_lengths) -> (audio, audio_lengths)` of a serving vocoder.

  Returns:
    A `tf.function` with signature `mels [None, None, n_mels] float32`,
    `mel_lengths [None] int32` → `audio [batch, frames * hop] float32` (zero past
    each item's length), `audio_lengths [batch] int32`.
  """
  @tf.function(input_signature=[
      tf.TensorSpec([None, None, vocoder.n_mels], tf.float32, name="mels"),
      tf.TensorSpec([None], tf.int32, name="mel_lengths")])
  def vocode(mels, mel_lengths):
    out = vocoder.vocode(mels, mel_lengths)
    return out["audio"], out["audio_lengths"]
  return vocode


@dataclasses.dataclass
class Vocoder:
  """A serving vocoder, its traced function and where it came from.

  Attributes:
    serving: the `tfspeech.models.serving.Vocoder`.
    vocode: its traced function, see `make_vocode_fn`.
    workdir: the run it came from ("" when built in memory).
    checkpoint: the checkpoint restored, or None.
    step: the training step of that checkpoint.
  """
  serving: serving_lib.Vocoder
  vocode: object
  workdir: str = ""
  checkpoint: Optional[str] = None
  step: int = 0

  @classmethod
  def for_serving(cls, vocoder: serving_lib.Vocoder, **kwargs) -> "Vocoder":
    """Wraps a serving vocoder (e.g. a task's `serving(modules, data_info)`)."""
    return cls(vocoder, make_vocode_fn(vocoder), **kwargs)

  @property
  def sample_rate(self) -> int:
    return int(self.serving.sample_rate)

  @property
  def mel_config(self) -> Optional[audio_lib.MelConfig]:
    return self.serving.mel_config

  @property
  def hop_length(self) -> int:
    return int(self.serving.hop_length)

  @property
  def num_mels(self) -> int:
    return int(self.serving.n_mels)

  @property
  def receptive_field(self) -> int:
    """Frames a change of one mel frame can reach (see the module docstring)."""
    return int(self.serving.receptive_field)

  @property
  def mel_pad_value(self) -> float:
    """The log-mel of silence in this vocoder's convention (pad mels with it)."""
    return float(self.serving.mel_pad_value)

  def check_mel_config(self, mel_config: audio_lib.MelConfig, source: str = "the mels"):
    """Raises ValueError when `mel_config` is not the convention the vocoder was trained on."""
    if self.mel_config is None or mel_config == self.mel_config:
      return
    ours, theirs = dataclasses.asdict(self.mel_config), dataclasses.asdict(mel_config)
    differences = ", ".join(f"{k}: {theirs[k]!r} (vocoder: {ours[k]!r})" for k in ours
                            if ours[k] != theirs[k])
    raise ValueError(f"{source} follow another mel convention than the vocoder "
                     f"{self.workdir or '(in memory)'} was trained on: {differences}. Vocode "
                     "mels computed like its training data, or train a vocoder on these")


def vocoder_models() -> list:
  """Registered model names whose task serves as a vocoder (imports their packages)."""
  return serving_runs.models_with_role(serving_lib.VOCODER)


def load_vocoder(workdir: str, checkpoint: Optional[str] = None) -> Vocoder:
  """Restores a trained vocoder run for inference (its task's `serving()` object).

  Args:
    workdir: a training run of a task whose `serving_role` is "vocoder".
    checkpoint: a checkpoint prefix, "best", or None for the newest.

  Raises:
    FileNotFoundError: not a run directory, or no checkpoint.
    ValueError: the run is not a vocoder.
  """
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  run = training.load_run(workdir, checkpoint)
  vocoder = serving_runs.serving_of_run(run, serving_lib.VOCODER)
  return Vocoder.for_serving(vocoder, workdir=workdir, checkpoint=run.checkpoint, step=run.step)


@dataclasses.dataclass(frozen=True)
class VocodeFailure:
  """An input that could not be read, vocoded or written; `error` names the file."""
  name: str
  error: str


def read_npy_mels(folder: str, num_mels: int):
  """Reads every `.npy` log-mel of `folder`; a file that cannot be used fails alone.

  Args:
    folder: a folder of `[frames, num_mels]` float `.npy` files.
    num_mels: mel bins the vocoder expects.

  Returns:
    `(items, failures)`: `(name, [frames, num_mels] float32 array)` per good file and a
    `VocodeFailure` per bad one (truncated or corrupt file, wrong shape, NaN/Inf), both
    sorted by file name.

  Raises:
    ValueError: the folder has no `.npy` file.
  """
  names = sorted(n for n in os.listdir(folder) if n.endswith(".npy"))
  if not names:
    raise ValueError(f"--mels={folder}: no .npy files and no dataset.json; pass a folder of "
                     f"[frames, {num_mels}] .npy log-mels or a prepared corpus")
  items, failures = [], []
  for name in names:
    path = os.path.join(folder, name)
    stem = name[:-len(".npy")]
    try:
      mel = np.load(path, allow_pickle=False)  # graph-ok: offline tool reading files.
    except (OSError, ValueError, EOFError) as e:
      # A truncated file: "cannot reshape array"; garbage: "Failed to interpret file".
      failures.append(VocodeFailure(stem, f"{path}: not a readable .npy file "
                                          f"({type(e).__name__}: {str(e).strip()[:200]})"))
      continue
    if mel.ndim != 2 or mel.shape[1] != num_mels or mel.shape[0] == 0:
      hint = " (it looks channels-first: save mel.T)" if (
          mel.ndim == 2 and mel.shape[0] == num_mels) else ""
      failures.append(VocodeFailure(
          stem, f"{path}: shape {mel.shape}, expected [frames, {num_mels}]{hint}"))
      continue
    if not np.issubdtype(mel.dtype, np.floating) and not np.issubdtype(mel.dtype, np.integer):
      failures.append(VocodeFailure(stem, f"{path}: dtype {mel.dtype}, expected float32"))
      continue
    if not np.isfinite(mel).all():  # graph-ok: offline check of input files.
      failures.append(VocodeFailure(stem, f"{path}: contains NaN or Inf"))
      continue
    items.append((stem, mel.astype(np.float32)))
  return items, failures


@dataclasses.dataclass(frozen=True)
class VocodeResult:
  """What `vocode_items` wrote: paths, failures, seconds of audio, wall seconds."""
  paths: list
  failures: list
  audio_seconds: float
  wall_seconds: float


def vocode_items(vocoder: Vocoder, items: Sequence, out_dir: str,
                 batch_size: int = 8) -> VocodeResult:
  """Vocodes `(name, [frames, n_mels] mel)` items in batches and writes `out_dir/NAME.wav`.

  Items are batched by length (less padding). A batch the vocoder fails on is retried
  item by item, so only an item that fails on its own (or whose file cannot be written)
  is lost; it is reported in `VocodeResult.failures`, the others are written.
  """
  items = sorted(items, key=lambda item: int(item[1].shape[0]))
  paths, failures, samples = [], [], 0
  start = time.perf_counter()
  for first in range(0, len(items), batch_size):
    batch = items[first:first + batch_size]
    groups = [batch]
    try:
      outputs = [vocoder.vocode(*pad_mels([mel for _, mel in batch], vocoder.mel_pad_value))]
    except (tf.errors.OpError, ValueError):
      groups, outputs = [], []
      for item in batch:
        try:
          outputs.append(vocoder.vocode(*pad_mels([item[1]], vocoder.mel_pad_value)))
          groups.append([item])
        except (tf.errors.OpError, ValueError) as e:
          failures.append(VocodeFailure(item[0], f"{item[0]}: the vocoder failed: "
                                                 f"{_one_line(e)}"))
    for group, (audio, audio_lengths) in zip(groups, outputs):
      for (name, _), item_audio, length in zip(group, tf.unstack(audio),
                                               tf.unstack(audio_lengths)):
        path = os.path.join(out_dir, f"{name}.wav")
        try:
          tf.io.gfile.makedirs(out_dir)
          audio_lib.write_wav(path, item_audio[:length], vocoder.sample_rate)
        except (tf.errors.OpError, OSError) as e:
          failures.append(VocodeFailure(name, f"{path}: cannot write: {_one_line(e)}"))
          continue
        paths.append(path)
        samples += int(length)
  return VocodeResult(paths, failures, samples / vocoder.sample_rate,
                      time.perf_counter() - start)


def _one_line(error) -> str:
  text = getattr(error, "message", None) or str(error)
  lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
  return f"{type(error).__name__}: {lines[0] if lines else 'no details'}"


def pad_mels(mels: Sequence, pad_value: float):
  """Stacks `[frames_i, n_mels]` arrays into `([batch, max_frames, n_mels], [batch])` tensors."""
  lengths = tf.constant([int(m.shape[0]) for m in mels], tf.int32)
  longest = int(tf.reduce_max(lengths))
  padded = [tf.pad(tf.convert_to_tensor(m, tf.float32), [[0, longest - int(m.shape[0])], [0, 0]],
                   constant_values=pad_value) for m in mels]
  return tf.stack(padded), lengths


def write_wavs(out_dir: str, names: Sequence[str], audio, audio_lengths,
               sample_rate: int) -> list:
  """Writes each item of a vocoded batch to `out_dir/<name>.wav`, cut to its length.

  Returns:
    The written paths.
  """
  tf.io.gfile.makedirs(out_dir)
  paths = []
  for name, item, length in zip(names, tf.unstack(audio), tf.unstack(audio_lengths)):
    path = os.path.join(out_dir, f"{name}.wav")
    audio_lib.write_wav(path, item[:length], sample_rate)
    paths.append(path)
  return paths


def real_time_factor(vocoder: Vocoder, seconds: float = 10.0, batch_size: int = 1,
                     repeats: int = 3, seed: int = 0) -> dict:
  """Times `vocoder.vocode` on random mels of `seconds` of audio per item.

  The first call (tracing, graph optimisation) is excluded; the fastest of
  `repeats` timed calls is kept.

  Returns:
    dict: `rtf` (compute seconds per second of generated audio, summed over the
    batch; < 1 is faster than real time), `seconds_per_call`, `audio_seconds`
    (per call), `batch_size`.
  """
  frames = max(int(round(seconds * vocoder.sample_rate / vocoder.hop_length)), 1)
  mels = tf.random.stateless_normal([batch_size, frames, vocoder.num_mels], [seed, 0],
                                    mean=-5.0, stddev=2.0)
  lengths = tf.fill([batch_size], frames)
  audio, _ = vocoder.vocode(mels, lengths)
  audio.numpy()  # graph-ok: wait for the warm-up call before timing.
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    audio, _ = vocoder.vocode(mels, lengths)
    audio.numpy()  # graph-ok: synchronise so the timing covers the computation.
    best = min(best, time.perf_counter() - start)
  audio_seconds = batch_size * frames * vocoder.hop_length / vocoder.sample_rate
  return {"rtf": best / audio_seconds, "seconds_per_call": best, "audio_seconds": audio_seconds,
          "batch_size": batch_size}
