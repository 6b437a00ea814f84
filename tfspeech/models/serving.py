"""The two serving interfaces every model implements: acoustic models and vocoders.

`tfspeech.inference`, `export/`, the binaries and the benchmarks drive models only through
these interfaces and the registry; they name no model. A task declares its role and builds
its serving object:

  @registry.register("my_tts")
  class MyTask(registry.Task):
    serving_role = "acoustic"                # or "vocoder"
    serving_controls = MyServing.controls    # lets binaries check flags before loading
    serving_aligns = True                    # optional: its alignment_prior() is not None
    serving_precisions = ("float32", "bfloat16")  # optional; default float32 only

    def serving(self, modules, data_info):
      return MyServing(modules["net"], data_info)

Acoustic model (token ids → mels):

  controls                      the knobs it declares (`Control`): flags, export inputs
  noise_channels                channels of the noise it draws (None: it draws none)
  frames_bound(ids, lengths, speaker, **controls) → int32 []   noise frames it needs
  synthesize(ids, lengths, noise, speaker, **controls)
      → {"mel": [batch, frames, n_mels] (0 past each length), "mel_lengths": [batch],
         "durations": [batch, tokens] int32 frames per token (0 past each text length)}

  `noise` is `[batch, noise_frames, noise_channels]` standard normal noise; a model uses
  the first frames it needs and repeats shorter noise along time, so any `noise_frames >= 1`
  works (pass `frames_bound` frames for independent noise). Every method is traceable with
  `None` batch and length dims and loop-free (no `tf.while_loop`), so the same code exports
  to TFLite builtins and runs synchronously in TFJS.

Vocoder (mels → audio):

  n_mels, hop_length, sample_rate, mel_config, mel_pad_value, receptive_field (frames)
  controls                      the knobs it declares (`Control`), as for acoustic models
  noise_channels                channels of the noise it draws (None: it draws none)
  noise_length(mel_frames) → int32 []   noise steps `vocode` reads for this many frames
                                        (default `mel_frames * hop_length`)
  vocode(mel, mel_lengths, noise=None, **controls)
      → {"audio": [batch, frames * hop] (0 past each length), "audio_lengths": [batch] int32}
  context_frames(**static controls) → int   streaming: context each side of a chunk
                                        (no default: see `Vocoder.context_frames`)
  stream_noise(noise, mel_lengths, **static controls)   streaming: the utterance's noise
                                        as per-window slices (default: unchanged)

  `noise` is `[batch, noise_steps, noise_channels]` standard normal noise (e.g. DiffWave:
  channels 1, `frames * hop` steps); as for acoustic models, a vocoder uses the first
  `noise_length(frames)` steps and repeats shorter noise (`cyclic_frames`), so any
  `noise_steps >= 1` works. Drivers pass `noise` only to vocoders that declare
  `noise_channels`, and every control by name (static ones as Python values).

Static controls (`Control.static`, e.g. diffusion steps unrolled into the graph) are
Python ints fixed when a graph is traced; the others are scalar graph inputs. A static
control may declare a `runtime` control that stands in for it when its value is `RUNTIME`
("runtime": `--control=steps=runtime`): the graph then takes that control as an input
instead (DiffWave: `steps=runtime` makes the reverse betas, a vector control `betas` of any
length, an input of one looped graph), and the model is called with both (`steps="runtime",
betas=<input>`); in process (`split_controls`) its value is passed as a static one. Vector
controls (`Control.shape == (None,)`) are given as comma-separated numbers and are graph
inputs of that shape; every other control is a scalar.

Precision: a task lists the compute precisions its serving object supports as
`serving_precisions` (default float32 only). `load_run(..., precision="bfloat16")` builds a
run's modules and serving object under Keras's "mixed_bfloat16" policy (float32 variables,
bfloat16 compute); the drivers cast its outputs to float32.
"""

import dataclasses
from typing import Any, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

ACOUSTIC = "acoustic"
VOCODER = "vocoder"
ROLES = (ACOUSTIC, VOCODER)
_DTYPES = {"int32": int, "float32": float}
# The value of a static control that declares a `runtime` control: that control is then a
# graph input instead (see the module docstring).
RUNTIME = "runtime"


