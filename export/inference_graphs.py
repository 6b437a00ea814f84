"""The one family of inference graphs every export format is built from.

Each graph is a `tf.Module` around a model's serving object
(`tfspeech.models.serving.AcousticModel` / `Vocoder`: no copies of the weights) with one
`tf.function` whose input signature names every input and leaves batch and length dims
`None`. The SavedModel exporter saves these functions as its signatures, and the TFLite and
TFJS exporters freeze and convert the same functions, so the three formats share input and
output names:

  text_to_mel    (acoustic model)
    text_ids int32 [batch, tokens], text_lengths int32 [batch],
    noise float32 [batch, noise_frames, noise_channels]   (models that draw noise),
    one float32/int32 [] input per dynamic control (e.g. temperature, length_scale),
    speaker int32 [batch]                                   (multi-speaker models)
      →  mel float32 [batch, frames, n_mels] (0 past each length), mel_lengths int32 [batch],
         durations int32 [batch, tokens] (frames per token, for highlighting words)

  mel_to_audio   (vocoder)
    mel float32 [batch, frames, n_mels], mel_lengths int32 [batch],
    vocoder_noise float32 [batch, noise_length, noise_channels]   (vocoders that draw noise),
    one float32/int32 [] input `vocoder_<name>` per dynamic vocoder control,
    and per static control exported as `runtime` (`--control=steps=runtime`) its stand-in
    (`serving.Control.runtime`), e.g. DiffWave's vocoder_betas float32 [n_betas]: the
    reverse schedule, any number of steps, run by one `tf.while_loop`
      →  audio float32 [batch, frames * hop_length] (0 past each length),
         audio_lengths int32 [batch] (= mel_lengths * hop_length)

  mel_chunk_to_audio   (vocoder, streaming: `build_graphs(..., stream=True)`)
    the inputs of mel_to_audio for one window (a chunk with up to `context_frames` frames
    of context each side; its vocoder_noise the matching slice of the utterance's), then
    context_before int32 [], context_after int32 []: the context frames to drop
      →  audio float32 [batch, (frames - before - after) * hop_length], audio_lengths
    Chunks cut this way concatenate to mel_to_audio's audio (tfspeech.inference.streaming;
    metadata: vocoder.context_frames).

  text_to_audio  (both in one graph)
    the inputs of text_to_mel, then mel_to_audio's vocoder_noise and vocoder_<name> inputs
      →  the outputs of text_to_mel and of mel_to_audio

Static controls (e.g. diffusion steps) of either model are fixed when the graphs are built. The models'
serving code has no random ops or Python callbacks and is loop-free except the autoregressive
decoders (Tacotron 2, DC-TTS) and DiffWave with a runtime schedule (`steps=runtime`): one
`tf.while_loop` each, a TFLite builtin WHILE, tfjs `GraphModel.executeAsync`; the others run
synchronously in TFJS (`GraphModel.execute`); all use TFLite builtins only. The noise is an
input rather than a random op, so TF, TFLite and TFJS give the same mel for the same noise
(tests compare them) and an app chooses its own random source. A model uses the first
frames it needs and repeats shorter noise along time, so any `noise_frames >= 1` works;
pass at least the frames the text will take for independent noise (metadata.json:
`noise.frames_hint_per_token`). The vocoder's noise works alike: it reads
`noise_length(frames)` steps (metadata.json: `vocoder_noise.length_per_frame` per frame)
and repeats shorter noise.

`FixedShape` (`fix_shapes`, `tfspeech-export --format=tflite --fixed_shapes=tokens=T,frames=F`)
wraps any of the three at batch 1 with every input and output static, for runtimes that
cannot resize tensors (LiteRT.js): text padded to T ids, mels, noise and audio to F frames,
an extra output `clipped`; see its docstring.
"""

import dataclasses
import inspect
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence

import tensorflow as tf

from tfspeech.data import corpus_info
from tfspeech.models import serving as serving_lib

MEL_TO_AUDIO = "mel_to_audio"
MEL_CHUNK_TO_AUDIO = "mel_chunk_to_audio"
TEXT_TO_MEL = "text_to_mel"
TEXT_TO_AUDIO = "text_to_audio"
GRAPH_NAMES = (TEXT_TO_MEL, MEL_TO_AUDIO, TEXT_TO_AUDIO)
# Inputs of the vocoder in mel_to_audio and text_to_audio: its noise, and its dynamic
# controls as `vocoder_<name>`.
VOCODER_NOISE = "vocoder_noise"
VOCODER_PREFIX = "vocoder_"

# Frames of noise per input token that cover typical speech (~2-4 frames per id with
# blanks); only a hint for apps, see the module docstring.
NOISE_FRAMES_PER_TOKEN_HINT = 8


