"""Vocoding with a trained vocoder run: log-mels → waveforms, WAV files, real-time factor.

  vocoder = load_vocoder("runs/vocoder")          # any run whose task serves as a vocoder
  vocoder.check_mel_config(acoustic_facts)        # the mels must follow its convention
  audio, audio_lengths = vocoder.vocode(mels, mel_lengths)   # one traced tf.function
  write_wavs("out/", ["a", "b"], audio, audio_lengths, vocoder.sample_rate)

`vocode` takes `[batch, frames, n_mels]` padded log-mels (any batch, any frame
count down to 0: one trace) and `[batch]` valid frame counts; it returns `[batch, frames *
hop]` audio, zero past each item's `mel_lengths * hop` samples, and those lengths.
The model is driven through `tfspeech.models.serving.Vocoder`; padding a short item in a
batch changes its audio only within `receptive_field` frames of its end.

A vocoder's declared controls are fixed per `Vocoder` (`load_vocoder(..., controls=)`,
`--control=NAME=VALUE` of tfspeech-vocode). A vocoder that draws noise gets it per item
from that item's seed pair (`item_seeds[b]`, default `(0, b)`), through the stateless
fold-in `VOCODER_NOISE_STREAM` of the seed: an item's audio does not depend on its batch,
and `tfspeech-synthesize` (which passes each text's acoustic seed) and tfspeech-vocode
(seed `(--seed, k)` for the k-th input) give the same audio for the same mel and seed.
"""

import dataclasses
import os
import time
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.data import corpus_info
from tfspeech.inference import serving_runs
from tfspeech.inference import synthesize_lib
from tfspeech.models import serving as serving_lib

# Folded into an item's seed pair for its vocoder noise, so that the acoustic model's noise
# (drawn from the pair itself) and the vocoder's are independent streams.
VOCODER_NOISE_STREAM = 1


def vocoder_noise(vocoder: serving_lib.Vocoder, item_seeds, mel_frames):
  """The noise `vocoder` reads for mels of `mel_frames` frames, per item from its seed pair.

  Args:
    vocoder: a serving `Vocoder`.
    item_seeds: `[batch, 2]` int32 seed pairs (the acoustic model's item seeds).
    mel_frames: int32 scalar, the batch's (padded) mel frames.

  Returns:
    `[batch, noise_length(mel_frames), noise_channels]` standard normal, or None when the
    vocoder draws no noise. Philox fills row-major, so an item's first steps are the same
    for every longer batch.
  """
  if vocoder.noise_channels is None:
    return None
  seeds = tf.map_fn(lambda s: tf.random.experimental.stateless_fold_in(
      s, VOCODER_NOISE_STREAM, alg=synthesize_lib.NOISE_ALGORITHM),
                    tf.cast(item_seeds, tf.int32))
  return synthesize_lib.item_noise(seeds, vocoder.noise_length(mel_frames),
                                   vocoder.noise_channels)


def default_item_seeds(batch):
  """`[batch, 2]` int32 seed pairs `(0, b)`."""
  return tf.stack([tf.zeros([batch], tf.int32), tf.range(batch, dtype=tf.int32)], axis=1)


def make_vocode_fn(vocoder: serving_lib.Vocoder,
                   controls: Optional[Mapping[str, object]] = None):
  """The traced `vocode(mels, mel_lengths, item_seeds=None) -> (audio, audio_lengths)`.

  Args:
    vocoder: a serving vocoder.
    controls: its control values (defaults for the others); static ones are fixed in the
      trace, dynamic ones are fed as scalars.

  Returns:
    A function `mels [batch, frames, n_mels] float32, mel_lengths [batch] int32,
    item_seeds [batch, 2] int32 (default (0, b))` → `audio [batch, frames * hop] float32`
    (zero past each item's length), `audio_lengths [batch] int32`; one `tf.function`
    with `None` batch and length dims underneath (`.traced`).
  """
  values = serving_lib.resolve_controls(vocoder.controls, controls)
  static, dynamic = serving_lib.split_controls(vocoder.controls, values)
  specs = [tf.TensorSpec([], c.tf_dtype, name=c.name) for c in vocoder.controls
           if not c.static]

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, vocoder.n_mels], tf.float32, name="mels"),
      tf.TensorSpec([None], tf.int32, name="mel_lengths"),
      tf.TensorSpec([None, 2], tf.int32, name="item_seeds")] + specs)
  def traced(mels, mel_lengths, item_seeds, *dynamic_values):
    named = dict(static, **{spec.name: v for spec, v in zip(specs, dynamic_values)})
    noise = vocoder_noise(vocoder, item_seeds, tf.shape(mels)[1])
    out = serving_lib.call_vocoder(vocoder, mels, mel_lengths, noise, **named)
    return out["audio"], out["audio_lengths"]

  feeds = [tf.constant(dynamic[spec.name], spec.dtype) for spec in specs]

  def vocode(mels, mel_lengths, item_seeds=None):
    mels = tf.convert_to_tensor(mels, tf.float32)
    if item_seeds is None:
      item_seeds = default_item_seeds(tf.shape(mels)[0])
    return traced(mels, tf.convert_to_tensor(mel_lengths, tf.int32),
                  tf.convert_to_tensor(item_seeds, tf.int32), *feeds)
  vocode.traced = traced
  return vocode