@dataclasses.dataclass(frozen=True)
class Control:
  """A knob a model declares; it becomes a `--control=name=value` flag and an export input.

  Attributes:
    name: identifier (flag value key, graph input name).
    dtype: "float32" or "int32".
    default: the recommended value (recorded in metadata.json).
    help: one line for `tfspeech-info` and the metadata.
    static: fixed when a graph is built (a Python value), not a graph input.
    minimum: smallest allowed value (inclusive), or None.
    exclusive_minimum: values must be greater than this, or None.
    exclusive_maximum: values must be less than this, or None.
    shape: () for a scalar; (None,) for a vector of any length >= 1 (a tuple of numbers,
      each checked against the bounds; from a flag, comma-separated). Vectors are dynamic.
    runtime: for a static control, the (dynamic) control that replaces it as a graph input
      when its value is `RUNTIME` ("runtime"), or None.
  """
  name: str
  dtype: str
  default: Any
  help: str
  static: bool = False
  minimum: Optional[float] = None
  exclusive_minimum: Optional[float] = None
  exclusive_maximum: Optional[float] = None
  shape: Tuple[Optional[int], ...] = ()
  runtime: Optional["Control"] = None

  def __post_init__(self):
    if self.dtype not in _DTYPES:
      raise ValueError(f"Control {self.name!r}: dtype must be one of {sorted(_DTYPES)}")
    if tuple(self.shape) not in ((), (None,)):
      raise ValueError(f"Control {self.name!r}: shape must be () or (None,)")
    if self.shape and self.static:
      raise ValueError(f"Control {self.name!r}: a vector control cannot be static")
    if self.runtime is not None and (not self.static or self.runtime.static):
      raise ValueError(f"Control {self.name!r}: only a static control has a runtime "
                       "control, and that one must be dynamic")

  @property
  def tf_dtype(self) -> tf.DType:
    return tf.as_dtype(self.dtype)

  @property
  def is_vector(self) -> bool:
    return bool(self.shape)

  def spec(self, name: Optional[str] = None) -> tf.TensorSpec:
    """The graph input of this control (scalar, or `[None]` for a vector), named `name`."""
    return tf.TensorSpec(list(self.shape), self.tf_dtype, name=name or self.name)

  def convert(self, value, source: str = "") -> Any:
    """`value` (a string from a flag, or a number) as this control's Python type, checked.

    A vector control takes comma-separated numbers (or a sequence) and returns a tuple; a
    static control with a `runtime` control also takes "runtime" (returns `RUNTIME`).

    Raises:
      ValueError: not a number of this type, or out of range (`source` names the flag).
    """
    where = source or f"control {self.name}"
    if self.runtime is not None and isinstance(value, str) and value.strip() == RUNTIME:
      return RUNTIME
    if self.is_vector:
      return self._convert_vector(value, where)
    return self._convert_number(value, where)

  def _convert_vector(self, value, where: str) -> tuple:
    if isinstance(value, str):
      items = value.replace(" ", "").split(",")
    else:
      try:
        items = list(value)  # A sequence, array or eager tensor of numbers.
      except TypeError:
        raise ValueError(f"{where}={value}: expected {self.describe_type()}") from None
    if not items or items == [""]:
      raise ValueError(f"{where}={value}: expected {self.describe_type()}, got none")
    return tuple(self._convert_number(item, where, shown=value) for item in items)

  def _convert_number(self, value, where: str, shown=None) -> Any:
    shown = value if shown is None else shown
    try:
      if isinstance(value, str):
        number = _DTYPES[self.dtype](value.strip())
      elif self.dtype == "int32" and (isinstance(value, bool) or int(value) != value):
        raise ValueError
      else:
        number = _DTYPES[self.dtype](value)
    except (TypeError, ValueError):
      raise ValueError(f"{where}={shown}: expected {self.describe_type()}") from None
    every = "every value " if self.is_vector else ""
    if self.minimum is not None and number < self.minimum:
      raise ValueError(f"{where}={shown}: {every}must be >= {self.minimum} ({self.help})")
    if self.exclusive_minimum is not None and number <= self.exclusive_minimum:
      raise ValueError(f"{where}={shown}: {every}must be > {self.exclusive_minimum} "
                       f"({self.help})")
    if self.exclusive_maximum is not None and number >= self.exclusive_maximum:
      raise ValueError(f"{where}={shown}: {every}must be < {self.exclusive_maximum} "
                       f"({self.help})")
    return number

  def describe_type(self) -> str:
    kind = "an integer" if self.dtype == "int32" else "a number"
    if self.is_vector:
      kind = "comma-separated " + ("integers" if self.dtype == "int32" else "numbers")
    bounds = [f"{op} {bound}" for op, bound in ((">=", self.minimum),
                                                (">", self.exclusive_minimum),
                                                ("<", self.exclusive_maximum))
              if bound is not None]
    if bounds:
      kind += " " + " and ".join(bounds)
    if self.runtime is not None:
      kind += f", or {RUNTIME!r} (the graph then takes {self.runtime.name})"
    return kind

  def describe(self) -> str:
    """`name (type, default D, static): help` for listings."""
    static = ", fixed at export" if self.static else ""
    dtype = f"{self.dtype} [None]" if self.is_vector else self.dtype
    default = (",".join(str(v) for v in self.default) if self.is_vector else self.default)
    runtime = (f"; {self.name}={RUNTIME}: {self.runtime.describe()}"
               if self.runtime is not None else "")
    return f"{self.name} ({dtype}, default {default}{static}): {self.help}{runtime}"

  def metadata(self) -> dict:
    described = {"dtype": self.dtype, "shape": list(self.shape), "default": self.default,
                 "static": self.static, "help": self.help, "minimum": self.minimum,
                 "exclusive_minimum": self.exclusive_minimum,
                 "exclusive_maximum": self.exclusive_maximum}
    if self.default is not None and self.is_vector:
      described["default"] = list(self.default)
    return described


