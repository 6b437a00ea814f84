"""Inference-only `tf.Module`s that the TFLite and TFJS exporters convert.

Each module wraps trained Keras modules (no copies of the Grad-TTS weights; the HiFi-GAN
generator is the weight-norm-free copy from `remove_weight_norm()`), and exposes one
`tf.function` whose input signature names every input and leaves batch and length dims
`None`. None of them contains control flow, random ops or Python callbacks, so the graphs
run synchronously in TFJS (`GraphModel.execute`) and with TFLite builtins only.

  mel_to_audio   (HiFi-GAN)
    mel float32 [batch, frames, n_mels]  →  audio float32 [batch, frames * hop_length]

  text_to_mel    (Grad-TTS)
    text_ids int32 [batch, tokens], text_lengths int32 [batch],
    noise float32 [batch, noise_frames, n_mels], temperature float32 [],
    length_scale float32 [] (+ speaker int32 [batch] for multi-speaker models)
      →  mel float32 [batch, frames, n_mels] (0 past each length), mel_lengths int32 [batch]

  text_to_audio  (Grad-TTS then HiFi-GAN in one graph)
    the inputs of text_to_mel  →  audio float32 [batch, frames * hop_length],
    audio_lengths int32 [batch] (= mel_lengths * hop_length), mel, mel_lengths

Grad-TTS decision: the reverse diffusion is unrolled into `n_timesteps` copies of the
decoder step fixed at export (a `tf.while_loop` would become TensorList/While ops that
TFLite builtins lack and that force TFJS's `executeAsync`), and the terminal noise is an
input rather than a random op, so TF, TFLite and TFJS give the same mel for the same noise
(tests compare them) and an app chooses its own random source. Only the first `frames`
noise frames are used; shorter noise is repeated along time to the length the text needs,
so any `noise_frames >= 1` works, but for independent noise pass at least the frames the
text will take (metadata.json: `noise.frames_hint_per_token`).
"""

from typing import Dict, List, Mapping, Optional, Sequence

import tensorflow as tf

from tfspeech.export import saved_model
from tfspeech.inference import synthesize_lib

MEL_TO_AUDIO = "mel_to_audio"
TEXT_TO_MEL = "text_to_mel"
TEXT_TO_AUDIO = "text_to_audio"
GRAPH_NAMES = (TEXT_TO_MEL, MEL_TO_AUDIO, TEXT_TO_AUDIO)

# Frames of noise per input token that cover typical speech (Grad-TTS with blanks speaks
# ~2-4 frames per id); only a hint for apps, see the module docstring.
NOISE_FRAMES_PER_TOKEN_HINT = 8


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


class MelToAudio(InferenceGraph):
  """HiFi-GAN generator as `mel_to_audio`; weight norm is folded away first.

  Args:
    generator: a `HifiGanGenerator` (with or without weight norm).
  """
  name = MEL_TO_AUDIO

  def __init__(self, generator, name: Optional[str] = None):
    super().__init__(name=name)
    if generator.weight_norm:
      generator = generator.remove_weight_norm()
    self.generator = generator
    self.model_weights = list(generator.weights)
    config = generator.config
    self.n_mels = config.num_mels
    self.hop_length = config.hop_length
    self.function = tf.function(self._mel_to_audio, input_signature=[
        tf.TensorSpec([None, None, self.n_mels], tf.float32, name="mel")])
    self.input_dims = {"mel": ["batch", "frames", "n_mels"]}
    self.output_specs = {"audio": tf.TensorSpec([None, None], tf.float32)}
    self.output_dims = {"audio": ["batch", "frames * hop_length"]}

  def _mel_to_audio(self, mel):
    return {"audio": self.generator(mel)}


def _cyclic_frames(noise, frames):
  """`[batch, >=1, n]` noise repeated along time and cut to `frames`: `[batch, frames, n]`."""
  repeats = (frames + tf.shape(noise)[1] - 1) // tf.shape(noise)[1]
  return tf.tile(noise, tf.stack([1, repeats, 1]))[:, :frames]


