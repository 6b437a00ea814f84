"""SavedModel export of trained runs: Grad-TTS, HiFi-GAN, or the pair end to end.

  acoustic = tfspeech.training.load_run("runs/gradtts")
  vocoder = tfspeech.training.load_run("runs/hifigan")
  export_saved_model("exported/tts", acoustic, vocoder, n_timesteps=10)

The SavedModel holds only the models' weights (HiFi-GAN with weight norm folded) and the
serving signatures below; every batch and length dim is `None`. Grad-TTS's reverse diffusion
is unrolled into `n_timesteps` loop-free decoder steps fixed at export. Which signatures
exist depends on the runs given: the acoustic model's three, the vocoder's `mel_to_audio`,
and with both the end-to-end `text_to_audio` pair. `metadata.json` beside it lists them.

Acoustic model (Grad-TTS):

  text_to_mel(text_ids int32 [batch, tokens], text_lengths int32 [batch],
              noise_seeds int32 [batch, 2], temperature float32 [], length_scale float32 []
              [, speaker int32 [batch]])
    → mel float32 [batch, frames, n_mels] (0 past each item's length),
      mel_lengths int32 [batch], mel_encoder float32 [batch, frames, n_mels] (prior mean),
      alignment float32 [batch, tokens, frames] (0/1 token-to-frame path)
    Item b's terminal noise is stateless Philox normal noise from `noise_seeds[b]`, the
    same as `tfspeech.inference.synthesize_texts` draws for seed (s, k) = noise_seeds[b].

  text_to_mel_with_noise(text_ids, text_lengths, noise float32 [batch, noise_frames, n_mels],
                         temperature, length_scale [, speaker])
    → the same outputs, with the caller's standard normal noise (for runtimes without
      stateless random ops, and for bit-exact parity tests). `noise_frames` must be at least
      `mel_frames_bound(...)`; only the first `frames` are used, so an item's output does
      not depend on `noise_frames`.

  mel_frames_bound(text_ids, text_lengths, length_scale [, speaker]) → frames int32 []
    An upper bound on the noise frames `text_to_mel_with_noise` needs (encoder only).

Vocoder (HiFi-GAN):

  mel_to_audio(mel float32 [batch, frames, n_mels], mel_lengths int32 [batch])
    → audio float32 [batch, frames * hop_length] (0 past each item's length),
      audio_lengths int32 [batch] (= mel_lengths * hop_length)

Both (end to end, one call per batch of sentences):

  text_to_audio(the inputs of text_to_mel) and
  text_to_audio_with_noise(the inputs of text_to_mel_with_noise)
    → audio, audio_lengths (as mel_to_audio), mel, mel_lengths (as text_to_mel)

Ids are what `metadata.json`'s symbol table gives: clean the text with its `cleaners`,
map symbols to ids and, when the table has a blank, put the blank id before, between and
after every id (see `tfspeech.text.symbols`).
"""

import dataclasses
import json
import os
from typing import Optional

import tensorflow as tf

import tfspeech
from tfspeech.inference import synthesize_lib
from tfspeech.inference import vocode_lib

METADATA_FILE = "metadata.json"
FORMAT = "tfspeech.saved_model"
FORMAT_VERSION = 2

TEXT_TO_MEL = "text_to_mel"
TEXT_TO_MEL_WITH_NOISE = "text_to_mel_with_noise"
MEL_FRAMES_BOUND = "mel_frames_bound"
MEL_TO_AUDIO = "mel_to_audio"
TEXT_TO_AUDIO = "text_to_audio"
TEXT_TO_AUDIO_WITH_NOISE = "text_to_audio_with_noise"

_IDS = {"text_ids": "int32 [batch, tokens]", "text_lengths": "int32 [batch]"}
_SCALES = {"temperature": "float32 []", "length_scale": "float32 []"}
_MEL_OUTPUTS = {"mel": "float32 [batch, frames, n_mels]", "mel_lengths": "int32 [batch]"}
_AUDIO_OUTPUTS = {"audio": "float32 [batch, frames * hop_length]",
                  "audio_lengths": "int32 [batch]"}