def resolve_controls(controls: Sequence[Control], given: Optional[Mapping[str, Any]] = None,
                     sources: Optional[Mapping[str, str]] = None) -> dict:
  """Every declared control's value: `given` (checked and converted) or its default.

  Args:
    controls: the model's declared controls.
    given: name → value (numbers or strings).
    sources: name → how the user gave it (e.g. "--temperature"), for messages.

  Raises:
    ValueError: an unknown name (the message lists the model's controls) or a bad value.
  """
  given = dict(given or {})
  sources = dict(sources or {})
  declared = {c.name: c for c in controls}
  # Runtime stand-ins (`Control.runtime`) may be given only with their static control set to
  # RUNTIME; they then resolve too (their value is recorded as the recommended input).
  stand_ins = {c.runtime.name: c for c in controls if c.runtime is not None}
  unknown = sorted(set(given) - set(declared) - set(stand_ins))
  if unknown:
    listing = "; ".join(c.describe() for c in controls) or "none"
    raise ValueError(f"unknown control {', '.join(unknown)}; this model's controls: {listing}")
  values = {name: control.convert(given[name], sources.get(name, f"--control={name}"))
            if name in given else control.default for name, control in declared.items()}
  for name, parent in stand_ins.items():
    if values[parent.name] == RUNTIME:
      runtime = parent.runtime
      values[name] = (runtime.convert(given[name], sources.get(name, f"--control={name}"))
                      if name in given else runtime.default)
    elif name in given:
      raise ValueError(f"{sources.get(name, f'--control={name}')}: {name} is an input only "
                       f"of graphs exported with --control={parent.name}={RUNTIME}; pass "
                       f"that too, or drop {name}")
  return values


def parse_control_flags(values: Sequence[str], flag: str = "control") -> dict:
  """`["name=value", ...]` (repeated `--control` flags) → {name: "value"}.

  Args:
    values: the flag's values.
    flag: the flag's name, for messages (e.g. "vocoder_control").

  Raises:
    ValueError: an entry without "=" or a name given twice.
  """
  parsed = {}
  for entry in values or ():
    name, sep, value = entry.partition("=")
    name = name.strip()
    if not sep or not name or not value.strip():
      raise ValueError(f"--{flag}={entry}: expected NAME=VALUE, e.g. --{flag}=temperature=1.5")
    if name in parsed:
      raise ValueError(f"--{flag}={entry}: {name} is given twice")
    parsed[name] = value.strip()
  return parsed


def split_controls(controls: Sequence[Control], values: Mapping[str, Any]):
  """(static values, dynamic values) of resolved control values, in declaration order.

  A static control set to `RUNTIME` keeps that value and brings its runtime control's value
  along as a static one: in process the model runs that Python value as an exported graph
  runs its input (DiffWave: `steps="runtime", betas=(...)`). Graphs take it as an input
  instead (`runtime_controls`)."""
  static = {c.name: values[c.name] for c in controls if c.static}
  static.update({c.runtime.name: values[c.runtime.name] for c in controls
                 if c.runtime is not None and values[c.name] == RUNTIME})
  dynamic = {c.name: values[c.name] for c in controls if not c.static}
  return static, dynamic