class TextToMel(InferenceGraph):
  """Grad-TTS as `text_to_mel` with `n_timesteps` unrolled decoder steps and noise input.

  Args:
    model: a `GradTTS` (its weights are used directly, not copied).
    n_timesteps: reverse-diffusion steps (Python int >= 1) fixed in the graph.
  """
  name = TEXT_TO_MEL

  def __init__(self, model, n_timesteps: int = 10, name: Optional[str] = None):
    super().__init__(name=name)
    if not isinstance(n_timesteps, int) or isinstance(n_timesteps, bool) or n_timesteps < 1:
      raise ValueError(f"TextToMel: n_timesteps must be a positive int, got {n_timesteps!r}")
    self.model = model
    self.model_weights = list(model.weights)
    self.n_timesteps = n_timesteps
    self.n_mels = model.config.n_feats
    self.multi_speaker = model.config.n_spks > 1
    self.function = tf.function(self._text_to_mel, input_signature=self._signature())
    self.input_dims = {"text_ids": ["batch", "tokens"], "text_lengths": ["batch"],
                       "noise": ["batch", "noise_frames", "n_mels"], "temperature": [],
                       "length_scale": [], "speaker": ["batch"]}
    self.output_specs = {"mel": tf.TensorSpec([None, None, self.n_mels], tf.float32),
                         "mel_lengths": tf.TensorSpec([None], tf.int32)}
    self.output_dims = {"mel": ["batch", "frames", "n_mels"], "mel_lengths": ["batch"]}

  def _signature(self):
    specs = [tf.TensorSpec([None, None], tf.int32, name="text_ids"),
             tf.TensorSpec([None], tf.int32, name="text_lengths"),
             tf.TensorSpec([None, None, self.n_mels], tf.float32, name="noise"),
             tf.TensorSpec([], tf.float32, name="temperature"),
             tf.TensorSpec([], tf.float32, name="length_scale")]
    if self.multi_speaker:
      specs.append(tf.TensorSpec([None], tf.int32, name="speaker"))
    return specs

  def mel(self, text_ids, text_lengths, noise, temperature, length_scale, speaker=None):
    """The traced body: `SynthesisOutput` of the unrolled synthesis (also used by TextToAudio)."""
    frames = synthesize_lib.frames_upper_bound(self.model, text_ids, text_lengths,
                                               length_scale, speaker)
    return self.model.synthesize(
        text_ids, text_lengths, n_timesteps=self.n_timesteps, temperature=temperature,
        length_scale=length_scale, speaker=speaker, noise=_cyclic_frames(noise, frames),
        unroll=True)

  def _text_to_mel(self, text_ids, text_lengths, noise, temperature, length_scale,
                   speaker=None):
    out = self.mel(text_ids, text_lengths, noise, temperature, length_scale, speaker)
    return {"mel": out.mel_decoded, "mel_lengths": out.mel_lengths}


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
    self.function = tf.function(self._text_to_audio,
                                input_signature=text_to_mel.function.input_signature)
    self.input_dims = text_to_mel.input_dims
    self.output_specs = dict(text_to_mel.output_specs,
                             audio=tf.TensorSpec([None, None], tf.float32),
                             audio_lengths=tf.TensorSpec([None], tf.int32))
    self.output_dims = dict(text_to_mel.output_dims, audio=["batch", "frames * hop_length"],
                            audio_lengths=["batch"])

  def _text_to_audio(self, text_ids, text_lengths, noise, temperature, length_scale,
                     speaker=None):
    out = self.text_to_mel.mel(text_ids, text_lengths, noise, temperature, length_scale,
                               speaker)
    audio = self.mel_to_audio.generator(out.mel_decoded)
    return {"mel": out.mel_decoded, "mel_lengths": out.mel_lengths, "audio": audio,
            "audio_lengths": out.mel_lengths * self.hop_length}


def build_graphs(acoustic_model=None, generator=None, n_timesteps: int = 10
                 ) -> Dict[str, InferenceGraph]:
  """The graphs a pair of models allows: text_to_mel, mel_to_audio, and with both, text_to_audio.

  Args:
    acoustic_model: a `GradTTS` or None.
    generator: a `HifiGanGenerator` or None.
    n_timesteps: Grad-TTS decoder steps unrolled into the graph.

  Returns:
    name → `InferenceGraph`, in the order of `GRAPH_NAMES`.
  """
  if acoustic_model is None and generator is None:
    raise ValueError("build_graphs: pass an acoustic model, a vocoder generator, or both")
  graphs = {}
  if acoustic_model is not None:
    graphs[TEXT_TO_MEL] = TextToMel(acoustic_model, n_timesteps)
  if generator is not None:
    graphs[MEL_TO_AUDIO] = MelToAudio(generator)
  if len(graphs) == 2:
    graphs[TEXT_TO_AUDIO] = TextToAudio(graphs[TEXT_TO_MEL], graphs[MEL_TO_AUDIO])
  return graphs


# --------------------------------------------------------------------------- #
# Runs and metadata.