def named_function(specs: Sequence[tf.TensorSpec], body):
  """`tf.function(body, input_signature=specs)` callable by the specs' names too.

  The inputs a model declares are only known at run time, so `body` takes them as
  `*args`; a `tf.function` of a `*args` function cannot be called with keywords, so the
  wrapper carries a signature of one named parameter per spec.
  """
  names = [spec.name for spec in specs]
  signature = inspect.Signature([
      inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])

  def function(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    return body(*[bound.arguments[name] for name in names])
  function.__signature__ = signature
  function.__name__ = getattr(body, "__name__", "function")
  return tf.function(function, input_signature=list(specs))


def _describe(specs: Mapping[str, tf.TensorSpec], dims: Mapping[str, List[str]]) -> dict:
  """{name: {"dtype": "float32", "shape": ["batch", "frames", 80]}} for metadata.json."""
  described = {}
  for name, spec in specs.items():
    labels = dims[name]
    shape = [label if size is None else int(size)
             for label, size in zip(labels, spec.shape.as_list())]
    described[name] = {"dtype": spec.dtype.name, "shape": shape}
  return described


class InferenceGraph(tf.Module):
  """Base: one named signature, its `tf.function`, and a description of its tensors.

  Subclasses set `name`, `self.function` (a `tf.function` with an input signature returning
  a dict), `self.input_dims` and `self.output_specs` / `self.output_dims`.
  """
  name = ""

  def concrete_function(self):
    """The traced signature (a `ConcreteFunction` with named inputs and dict outputs)."""
    return self.function.get_concrete_function()

  def input_specs(self) -> Dict[str, tf.TensorSpec]:
    return {spec.name: spec for spec in self.function.input_signature}

  def describe(self) -> dict:
    """Inputs and outputs with dtypes and shapes (symbolic dims by name)."""
    return {"inputs": _describe(self.input_specs(), self.input_dims),
            "outputs": _describe(self.output_specs, self.output_dims)}


def vocoder_input_name(control_name: str) -> str:
  """The graph input of a vocoder control: `vocoder_<name>` (acoustic controls keep their
  names; both models may declare one name, e.g. diffusion steps)."""
  return VOCODER_PREFIX + control_name


class MelToAudio(InferenceGraph):
  """A serving vocoder as `mel_to_audio`, static controls fixed.

  Args:
    vocoder: a `tfspeech.models.serving.Vocoder`.
    controls: its control values; the static ones are fixed in the graph (defaults for
      those not given), the dynamic ones are inputs `vocoder_<name>` (given values are
      recorded as recommendations).

  Raises:
    ValueError: an unknown control, a bad value, or a control whose input name clashes.
  """
  name = MEL_TO_AUDIO

  def __init__(self, vocoder: serving_lib.Vocoder,
               controls: Optional[Mapping[str, object]] = None, name: Optional[str] = None):
    super().__init__(name=name)
    self.vocoder = vocoder
    self.model_weights = list(vocoder.weights)
    self.n_mels = vocoder.n_mels
    self.hop_length = vocoder.hop_length
    self.recommended = serving_lib.resolve_controls(vocoder.controls, controls)
    static, _ = serving_lib.split_controls(vocoder.controls, self.recommended)
    self.dynamic = [c for c in vocoder.controls if not c.static]
    # Stand-ins of static controls exported as `runtime`: graph inputs like the dynamic ones
    # (`split_controls` lists their values as static: in process they are Python values).
    # Filtered before the assignment: tf.Module tracks a dict, which must not change after.
    self.runtime = serving_lib.runtime_controls(vocoder.controls, self.recommended)
    runtime_names = {c.name for c in self.runtime}
    self.static = {k: v for k, v in static.items() if k not in runtime_names}
    self.has_noise = vocoder.noise_channels is not None
    names = [spec.name for spec in self.signature()]
    if len(set(names)) != len(names):
      raise ValueError(f"{type(vocoder).__name__}: its controls' graph inputs {names} clash; "
                       "rename the control")
    self.function = named_function(self.signature(), self._mel_to_audio)
    self.input_dims = {"mel": ["batch", "frames", "n_mels"], "mel_lengths": ["batch"],
                       VOCODER_NOISE: ["batch", "noise_length", "noise_channels"],
                       **{vocoder_input_name(c.name): [] for c in self.dynamic},
                       **{vocoder_input_name(c.name): ["n_" + c.name] for c in self.runtime}}
    self.output_specs = {"audio": tf.TensorSpec([None, None], tf.float32),
                         "audio_lengths": tf.TensorSpec([None], tf.int32)}
    self.output_dims = {"audio": ["batch", "frames * hop_length"], "audio_lengths": ["batch"]}

  def vocoder_specs(self, noise_spec: Optional[tf.TensorSpec] = None) -> list:
    """Its inputs besides the mels: noise (or `noise_spec`, None: left out), controls."""
    specs = []
    if self.has_noise and noise_spec is not False:
      specs.append(noise_spec or tf.TensorSpec(
          [None, None, self.vocoder.noise_channels], tf.float32, name=VOCODER_NOISE))
    return specs + [c.spec(vocoder_input_name(c.name)) for c in self.dynamic + self.runtime]

  def signature(self, noise_spec=None) -> list:
    """Input specs: mel, mel_lengths, vocoder_noise (or `noise_spec`; False: none), controls."""
    return [tf.TensorSpec([None, None, self.n_mels], tf.float32, name="mel"),
            tf.TensorSpec([None], tf.int32, name="mel_lengths")] + self.vocoder_specs(noise_spec)

  def split_vocoder_args(self, named: Mapping[str, object]) -> dict:
    """{"noise", "controls"} of named inputs (noise None when absent)."""
    return {"noise": named.get(VOCODER_NOISE),
            "controls": dict(self.static, **{c.name: named[vocoder_input_name(c.name)]
                                             for c in self.dynamic + self.runtime})}

  def audio(self, mel, mel_lengths, noise=None, controls=None) -> dict:
    """The traced body (also used by `TextToAudio`)."""
    out = serving_lib.call_vocoder(self.vocoder, mel, mel_lengths, noise,
                                   **(self.static if controls is None else controls))
    return {"audio": out["audio"], "audio_lengths": out["audio_lengths"]}

  def _mel_to_audio(self, *args):
    named = dict(zip([spec.name for spec in self.signature()], args))
    return self.audio(named["mel"], named["mel_lengths"], **self.split_vocoder_args(named))


class MelChunkToAudio(MelToAudio):
  """A serving vocoder as `mel_chunk_to_audio`: one streaming window → its chunk's audio.

  Same arguments as `MelToAudio`; `context_frames` is the context a window needs each side
  (`tfspeech.inference.streaming.context_frames`).
  """
  name = MEL_CHUNK_TO_AUDIO

  def __init__(self, vocoder: serving_lib.Vocoder,
               controls: Optional[Mapping[str, object]] = None, name: Optional[str] = None):
    from tfspeech.inference import streaming  # pylint: disable=import-outside-toplevel
    super().__init__(vocoder, controls, name)
    try:
      self.context_frames = streaming.context_frames(vocoder, self.recommended)
    except NotImplementedError as error:
      raise ValueError(f"{MEL_CHUNK_TO_AUDIO}: {error}") from error
    self.input_dims.update(context_before=[], context_after=[])
    self.output_dims = {"audio": ["batch", "(frames - context) * hop_length"],
                        "audio_lengths": ["batch"]}

  def signature(self, noise_spec=None) -> list:
    """MelToAudio's inputs, then context_before and context_after (int32 scalars)."""
    return super().signature(noise_spec) + [
        tf.TensorSpec([], tf.int32, name="context_before"),
        tf.TensorSpec([], tf.int32, name="context_after")]

  def _mel_to_audio(self, *args):
    from tfspeech.inference import streaming  # pylint: disable=import-outside-toplevel
    named = dict(zip([spec.name for spec in self.signature()], args))
    parts = self.split_vocoder_args(named)
    audio, lengths = streaming.chunk_audio(
        self.vocoder, named["mel"], named["mel_lengths"], parts["noise"],
        named["context_before"], named["context_after"], **parts["controls"])
    return {"audio": audio, "audio_lengths": lengths}


class TextToMel(InferenceGraph):
  """A serving acoustic model as `text_to_mel`, static controls fixed.

  Args:
    acoustic: a `tfspeech.models.serving.AcousticModel`.
    controls: control values; the static ones are fixed in the graph (defaults for those
      not given), the dynamic ones are inputs (their given values are only recorded as
      recommendations, see `recommended`).

  Raises:
    ValueError: an unknown control or a bad value.
  """
  name = TEXT_TO_MEL

  def __init__(self, acoustic: serving_lib.AcousticModel,
               controls: Optional[Mapping[str, object]] = None, name: Optional[str] = None):
    super().__init__(name=name)
    self.acoustic = acoustic
    self.model_weights = list(acoustic.weights)
    self.n_mels = acoustic.n_mels
    self.recommended = serving_lib.resolve_controls(acoustic.controls, controls)
    self.static, _ = serving_lib.split_controls(acoustic.controls, self.recommended)
    self.dynamic = [c for c in acoustic.controls if not c.static]
    self.multi_speaker = acoustic.num_speakers > 1
    self.has_noise = acoustic.noise_channels is not None
    self.function = named_function(self.signature(), self._text_to_mel)
    self.input_dims = {"text_ids": ["batch", "tokens"], "text_lengths": ["batch"],
                       "noise": ["batch", "noise_frames", "noise_channels"],
                       "speaker": ["batch"], **{c.name: [] for c in self.dynamic}}
    self.output_specs = {"mel": tf.TensorSpec([None, None, self.n_mels], tf.float32),
                         "mel_lengths": tf.TensorSpec([None], tf.int32),
                         "durations": tf.TensorSpec([None, None], tf.int32)}
    self.output_dims = {"mel": ["batch", "frames", "n_mels"], "mel_lengths": ["batch"],
                        "durations": ["batch", "tokens"]}

  def signature(self, noise_spec: Optional[tf.TensorSpec] = None) -> list:
    """Input specs: ids, lengths, noise (or `noise_spec`), dynamic controls, speaker."""
    specs = [tf.TensorSpec([None, None], tf.int32, name="text_ids"),
             tf.TensorSpec([None], tf.int32, name="text_lengths")]
    if self.has_noise:
      specs.append(noise_spec or tf.TensorSpec(
          [None, None, self.acoustic.noise_channels], tf.float32, name="noise"))
    specs += [tf.TensorSpec([], c.tf_dtype, name=c.name) for c in self.dynamic]
    if self.multi_speaker:
      specs.append(tf.TensorSpec([None], tf.int32, name="speaker"))
    return specs

  def split_args(self, args) -> dict:
    """Positional inputs of `signature()` by name (noise/speaker None when absent)."""
    names = [spec.name for spec in self.signature()]
    named = dict(zip(names, args))
    return {"text_ids": named["text_ids"], "text_lengths": named["text_lengths"],
            "noise": named.get("noise"), "speaker": named.get("speaker"),
            "controls": dict(self.static, **{c.name: named[c.name] for c in self.dynamic})}

  def frames_bound(self, text_ids, text_lengths, speaker, controls):
    return self.acoustic.frames_bound(text_ids, text_lengths, speaker, **controls)

  def mel(self, text_ids, text_lengths, noise, speaker, controls) -> dict:
    """The traced body: {"mel", "mel_lengths", "durations"} (also used by TextToAudio)."""
    out = self.acoustic.synthesize(text_ids, text_lengths, noise, speaker, **controls)
    return {"mel": out["mel"], "mel_lengths": out["mel_lengths"],
            "durations": out["durations"]}

  def _text_to_mel(self, *args):
    return self.mel(**self.split_args(args))


class TextToAudio(InferenceGraph):
  """`text_to_mel` and `mel_to_audio` in one graph (end to end, one call per sentence).

  Args:
    text_to_mel: a `TextToMel`.
    mel_to_audio: a `MelToAudio` on the same mel convention.

  Raises:
    ValueError: when the vocoder's mel bins differ from the acoustic model's.
  """
  name = TEXT_TO_AUDIO

  def __init__(self, text_to_mel: TextToMel, mel_to_audio: MelToAudio,
               name: Optional[str] = None):
    super().__init__(name=name)
    if text_to_mel.n_mels != mel_to_audio.n_mels:
      raise ValueError(f"TextToAudio: the acoustic model makes {text_to_mel.n_mels}-bin mels "
                       f"but the vocoder takes {mel_to_audio.n_mels}; pair models trained on "
                       "the same mel convention")
    self.text_to_mel = text_to_mel
    self.mel_to_audio = mel_to_audio
    self.hop_length = mel_to_audio.hop_length
    names = [spec.name for spec in self.signature()]
    if len(set(names)) != len(names):
      raise ValueError(f"TextToAudio: the models' graph inputs {names} clash; rename a "
                       "control")
    self.function = named_function(self.signature(), self._text_to_audio)
    self.input_dims = dict(text_to_mel.input_dims, **{
        k: v for k, v in mel_to_audio.input_dims.items() if k not in ("mel", "mel_lengths")})
    self.output_specs = dict(text_to_mel.output_specs, **mel_to_audio.output_specs)
    self.output_dims = dict(text_to_mel.output_dims, **mel_to_audio.output_dims)

  def signature(self, noise_spec=None, vocoder_noise_spec=None) -> list:
    """The acoustic model's inputs, then the vocoder's (noise, `vocoder_<control>`s)."""
    return (self.text_to_mel.signature(noise_spec)
            + self.mel_to_audio.vocoder_specs(vocoder_noise_spec))

  def split_args(self, args) -> dict:
    """Positional inputs of `signature()` → the keyword arguments of `audio`."""
    count = len(self.text_to_mel.signature())
    named = dict(zip([spec.name for spec in self.mel_to_audio.vocoder_specs()], args[count:]))
    vocoder = self.mel_to_audio.split_vocoder_args(named)
    return dict(self.text_to_mel.split_args(args[:count]), vocoder_noise=vocoder["noise"],
                vocoder_controls=vocoder["controls"])

  def audio(self, text_ids, text_lengths, noise, speaker, controls, vocoder_noise=None,
            vocoder_controls=None) -> dict:
    out = self.text_to_mel.mel(text_ids, text_lengths, noise, speaker, controls)
    return dict(out, **self.mel_to_audio.audio(out["mel"], out["mel_lengths"], vocoder_noise,
                                               vocoder_controls))

  def _text_to_audio(self, *args):
    return self.audio(**self.split_args(args))


def build_graphs(acoustic: Optional[serving_lib.AcousticModel] = None,
                 vocoder: Optional[serving_lib.Vocoder] = None,
                 controls: Optional[Mapping[str, object]] = None,
                 vocoder_controls: Optional[Mapping[str, object]] = None,
                 stream: bool = False) -> Dict[str, InferenceGraph]:
  """The graphs a pair of models allows: text_to_mel, mel_to_audio, and with both, text_to_audio.

  Args:
    acoustic: a serving `AcousticModel` or None.
    vocoder: a serving `Vocoder` or None.
    controls: the acoustic model's control values (static ones fixed in the graphs).
    vocoder_controls: the vocoder's control values (likewise).
    stream: also `mel_chunk_to_audio` (with a vocoder), last.

  Returns:
    name → `InferenceGraph`, in the order of `GRAPH_NAMES`.
  """
  if acoustic is None and vocoder is None:
    raise ValueError("build_graphs: pass an acoustic model, a vocoder, or both")
  graphs = {}
  if acoustic is not None:
    graphs[TEXT_TO_MEL] = TextToMel(acoustic, controls)
  if vocoder is not None:
    graphs[MEL_TO_AUDIO] = MelToAudio(vocoder, vocoder_controls)
  if len(graphs) == 2:
    graphs[TEXT_TO_AUDIO] = TextToAudio(graphs[TEXT_TO_MEL], graphs[MEL_TO_AUDIO])
  if stream and vocoder is not None:
    graphs[MEL_CHUNK_TO_AUDIO] = MelChunkToAudio(vocoder, vocoder_controls)
  return graphs


# --------------------------------------------------------------------------- #
# Runs and metadata.

METADATA_FILE = "metadata.json"
METADATA_FORMAT = "tfspeech.export"
# 2: one layout for SavedModel, TFLite and TFJS; controls, durations, mel_lengths inputs.
METADATA_VERSION = 2


def in_memory_run(model: str, preset: str, modules: Mapping[str, object],
                  data_info: Mapping[str, object], step: int = 0):
  """A `LoadedRun` for modules built in memory (tests, notebooks, converted weights).

  Args:
    model: registry name.
    preset: the preset the modules were built from.
    modules: name → module, as the task's `build()` returns them.
    data_info: the facts a training run records (sample_rate, hop_length, n_mels,
      mel_config, symbols, cleaners, add_blank, blank_id, ...).
  """
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  task_class = registry.get(model)
  config = task_class.presets[preset]
  task = task_class(config)
  task.modules = dict(modules)
  run_config = training.RunConfig(model=model, preset=preset, model_config=config,
                                  train=task_class.default_train_config(preset),
                                  data_info=dict(data_info))
  return training.LoadedRun(task, run_config, dict(modules), step, None)


def serving_models(acoustic_run=None, vocoder_run=None):
  """(acoustic serving object or None, vocoder serving object or None) of runs, checked."""
  from tfspeech.inference import serving_runs  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  if acoustic_run is None and vocoder_run is None:
    raise ValueError("export: pass an acoustic-model run, a vocoder run, or both")
  acoustic = None if acoustic_run is None else synthesize_lib.acoustic_serving(acoustic_run)
  vocoder = None if vocoder_run is None else serving_runs.serving_of_run(
      vocoder_run, serving_lib.VOCODER, "vocoder")
  if acoustic_run is not None and vocoder_run is not None:
    check_pair(acoustic_run, vocoder)
  return acoustic, vocoder


def check_pair(acoustic_run, vocoder: serving_lib.Vocoder):
  """Raises ValueError when the vocoder was trained on another mel convention."""
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import vocode_lib  # pylint: disable=import-outside-toplevel
  vocoder_facts = vocode_lib.serving_facts(vocoder, "the vocoder's run")
  if vocoder_facts is None:
    return
  problems = synthesize_lib.run_facts(acoustic_run).differences(
      vocoder_facts, corpus_info.MEL_CONVENTION)
  if problems:
    raise ValueError(f"--vocoder: the vocoder was trained on another mel convention than the "
                     f"acoustic model's ({'; '.join(problems)}); use a vocoder trained on the "
                     "same mel convention")


def graphs_for_runs(acoustic_run=None, vocoder_run=None,
                    controls: Optional[Mapping[str, object]] = None,
                    names: Optional[Sequence[str]] = None,
                    vocoder_controls: Optional[Mapping[str, object]] = None,
                    stream: bool = False) -> Dict[str, InferenceGraph]:
  """`build_graphs` for trained runs (an acoustic run and/or a vocoder run), checked as a pair.

  Args:
    controls: the acoustic model's control values (static ones fixed in the graphs).
    names: keep only these graphs (default: all the runs allow).
    vocoder_controls: the vocoder's control values (likewise).
    stream: also mel_chunk_to_audio (needs a vocoder run).

  Raises:
    ValueError: unknown names, or `stream` without a vocoder run.
  """
  if stream and vocoder_run is None:
    raise ValueError("export: --stream adds mel_chunk_to_audio, which needs a vocoder: pass "
                     "--vocoder (or a vocoder --workdir)")
  acoustic, vocoder = serving_models(acoustic_run, vocoder_run)
  graphs = build_graphs(acoustic, vocoder, controls, vocoder_controls, stream)
  if names is None:
    return graphs
  unknown = sorted(set(names) - set(graphs))
  if unknown:
    raise ValueError(f"export: graphs {unknown} cannot be built from these runs (available: "
                     f"{sorted(graphs)}; text_to_audio needs an acoustic and a vocoder run)")
  return {name: graphs[name] for name in graphs if name in names}


def _part(graphs: Mapping[str, InferenceGraph], name: str, attribute: str):
  """Graph `name`, or that half of text_to_audio (its `attribute`), or None (a `FixedShape`
  graph stands for the graph it wraps)."""
  graphs = {key: getattr(graph, "graph", graph) for key, graph in graphs.items()}
  if name in graphs:
    return graphs[name]
  return getattr(graphs.get(TEXT_TO_AUDIO), attribute, None)


def _run_facts(run) -> dict:
  return {"model": run.config.model, "preset": run.config.preset, "step": run.step,
          "model_config": dataclasses.asdict(run.config.model_config)}


def _vocoder_facts(run, graph: MelToAudio, chunk_graph: Optional[MelChunkToAudio]) -> dict:
  vocoder = graph.vocoder
  # mel_chunk_to_audio's context each side of a chunk at the exported controls (only then:
  # a vocoder that cannot stream declares none).
  streaming = {} if chunk_graph is None else {"context_frames": chunk_graph.context_frames}
  return dict(_run_facts(run), sample_rate=int(vocoder.sample_rate),
              hop_length=int(vocoder.hop_length), n_mels=int(vocoder.n_mels),
              mel_config=(None if vocoder.mel_config is None
                          else dataclasses.asdict(vocoder.mel_config)),
              mel_pad_value=float(vocoder.mel_pad_value),
              receptive_field_frames=int(vocoder.receptive_field), **streaming,
              controls=_controls_metadata(vocoder.controls, graph.recommended, graph.static,
                                          vocoder_input_name, graph.runtime),
              noise=_vocoder_noise_metadata(vocoder))


def _controls_metadata(controls, recommended, static, input_name=lambda name: name,
                       runtime=()) -> dict:
  """metadata.json's entry per control: its description, recommended value, and either its
  fixed `value` (static) or its graph `input`. A static control exported as "runtime" has
  that `value` and `replaced_by` its stand-in, which has an entry of its own (an input)."""
  described = {}
  for control in list(controls) + list(runtime):
    value = recommended[control.name]
    described[control.name] = dict(control.metadata(), recommended=(
        list(value) if isinstance(value, tuple) else value))
    if control.static:
      described[control.name]["value"] = static[control.name]
      if static[control.name] == serving_lib.RUNTIME:
        described[control.name]["replaced_by"] = control.runtime.name
    else:
      described[control.name]["input"] = input_name(control.name)
  return described


def _vocoder_noise_metadata(vocoder: serving_lib.Vocoder) -> Optional[dict]:
  if vocoder.noise_channels is None:
    return None
  return {"input": VOCODER_NOISE, "channels": int(vocoder.noise_channels),
          "distribution": "standard normal",
          "length_per_frame": int(vocoder.noise_length(tf.constant(1, tf.int32))),
          "steps_used": "the first noise_length(frames) steps of the batch's padded frames",
          "shorter_noise": "repeated along time (pass length_per_frame x frames steps)"}


def _acoustic_facts(run, graph: TextToMel) -> dict:
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  facts = synthesize_lib.run_facts(run)
  front_end = synthesize_lib.text_front_end(run)
  symbols = front_end.symbols
  acoustic = graph.acoustic
  controls = _controls_metadata(acoustic.controls, graph.recommended, graph.static)
  noise = None
  if acoustic.noise_channels is not None:
    noise = {"input": "noise", "channels": int(acoustic.noise_channels),
             "distribution": "standard normal",
             "frames_used": "the first frames the batch's longest mel needs",
             "shorter_noise": "repeated along time (pass at least the frames the text needs)",
             "frames_hint_per_token": NOISE_FRAMES_PER_TOKEN_HINT}
  return dict(
      _run_facts(run), sample_rate=int(facts.sample_rate),
      hop_length=int(facts.mel_config.hop_length),
      n_mels=int(acoustic.n_mels), mel_config=dataclasses.asdict(facts.mel_config),
      mel_pad_value=facts.mel_pad_value, symbols=symbols.to_dict(),
      add_blank=front_end.add_blank, blank_id=symbols.blank_id, pad_id=symbols.pad_id,
      cleaners=list(front_end.cleaners), arpabet=front_end.cmudict is not None,
      num_speakers=int(acoustic.num_speakers), controls=controls, noise=noise)


def export_metadata(runtime: str, graphs: Mapping[str, InferenceGraph],
                    files: Mapping[str, str], acoustic_run=None, vocoder_run=None,
                    precision: str = "float32", extra: Optional[Mapping] = None) -> dict:
  """metadata.json, one layout for every format: what an app needs to drive the files.

  Top level: the conventions an app needs (sample_rate, hop_length, n_mels, mel_config,
  mel_pad_value; with an acoustic model also its text front end: symbols, add_blank,
  blank_id, pad_id, cleaners, arpabet; num_speakers, `controls` with their recommended
  values and `noise`; with a vocoder, `vocoder_controls` and `vocoder_noise` likewise:
  {} and null when a model declares none; each control gives its fixed "value" when
  static, else its graph "input"), "acoustic" and "vocoder" (model, preset, step, config of each
  exported model; null when absent), and "graphs": per graph its file, inputs and outputs
  (dtype and shape with named dims). Runtimes add keys through `extra` (the SavedModel's
  extra signatures, TFLite's output tensor names).

  Args:
    runtime: "saved_model", "tflite" or "tfjs".
    graphs: the exported `InferenceGraph`s.
    files: graph name → file or folder, relative to metadata.json.
    acoustic_run: `LoadedRun` of the acoustic model, when exported.
    vocoder_run: `LoadedRun` of the vocoder, when exported.
    precision: weight precision of the files.
    extra: more keys.
  """
  import tfspeech  # pylint: disable=import-outside-toplevel
  acoustic_graph = (_part(graphs, TEXT_TO_MEL, "text_to_mel") if acoustic_run is not None
                    else None)
  vocoder_graph = ((_part(graphs, MEL_TO_AUDIO, "mel_to_audio")
                    or graphs.get(MEL_CHUNK_TO_AUDIO)) if vocoder_run is not None else None)
  acoustic = None if acoustic_graph is None else _acoustic_facts(acoustic_run, acoustic_graph)
  vocoder = (None if vocoder_graph is None else
             _vocoder_facts(vocoder_run, vocoder_graph, graphs.get(MEL_CHUNK_TO_AUDIO)))
  if acoustic is None and vocoder is None:
    raise ValueError("export metadata: no acoustic or vocoder graph among the graphs")
  main = acoustic or vocoder
  shared = ("sample_rate", "hop_length", "n_mels", "mel_config", "mel_pad_value")
  text = ("symbols", "add_blank", "blank_id", "pad_id", "cleaners", "arpabet")
  metadata = {
      "format": METADATA_FORMAT, "format_version": METADATA_VERSION, "runtime": runtime,
      "precision": precision, "tfspeech_version": tfspeech.__version__,
      "model": main["model"], "preset": main["preset"],
      **{key: main[key] for key in shared},
      **{key: (acoustic or {}).get(key) for key in text},
      "num_speakers": (acoustic or {}).get("num_speakers", 1),
      "controls": (acoustic or {}).get("controls", {}),
      "noise": (acoustic or {}).get("noise"),
      "vocoder_controls": (vocoder or {}).get("controls", {}),
      "vocoder_noise": (vocoder or {}).get("noise"),
      "acoustic": None if acoustic is None else {
          k: v for k, v in acoustic.items() if k not in text + ("controls", "noise")},
      "vocoder": None if vocoder is None else {
          k: v for k, v in vocoder.items() if k not in ("controls", "noise")},
      "graphs": {name: dict(graph.describe(), file=files[name])
                 for name, graph in graphs.items()},
      # Every runtime has the key (one layout); only TFLite's --fixed_shapes sets it.
      "fixed_shapes": None,
  }
  metadata.update(extra or {})
  return metadata


def write_metadata(metadata: Mapping, out_dir: str) -> str:
  """Writes `metadata.json` into `out_dir`; returns its path."""
  path = os.path.join(out_dir, METADATA_FILE)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(metadata, f, indent=2, ensure_ascii=False)
  return path


# --------------------------------------------------------------------------- #
# Fixed shapes (LiteRT.js).

# Dim labels of `input_dims` / `output_dims` that a fixed-shape graph pins to the token
# count or the frame count (noise_length and "frames * hop_length" are derived from frames).
TOKEN_DIMS = ("tokens",)
FRAME_DIMS = ("frames", "noise_frames")
CLIPPED = "clipped"


def parse_fixed_shapes(value: str) -> Dict[str, int]:
  """"tokens=T,frames=F" → {"tokens": T, "frames": F} (both positive ints).

  Raises:
    ValueError: a malformed value, an unknown or missing key, or a size < 1.
  """
  usage = ("--fixed_shapes: give tokens=T,frames=F (positive ints: padded text ids, mel "
           "frames; e.g. tokens=128,frames=512)")
  sizes = {}
  for part in value.split(","):
    key, sep, size = part.strip().partition("=")
    if not sep or key not in ("tokens", "frames") or key in sizes:
      raise ValueError(f"{usage}; got {value!r}")
    try:
      sizes[key] = int(size)
    except ValueError:
      raise ValueError(f"{usage}; {key}={size!r} is not an int") from None
    if sizes[key] < 1:
      raise ValueError(f"{usage}; {key}={sizes[key]} must be >= 1")
  if len(sizes) != 2:
    raise ValueError(f"{usage}; got {value!r}")
  return sizes


def _fit(tensor, shape):
  """`tensor` cut or zero-padded to the static `shape` (dims dynamic inside the graph: the
  slice and pad keep whatever length the model made, the reshape pins the result)."""
  tensor = tensor[tuple(slice(0, size) for size in shape)]
  paddings = [[0, size - tf.shape(tensor)[axis]] for axis, size in enumerate(shape)]
  return tf.reshape(tf.pad(tensor, paddings), shape)


class FixedShape(InferenceGraph):
  """An inference graph at batch 1 with `tokens` text ids and `frames` mel frames, every
  input and output static (LiteRT.js cannot resize tensors).

  Inputs are the wrapped graph's, padded: text_ids [1, tokens] (text_lengths gives the
  real length), noise [1, frames, channels], mel [1, frames, n_mels] (mel_lengths gives the
  real length), vocoder_noise [1, noise_length(frames), channels]. Outputs are cut or
  zero-padded: mel [1, frames, n_mels], durations [1, tokens], audio [1, frames * hop]; the
  lengths are clipped to `frames` and `clipped` int32 [1] is 1 when the utterance needed
  more frames (its mel and audio then stop at `frames`). Inside, the acoustic model keeps
  its data-dependent mel length; text_to_audio pads that mel to `frames` before the
  vocoder, which then runs at static shapes.

  Args:
    graph: a `TextToMel`, `MelToAudio` or `TextToAudio`.
    tokens: padded text length (graphs with text inputs).
    frames: padded mel length.
  """

  def __init__(self, graph: InferenceGraph, tokens: int, frames: int):
    super().__init__(name=graph.name)
    self.name = graph.name
    self.graph = graph
    self.tokens, self.frames = int(tokens), int(frames)
    vocoder = getattr(graph, "mel_to_audio", graph if isinstance(graph, MelToAudio) else None)
    self.hop_length = None if vocoder is None else vocoder.hop_length
    noise_length = (None if vocoder is None or not vocoder.has_noise
                    else int(vocoder.vocoder.noise_length(tf.constant(self.frames))))
    self.sizes = {"batch": 1, "tokens": self.tokens, "frames": self.frames,
                  "noise_frames": self.frames, "noise_length": noise_length,
                  "frames * hop_length": (None if vocoder is None
                                          else self.frames * self.hop_length)}
    self.input_dims = graph.input_dims
    self.output_dims = dict(graph.output_dims, **{CLIPPED: ["batch"]})
    specs = [tf.TensorSpec(self._shape(spec, graph.input_dims[spec.name]), spec.dtype,
                           name=spec.name) for spec in graph.function.input_signature]
    self.output_specs = {
        name: tf.TensorSpec(self._shape(spec, self.output_dims[name]), spec.dtype)
        for name, spec in dict(graph.output_specs,
                               **{CLIPPED: tf.TensorSpec([None], tf.int32)}).items()}
    self.function = named_function(specs, self._fixed)

  def _shape(self, spec, labels):
    unknown = [label for label, size in zip(labels, spec.shape.as_list())
               if size is None and self.sizes.get(label) is None]
    if unknown:
      raise ValueError(f"--fixed_shapes: input {spec.name} of {self.name} has a dim of any "
                       f"length ({unknown[0]}), which a fixed-shape graph cannot hold; export "
                       "it without --control=...=runtime (e.g. --control=steps=6)")
    return [self.sizes[label] if size is None else size
            for label, size in zip(labels, spec.shape.as_list())]

  def _fixed(self, *args):
    graph = self.graph
    if isinstance(graph, MelToAudio):
      out = graph._mel_to_audio(*args)  # pylint: disable=protected-access
      lengths = out["audio_lengths"] // self.hop_length
    elif isinstance(graph, TextToMel):
      out = graph.mel(**graph.split_args(args))
      lengths = out["mel_lengths"]
    else:
      named = graph.split_args(args)
      vocoder_noise = named.pop("vocoder_noise")
      vocoder_controls = named.pop("vocoder_controls")
      out = graph.text_to_mel.mel(**named)
      lengths = out["mel_lengths"]
      out["mel"] = _fit(out["mel"], self.output_specs["mel"].shape)
      out["mel_lengths"] = tf.minimum(lengths, self.frames)
      out.update(graph.mel_to_audio.audio(out["mel"], out["mel_lengths"], vocoder_noise,
                                          vocoder_controls))
    out = {name: _fit(value, self.output_specs[name].shape) for name, value in out.items()}
    for name in ("mel_lengths", "audio_lengths"):
      if name in out:
        limit = self.frames * (self.hop_length if name == "audio_lengths" else 1)
        out[name] = tf.minimum(out[name], limit)
    out[CLIPPED] = tf.cast(lengths > self.frames, tf.int32)
    return out

  def describe(self) -> dict:
    return dict(super().describe(), fixed_shapes={"batch": 1, "tokens": self.tokens,
                                                  "frames": self.frames})


def fix_shapes(graphs: Mapping[str, InferenceGraph], tokens: int, frames: int
               ) -> Dict[str, InferenceGraph]:
  """Every graph as a `FixedShape` graph (batch 1, `tokens`, `frames`)."""
  return {name: FixedShape(graph, tokens, frames) for name, graph in graphs.items()}