@dataclasses.dataclass
class Vocoder:
  """A serving vocoder with fixed control values, its traced function, where it came from.

  Attributes:
    serving: the `tfspeech.models.serving.Vocoder` (its `in_process()` form).
    fn: its traced function, see `make_vocode_fn`.
    workdir: the run it came from ("" when built in memory).
    checkpoint: the checkpoint restored, or None.
    step: the training step of that checkpoint.
    controls: every control's value.
  """
  serving: serving_lib.Vocoder
  fn: object
  workdir: str = ""
  checkpoint: Optional[str] = None
  step: int = 0
  controls: dict = dataclasses.field(default_factory=dict)

  @classmethod
  def for_serving(cls, vocoder: serving_lib.Vocoder,
                  controls: Optional[Mapping[str, object]] = None,
                  control_sources: Optional[Mapping[str, str]] = None, **kwargs) -> "Vocoder":
    """Wraps a serving vocoder (e.g. a task's `serving(modules, data_info)`).

    Raises:
      ValueError: an unknown control or a bad value (`control_sources` names the flags).
    """
    values = serving_lib.resolve_controls(vocoder.controls, controls, control_sources)
    vocoder = vocoder.in_process()
    return cls(vocoder, make_vocode_fn(vocoder, values), controls=values, **kwargs)

  def vocode(self, mels, mel_lengths, item_seeds=None):
    """(audio `[batch, frames * hop]`, audio_lengths `[batch]`); see `make_vocode_fn`."""
    return self.fn(mels, mel_lengths, item_seeds)

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

  def facts(self) -> Optional[corpus_info.CorpusInfo]:
    """The mel convention this vocoder was trained on, typed (None when unknown)."""
    return serving_facts(self.serving, f"vocoder {self.workdir or '(in memory)'}")

  def check_mel_config(self, mels, source: str = "the mels"):
    """Raises ValueError when `mels` do not follow the convention the vocoder was trained on.

    Args:
      mels: a `CorpusInfo` (e.g. a prepared corpus's dataset.json, an acoustic run's facts:
        its sample rate and `MelConfig` are compared) or a `tfspeech.audio.MelConfig`.
      source: names the mels in the message.
    """
    ours = self.facts()
    if ours is None:
      return
    if isinstance(mels, audio_lib.MelConfig):
      mels = corpus_info.CorpusInfo(mel_config=mels, source=source)
    problems = mels.differences(ours, corpus_info.MEL_CONVENTION)
    if problems:
      raise ValueError(f"{source} follow another mel convention than the vocoder "
                       f"{self.workdir or '(in memory)'} was trained on: "
                       f"{'; '.join(problems)}. Vocode mels computed like its training data, "
                       "or train a vocoder on these")


def serving_facts(vocoder: serving_lib.Vocoder,
                  source: str = "the vocoder") -> Optional[corpus_info.CorpusInfo]:
  """A serving vocoder's mel convention as `CorpusInfo` facts (None when it records none)."""
  if vocoder.mel_config is None:
    return None
  return corpus_info.CorpusInfo(sample_rate=int(vocoder.sample_rate),
                                mel_config=vocoder.mel_config, source=source)


def vocoder_models() -> list:
  """Registered model names whose task serves as a vocoder (imports their packages)."""
  return serving_runs.models_with_role(serving_lib.VOCODER)


def load_vocoder(workdir: str, checkpoint: Optional[str] = None,
                 controls: Optional[Mapping[str, object]] = None,
                 control_sources: Optional[Mapping[str, str]] = None,
                 precision: str = "float32") -> Vocoder:
  """Restores a trained vocoder run for inference (its task's `serving()` object).

  Args:
    workdir: a training run of a task whose `serving_role` is "vocoder".
    checkpoint: a checkpoint prefix, "best", or None for the newest.
    controls: the vocoder's control values (defaults for the others).
    control_sources: control name → the flag that gave it, for messages.
    precision: compute precision, "float32" or "bfloat16" (where the model supports it;
      `tfspeech.training.precision`); the audio is float32 either way.

  Raises:
    FileNotFoundError: not a run directory, or no checkpoint.
    ValueError: the run is not a vocoder, a bad control, or a precision it does not run at.
  """
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  run = training.load_run(workdir, checkpoint, tasks=registry.get, precision=precision)
  vocoder = serving_runs.serving_of_run(run, serving_lib.VOCODER)
  return Vocoder.for_serving(vocoder, controls, control_sources, workdir=workdir,
                             checkpoint=run.checkpoint, step=run.step)


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
                 batch_size: int = 8, seed: int = 0) -> VocodeResult:
  """Vocodes `(name, [frames, n_mels] mel)` items in batches and writes `out_dir/NAME.wav`.

  Items are batched by length (less padding); item k (in the given order) draws its noise
  (vocoders that draw noise) from the seed pair `(seed, k)`, so batching changes no output.
  A batch the vocoder fails on is retried item by item, so only an item that fails on its
  own (or whose file cannot be written) is lost; it is reported in
  `VocodeResult.failures`, the others are written.
  """
  order = sorted(range(len(items)), key=lambda k: int(items[k][1].shape[0]))
  paths, failures, samples = [], [], 0
  start = time.perf_counter()

  def run(indices):
    mels, lengths = pad_mels([items[k][1] for k in indices], vocoder.mel_pad_value)
    return vocoder.vocode(mels, lengths, tf.constant([[seed, k] for k in indices], tf.int32))

  for first in range(0, len(order), batch_size):
    indices = order[first:first + batch_size]
    batch = [items[k] for k in indices]
    groups = [batch]
    try:
      outputs = [run(indices)]
    except (tf.errors.OpError, ValueError):
      groups, outputs = [], []
      for k, item in zip(indices, batch):
        try:
          outputs.append(run([k]))
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