def in_memory_run(model: str, preset: str, modules: Mapping[str, object],
                  data_info: Mapping[str, object], step: int = 0):
  """A `LoadedRun` for modules built in memory (tests, notebooks, converted weights).

  Args:
    model: registry name ("grad_tts", "hifigan").
    preset: the preset the modules were built from.
    modules: name → module, as the task builds them ({"grad_tts": GradTTS} or
      {"generator": HifiGanGenerator}).
    data_info: the facts a training run records (sample_rate, hop_length, n_mels,
      mel_config, symbols, cleaners, add_blank, blank_id, ...).
  """
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  task_class = registry.get(model)
  config = task_class.presets[preset]
  run_config = training.RunConfig(model=model, preset=preset, model_config=config,
                                  train=task_class.default_train_config(preset),
                                  data_info=dict(data_info))
  return training.LoadedRun(None, run_config, dict(modules), step, None)


vocoder_generator = saved_model.vocoder_generator
check_pair = saved_model.check_pair


def graphs_for_runs(acoustic_run=None, vocoder_run=None, n_timesteps: int = 10,
                    names: Optional[Sequence[str]] = None) -> Dict[str, InferenceGraph]:
  """`build_graphs` for trained runs (a grad_tts run and/or a hifigan run), checked as a pair.

  Args:
    names: keep only these graphs (default: all the runs allow).
  """
  if acoustic_run is None and vocoder_run is None:
    raise ValueError("export: pass an acoustic-model run, a vocoder run, or both")
  acoustic = None if acoustic_run is None else synthesize_lib.acoustic_model(acoustic_run)
  generator = None if vocoder_run is None else vocoder_generator(vocoder_run)
  if acoustic_run is not None and vocoder_run is not None:
    check_pair(acoustic_run, vocoder_run)
  graphs = build_graphs(acoustic, generator, n_timesteps)
  if names is None:
    return graphs
  unknown = sorted(set(names) - set(graphs))
  if unknown:
    raise ValueError(f"export: graphs {unknown} cannot be built from these runs (available: "
                     f"{sorted(graphs)}; text_to_audio needs an acoustic and a vocoder run)")
  return {name: graphs[name] for name in graphs if name in names}


def export_metadata(runtime: str, graphs: Mapping[str, InferenceGraph],
                    files: Mapping[str, str], acoustic_run=None, vocoder_run=None,
                    precision: str = "float32", extra: Optional[Mapping] = None) -> dict:
  """What an app needs beside the exported files to drive them without tfspeech.

  The acoustic part reuses the SavedModel exporter's `acoustic_metadata` (symbols, cleaners,
  add_blank, mel convention, model config); its SavedModel signatures are replaced by
  `graphs`: file, inputs and outputs (dtype and shape with named dims) per exported graph.

  Args:
    runtime: "tflite" or "tfjs".
    graphs: the exported `InferenceGraph`s.
    files: graph name → file or folder, relative to metadata.json.
    acoustic_run: `LoadedRun` of the acoustic model, when exported.
    vocoder_run: `LoadedRun` of the vocoder, when exported.
    precision: weight precision of the files.
    extra: more keys (e.g. conversion notes).
  """
  import tfspeech  # pylint: disable=import-outside-toplevel
  acoustic_graph = graphs.get(TEXT_TO_MEL) or getattr(graphs.get(TEXT_TO_AUDIO), "text_to_mel",
                                                      None)
  if acoustic_run is not None and acoustic_graph is not None:
    metadata = saved_model.acoustic_metadata(acoustic_run, acoustic_graph.n_timesteps)
    for saved_model_only in ("signatures", "speaker_input"):
      metadata.pop(saved_model_only, None)
    metadata["noise"] = {
        "distribution": "standard normal", "input": "noise",
        "frames_used": "the first max(mel_lengths) rounded up to the U-Net multiple",
        "shorter_noise": "repeated along time (pass at least the frames the text needs)",
        "frames_hint_per_token": NOISE_FRAMES_PER_TOKEN_HINT}
  else:
    metadata = saved_model.vocoder_metadata(vocoder_run)
    metadata.pop("model_config")
    metadata["tfspeech_version"] = tfspeech.__version__
  if vocoder_run is not None:
    metadata["vocoder"] = saved_model.vocoder_metadata(vocoder_run)
  metadata.update({
      "format": "tfspeech.export",
      "format_version": 1,
      "runtime": runtime,
      "precision": precision,
      "graphs": {name: dict(graph.describe(), file=files[name]) for name, graph in graphs.items()},
  })
  metadata.update(extra or {})
  return metadata