# Signature name → inputs and outputs, for metadata.json (speaker inputs are added there).
SIGNATURES = {
    TEXT_TO_MEL: {
        "inputs": dict(_IDS, noise_seeds="int32 [batch, 2]", **_SCALES),
        "outputs": dict(_MEL_OUTPUTS, mel_encoder="float32 [batch, frames, n_mels]",
                        alignment="float32 [batch, tokens, frames]")},
    TEXT_TO_MEL_WITH_NOISE: {
        "inputs": dict(_IDS, noise="float32 [batch, noise_frames >= mel_frames_bound, n_mels]",
                       **_SCALES),
        "outputs": "as text_to_mel"},
    MEL_FRAMES_BOUND: {
        "inputs": dict(_IDS, length_scale="float32 []"),
        "outputs": {"frames": "int32 []"}},
    MEL_TO_AUDIO: {
        "inputs": {"mel": "float32 [batch, frames, n_mels]", "mel_lengths": "int32 [batch]"},
        "outputs": dict(_AUDIO_OUTPUTS)},
    TEXT_TO_AUDIO: {
        "inputs": "as text_to_mel",
        "outputs": dict(_AUDIO_OUTPUTS, **_MEL_OUTPUTS)},
    TEXT_TO_AUDIO_WITH_NOISE: {
        "inputs": "as text_to_mel_with_noise",
        "outputs": dict(_AUDIO_OUTPUTS, **_MEL_OUTPUTS)},
}


class SpeechInference(tf.Module):
  """The inference-only module saved by `export_saved_model`.

  Holds every weight in a flat list (Keras 3 hides layers kept in Python lists from TF
  tracking, see `tfspeech.training.checkpoints`) and the serving `tf.function`s, which close
  over the models.

  Args:
    model: a `GradTTS`, or None for a vocoder-only export.
    generator: a `HifiGanGenerator` (weight norm is folded away), or None.
    n_timesteps: reverse-diffusion steps, unrolled into the graph.

  Raises:
    ValueError: neither model given, bad `n_timesteps`, or mel bins that do not match.
  """

  def __init__(self, model=None, generator=None, n_timesteps: int = 10,
               name: Optional[str] = None):
    super().__init__(name=name)
    if model is None and generator is None:
      raise ValueError("SavedModel export: pass an acoustic model, a vocoder, or both")
    if not isinstance(n_timesteps, int) or isinstance(n_timesteps, bool) or n_timesteps < 1:
      raise ValueError(f"n_timesteps must be a positive int, got {n_timesteps!r}")
    if generator is not None and generator.weight_norm:
      generator = generator.remove_weight_norm()
    if model is not None and generator is not None and (
        model.config.n_feats != generator.config.num_mels):
      raise ValueError(f"SavedModel export: the acoustic model makes {model.config.n_feats}-bin "
                       f"mels but the vocoder takes {generator.config.num_mels}; pair models "
                       "trained on the same mel convention")
    self.n_timesteps = n_timesteps
    self.model_weights = (list(model.weights) if model is not None else []) + (
        list(generator.weights) if generator is not None else [])
    self._functions = {}
    if model is not None:
      self._add_acoustic(model)
    if generator is not None:
      self._add_vocoder(generator)
    if model is not None and generator is not None:
      self._add_end_to_end()

  def _add_acoustic(self, model):
    n_timesteps = self.n_timesteps
    ids_specs = [tf.TensorSpec([None, None], tf.int32, name="text_ids"),
                 tf.TensorSpec([None], tf.int32, name="text_lengths")]
    scale_specs = [tf.TensorSpec([], tf.float32, name="temperature"),
                   tf.TensorSpec([], tf.float32, name="length_scale")]
    speaker_specs = ([tf.TensorSpec([None], tf.int32, name="speaker")]
                     if model.config.n_spks > 1 else [])
    self._seeded_specs = (ids_specs + [tf.TensorSpec([None, 2], tf.int32, name="noise_seeds")]
                          + scale_specs + speaker_specs)
    self._noise_specs = (ids_specs + [tf.TensorSpec([None, None, model.config.n_feats],
                                                    tf.float32, name="noise")]
                         + scale_specs + speaker_specs)

    def seeded(text_ids, text_lengths, noise_seeds, temperature, length_scale, speaker=None):
      return synthesize_lib.synthesize_mels(
          model, text_ids, text_lengths, noise_seeds, n_timesteps, temperature, length_scale,
          speaker=speaker, unroll=True)

    def with_noise(text_ids, text_lengths, noise, temperature, length_scale, speaker=None):
      return model.synthesize(
          text_ids, text_lengths, n_timesteps=n_timesteps, temperature=temperature,
          length_scale=length_scale, speaker=speaker, noise=noise, unroll=True)

    def outputs(out):
      return {"mel": out.mel_decoded, "mel_lengths": out.mel_lengths,
              "mel_encoder": out.mel_encoder, "alignment": out.alignment}

    self._seeded_mels, self._noise_mels = seeded, with_noise
    self.text_to_mel = tf.function(lambda *args: outputs(seeded(*args)),
                                   input_signature=self._seeded_specs)
    self.text_to_mel_with_noise = tf.function(lambda *args: outputs(with_noise(*args)),
                                              input_signature=self._noise_specs)

    def mel_frames_bound(text_ids, text_lengths, length_scale, speaker=None):
      return {"frames": synthesize_lib.frames_upper_bound(model, text_ids, text_lengths,
                                                          length_scale, speaker)}
    self.mel_frames_bound = tf.function(mel_frames_bound, input_signature=(
        ids_specs + scale_specs[1:] + speaker_specs))
    self._functions.update({TEXT_TO_MEL: self.text_to_mel,
                            TEXT_TO_MEL_WITH_NOISE: self.text_to_mel_with_noise,
                            MEL_FRAMES_BOUND: self.mel_frames_bound})

  def _add_vocoder(self, generator):
    self._vocode = vocode_lib.make_vocode_fn(generator)

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, generator.config.num_mels], tf.float32, name="mel"),
        tf.TensorSpec([None], tf.int32, name="mel_lengths")])
    def mel_to_audio(mel, mel_lengths):
      audio, audio_lengths = self._vocode(mel, mel_lengths)
      return {"audio": audio, "audio_lengths": audio_lengths}
    self.mel_to_audio = mel_to_audio
    self._functions[MEL_TO_AUDIO] = mel_to_audio

  def _add_end_to_end(self):
    def audio_outputs(out):
      audio, audio_lengths = self._vocode(out.mel_decoded, out.mel_lengths)
      return {"audio": audio, "audio_lengths": audio_lengths, "mel": out.mel_decoded,
              "mel_lengths": out.mel_lengths}

    self.text_to_audio = tf.function(lambda *args: audio_outputs(self._seeded_mels(*args)),
                                     input_signature=self._seeded_specs)
    self.text_to_audio_with_noise = tf.function(
        lambda *args: audio_outputs(self._noise_mels(*args)), input_signature=self._noise_specs)
    self._functions.update({TEXT_TO_AUDIO: self.text_to_audio,
                            TEXT_TO_AUDIO_WITH_NOISE: self.text_to_audio_with_noise})

  def signatures(self) -> dict:
    """Signature name → concrete function, for `tf.saved_model.save`."""
    return {name: fn.get_concrete_function() for name, fn in self._functions.items()}