def runtime_controls(controls: Sequence[Control], values: Mapping[str, Any]) -> list:
  """The runtime controls that stand in for static controls set to `RUNTIME` (graph inputs)."""
  return [c.runtime for c in controls if c.static and values[c.name] == RUNTIME]


def cyclic_frames(noise, frames):
  """`[batch, >=1, c]` noise repeated along time and cut to `frames`: `[batch, frames, c]`.

  Lets a graph take noise of any length: pass at least `frames_bound` frames for
  independent noise; shorter noise is reused (still a valid, if less random, sample).
  """
  repeats = (frames + tf.shape(noise)[1] - 1) // tf.shape(noise)[1]
  return tf.tile(noise, tf.stack([1, repeats, 1]))[:, :frames]


class AcousticModel:
  """Token ids → mels, mel lengths and per-token durations; see the module docstring.

  Attributes:
    n_mels: mel bins of the output.
    controls: tuple of `Control`s.
    noise_channels: channels of the `noise` input, or None when the model draws none.
    num_speakers: > 1 for multi-speaker models (then `speaker` is `[batch]` int32).
    weights: every variable the serving graphs read (for `tf.Module` tracking).
  """
  role = ACOUSTIC
  n_mels: int = 80
  controls: tuple = ()
  noise_channels: Optional[int] = None
  num_speakers: int = 1

  def in_process(self) -> "AcousticModel":
    """This model for synthesis in this process (`tfspeech-synthesize`, `--gta`).

    Exported graphs must be loop-free, so static controls are unrolled (Grad-TTS traces one
    decoder copy per diffusion step). In-process synthesis may use `tf.while_loop`s, so a
    large static value (hundreds of steps) does not trace into a huge graph. Return the
    same object on every call (traced functions are cached per object). Default: `self`.
    """
    return self

  @property
  def weights(self) -> list:
    raise NotImplementedError

  def frames_bound(self, text_ids, text_lengths, speaker=None, **controls):
    """int32 scalar >= the noise frames `synthesize` uses for these inputs."""
    raise NotImplementedError

  def synthesize(self, text_ids, text_lengths, noise, speaker=None, **controls) -> dict:
    """{"mel", "mel_lengths", "durations"}; see the module docstring."""
    raise NotImplementedError

  def ground_truth_aligned(self, text_ids, text_lengths, mel, mel_lengths, noise,
                           speaker=None, **controls):
    """Teacher-forced mels `[batch, frames, n_mels]` for vocoder fine-tuning (optional).

    `noise` is `[batch, frames_of(mel), noise_channels]` (None without noise).
    """
    raise NotImplementedError(f"{type(self).__name__} has no ground-truth-aligned mode")

  def gta_noise_frames(self, frames):
    """Noise frames `ground_truth_aligned` reads for a mel of `frames` frames."""
    return frames

  @property
  def has_ground_truth_aligned(self) -> bool:
    return type(self).ground_truth_aligned is not AcousticModel.ground_truth_aligned

  def alignment_prior(self):
    """What forced alignment (`tfspeech-align`) scores text against audio with, or None.

    A model that can align returns an object with `n_mels` and
    `log_likelihood(text_ids, text_lengths, mel, speaker=None)` → `[batch, tokens, frames]`
    float32 for `[batch, frames, n_mels]` log-mels (what its training step runs MAS on).
    """
    return None