def _acoustic_metadata(acoustic_run, n_timesteps: int) -> dict:
  """The acoustic model's audio and text conventions: symbols, cleaners, mel, config."""
  facts = synthesize_lib.run_facts(acoustic_run)
  front_end = synthesize_lib.text_front_end(acoustic_run)
  config = synthesize_lib.acoustic_model(acoustic_run).config
  symbols = front_end.symbols
  return {
      "model": acoustic_run.config.model,
      "preset": acoustic_run.config.preset,
      "step": acoustic_run.step,
      "sample_rate": int(facts["sample_rate"]),
      "hop_length": int(facts["mel_config"]["hop_length"]),
      "n_mels": int(facts["mel_config"]["n_mels"]),
      "mel_config": facts["mel_config"],
      "mel_pad_value": facts.get("mel_pad_value"),
      "symbols": symbols.to_dict(),
      "add_blank": front_end.add_blank,
      "blank_id": symbols.blank_id,
      "pad_id": symbols.pad_id,
      "cleaners": list(front_end.cleaners),
      "arpabet": front_end.cmudict is not None,
      "num_speakers": config.n_spks,
      "n_timesteps": n_timesteps,
      "unrolled": True,
      "noise": {"distribution": "standard normal", "stateless_algorithm":
                synthesize_lib.NOISE_ALGORITHM},
      "model_config": dataclasses.asdict(config),
  }


def vocoder_generator(vocoder_run):
  """The HiFi-GAN generator of a vocoder run; ValueError naming the run otherwise."""
  module = vocoder_run.modules.get(synthesize_lib.VOCODER_MODULE)
  if module is None or not hasattr(module, "remove_weight_norm"):
    raise ValueError(f"vocoder: run of model {vocoder_run.config.model!r} has no HiFi-GAN "
                     f"{synthesize_lib.VOCODER_MODULE!r} module (it has "
                     f"{sorted(vocoder_run.modules)}); pass a hifigan workdir")
  return module


def vocoder_metadata(vocoder_run) -> dict:
  """The vocoder's facts: model, preset, step, config, sample rate, hop, mel convention."""
  info = dict(vocoder_run.config.data_info or {})
  config = vocoder_generator(vocoder_run).config
  return {"model": vocoder_run.config.model, "preset": vocoder_run.config.preset,
          "step": vocoder_run.step, "model_config": dataclasses.asdict(config),
          "sample_rate": info.get("sample_rate"), "hop_length": config.hop_length,
          "n_mels": config.num_mels, "mel_config": info.get("mel_config"),
          "mel_pad_value": info.get("mel_pad_value")}


def check_pair(acoustic_run, vocoder_run):
  """Raises ValueError when the vocoder was trained on another mel convention."""
  acoustic_mel = synthesize_lib.run_facts(acoustic_run)["mel_config"]
  vocoder_mel = (vocoder_run.config.data_info or {}).get("mel_config")
  if vocoder_mel is not None and vocoder_mel != acoustic_mel:
    raise ValueError(f"--vocoder: the vocoder was trained on mels {vocoder_mel} but the "
                     f"acoustic model makes {acoustic_mel}; use a vocoder trained on the same "
                     "mel convention")


def acoustic_metadata(loaded_run, n_timesteps: int) -> dict:
  """metadata.json of an acoustic-only export (also the base of TFLite/TFJS metadata)."""
  return saved_model_metadata(loaded_run, None, n_timesteps)


def saved_model_metadata(acoustic_run=None, vocoder_run=None, n_timesteps: int = 10) -> dict:
  """What an app needs next to the SavedModel: conventions, models, signatures.

  With an acoustic run the top level holds its text and audio conventions; a vocoder's facts
  go under "vocoder" (at the top level too for a vocoder-only export).
  """
  if acoustic_run is None and vocoder_run is None:
    raise ValueError("SavedModel export: pass an acoustic-model run, a vocoder run, or both")
  names = []
  if acoustic_run is not None:
    metadata = _acoustic_metadata(acoustic_run, n_timesteps)
    names += [TEXT_TO_MEL, TEXT_TO_MEL_WITH_NOISE, MEL_FRAMES_BOUND]
    multi_speaker = metadata["num_speakers"] > 1
  else:
    metadata = vocoder_metadata(vocoder_run)
    multi_speaker = False
  if vocoder_run is not None:
    metadata["vocoder"] = vocoder_metadata(vocoder_run)
    names.append(MEL_TO_AUDIO)
  if acoustic_run is not None and vocoder_run is not None:
    names += [TEXT_TO_AUDIO, TEXT_TO_AUDIO_WITH_NOISE]
  metadata.update({
      "format": FORMAT,
      "format_version": FORMAT_VERSION,
      "tfspeech_version": tfspeech.__version__,
      "signatures": {name: SIGNATURES[name] for name in names},
      "speaker_input": ("every text_to_* and mel_frames_bound signature also takes speaker "
                        "int32 [batch]" if multi_speaker else None),
  })
  return metadata


def export_saved_model(out_dir: str, acoustic_run=None, vocoder_run=None,
                       n_timesteps: int = 10) -> str:
  """Writes the SavedModel of trained runs and `metadata.json` into `out_dir`.

  Args:
    out_dir: the SavedModel folder (created; must be empty or absent).
    acoustic_run: `tfspeech.training.load_run(workdir)` of a grad_tts run, or None.
    vocoder_run: a hifigan run, or None. With both: the end-to-end signatures too.
    n_timesteps: reverse-diffusion steps, unrolled into the graph.

  Returns:
    `out_dir`.

  Raises:
    ValueError: no run, runs of the wrong kind or of different mel conventions, bad
      `n_timesteps`, or `out_dir` not empty.
  """
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    raise ValueError(f"export: {out_dir} is not empty; choose a new folder")
  if acoustic_run is not None and vocoder_run is not None:
    check_pair(acoustic_run, vocoder_run)
  metadata = saved_model_metadata(acoustic_run, vocoder_run, n_timesteps)
  model = None if acoustic_run is None else synthesize_lib.acoustic_model(acoustic_run)
  generator = None if vocoder_run is None else vocoder_generator(vocoder_run)
  module = SpeechInference(model, generator, n_timesteps)
  tf.saved_model.save(module, out_dir, signatures=module.signatures())
  with open(os.path.join(out_dir, METADATA_FILE), "w", encoding="utf-8") as f:
    json.dump(metadata, f, indent=2, ensure_ascii=False)
  return out_dir


def export_acoustic_saved_model(loaded_run, out_dir: str, n_timesteps: int = 10) -> str:
  """`export_saved_model` of an acoustic run alone (the three text_to_mel signatures)."""
  return export_saved_model(out_dir, loaded_run, None, n_timesteps)