class Vocoder:
  """Mels → audio; see the module docstring.

  Attributes:
    n_mels, hop_length, sample_rate: its shapes and rate.
    mel_config: the `tfspeech.audio.MelConfig` it was trained on (None if unknown).
    mel_pad_value: the log-mel of silence in that convention (pad mels with it).
    receptive_field: frames a change of one mel frame can reach in either direction.
    weights: every variable its graph reads.
  """
  role = VOCODER
  n_mels: int = 80
  hop_length: int = 256
  sample_rate: int = 22050
  mel_config: Any = None
  mel_pad_value: float = 0.0
  receptive_field: int = 0

  @property
  def weights(self) -> list:
    raise NotImplementedError

  controls: tuple = ()
  noise_channels: Optional[int] = None

  def noise_length(self, mel_frames):
    """int32 scalar: the noise steps `vocode` reads for mels of `mel_frames` frames."""
    return mel_frames * self.hop_length

  def in_process(self) -> "Vocoder":
    """This vocoder for vocoding in this process (`tfspeech-vocode`, `tfspeech-synthesize`).

    As `AcousticModel.in_process`: exports need loop-free graphs (static controls
    unrolled), in-process vocoding may loop. Return the same object on every call.
    Default: `self`.
    """
    return self

  def vocode(self, mel, mel_lengths, noise=None, **controls) -> dict:
    """{"audio", "audio_lengths"}; see the module docstring."""
    raise NotImplementedError

  def context_frames(self, **static_controls) -> int:
    """Mel frames of context each side of a chunk that make its audio equal the whole
    utterance's (`tfspeech.inference.streaming`, the exported `mel_chunk_to_audio`).

    The reach of everything `vocode` does at these static controls: a single network pass
    reaches `receptive_field`, but an iterative vocoder (DiffWave: one pass per reverse
    step) reaches further with every pass. No default: `receptive_field` would be silently
    too small for such a vocoder (glitches at chunk edges), and no finite value bounds
    every vocoder, so streaming a vocoder that does not declare its context fails here.

    Raises:
      NotImplementedError: the vocoder does not declare it.
    """
    del static_controls
    raise NotImplementedError(
        f"{type(self).__name__} does not declare context_frames, so it cannot stream: "
        "implement Vocoder.context_frames(**static_controls) (its reach in mel frames)")

  def stream_noise(self, noise, mel_lengths, **static_controls):
    """The whole utterance's noise as noise whose time slices are each window's noise.

    Args:
      noise: `[batch, noise_length(frames), noise_channels]` float32, repeated to length.
      mel_lengths: `[batch]` int32.
      **static_controls: the vocoder's static control values.

    Returns:
      `[batch, noise_length(frames), C]` float32 that `vocode` of a window reads as it
      reads the matching steps of the whole. Default: `noise` unchanged, right for a
      vocoder that reads noise step k at audio step k; one that reuses draws across
      positions (DiffWave's rotation within each item) makes them here.
    """
    del mel_lengths, static_controls
    return noise


def call_vocoder(vocoder: Vocoder, mel, mel_lengths, noise=None, **controls) -> dict:
  """`vocoder.vocode(...)`, passing `noise` only to a vocoder that declares noise channels;
  float32 audio at any compute precision.

  Raises:
    ValueError: noise missing for a vocoder that draws it.
  """
  if vocoder.noise_channels is None:
    return float32_outputs(vocoder.vocode(mel, mel_lengths, **controls))
  if noise is None:
    raise ValueError(f"{type(vocoder).__name__} draws noise ({vocoder.noise_channels} "
                     "channels); pass noise")
  return float32_outputs(vocoder.vocode(mel, mel_lengths, noise, **controls))


def task_role(task_class) -> Optional[str]:
  """"acoustic", "vocoder" or None (a task that serves nothing, e.g. toy)."""
  return getattr(task_class, "serving_role", None)


def task_controls(task_class) -> tuple:
  """The controls a task's serving object declares, known before any weights load.

  A task (acoustic model or vocoder) declares them as `serving_controls` (the same tuple
  its serving object's `controls` holds), so binaries can check flags before loading a
  run.
  """
  return tuple(getattr(task_class, "serving_controls", ()))


def float32_outputs(outputs: Mapping[str, Any]) -> dict:
  """`outputs` with every floating tensor cast to float32 (bfloat16 models' results)."""
  return {k: tf.cast(v, tf.float32) if v.dtype.is_floating else v for k, v in outputs.items()}


def build_serving(task, modules: Mapping[str, Any], data_info: Optional[Mapping] = None):
  """The serving object of a task instance (its `serving(modules, data_info)`).

  Raises:
    ValueError: the task declares no serving role.
  """
  role = task_role(type(task))
  if role not in ROLES or not hasattr(task, "serving"):
    raise ValueError(f"model {type(task).name!r} serves neither as an acoustic model nor as a "
                     "vocoder (its task declares no serving_role)")
  served = task.serving(dict(modules), dict(data_info or {}))
  expected = AcousticModel if role == ACOUSTIC else Vocoder
  if not isinstance(served, expected):
    raise TypeError(f"{type(task).__name__}.serving() returned {type(served).__name__}, not a "
                    f"tfspeech.models.serving.{expected.__name__}")
  if tuple(served.controls) != task_controls(type(task)):
    raise TypeError(f"{type(task).__name__}.serving_controls must be the controls its serving "
                    "object declares")
  return served
