"""SavedModel export of a trained acoustic model (Grad-TTS), with `metadata.json` beside it.

  run = tfspeech.training.load_run("runs/gradtts")
  export_acoustic_saved_model(run, "exported/gradtts", n_timesteps=10)

The SavedModel holds only the model's weights and these serving signatures (every batch
and length dim is `None`; the reverse diffusion is unrolled into `n_timesteps` loop-free
decoder steps fixed at export):

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

METADATA_FILE = "metadata.json"
FORMAT = "tfspeech.acoustic_saved_model"
FORMAT_VERSION = 1


class AcousticInference(tf.Module):
  """The inference-only module saved by `export_acoustic_saved_model`.

  Holds every weight of the model in a flat list (Keras 3 hides layers kept in Python lists
  from TF tracking, see `tfspeech.training.checkpoints`) and the serving `tf.function`s,
  which close over the model.

  Args:
    model: a `GradTTS`.
    n_timesteps: reverse-diffusion steps, unrolled into the graph.
  """

  def __init__(self, model, n_timesteps: int, name: Optional[str] = None):
    super().__init__(name=name)
    if not isinstance(n_timesteps, int) or n_timesteps < 1:
      raise ValueError(f"n_timesteps must be a positive int, got {n_timesteps!r}")
    self.model_weights = list(model.weights)
    self.n_timesteps = n_timesteps
    config = model.config
    multi_speaker = config.n_spks > 1
    ids_specs = [tf.TensorSpec([None, None], tf.int32, name="text_ids"),
                 tf.TensorSpec([None], tf.int32, name="text_lengths")]
    scale_specs = [tf.TensorSpec([], tf.float32, name="temperature"),
                   tf.TensorSpec([], tf.float32, name="length_scale")]
    speaker_specs = [tf.TensorSpec([None], tf.int32, name="speaker")] if multi_speaker else []

    def outputs(out):
      return {"mel": out.mel_decoded, "mel_lengths": out.mel_lengths,
              "mel_encoder": out.mel_encoder, "alignment": out.alignment}

    def text_to_mel(text_ids, text_lengths, noise_seeds, temperature, length_scale,
                    speaker=None):
      return outputs(synthesize_lib.synthesize_mels(
          model, text_ids, text_lengths, noise_seeds, n_timesteps, temperature,
          length_scale, speaker=speaker, unroll=True))

    def text_to_mel_with_noise(text_ids, text_lengths, noise, temperature, length_scale,
                               speaker=None):
      return outputs(model.synthesize(
          text_ids, text_lengths, n_timesteps=n_timesteps, temperature=temperature,
          length_scale=length_scale, speaker=speaker, noise=noise, unroll=True))

    def mel_frames_bound(text_ids, text_lengths, length_scale, speaker=None):
      return {"frames": synthesize_lib.frames_upper_bound(model, text_ids, text_lengths,
                                                          length_scale, speaker)}

    self.text_to_mel = tf.function(text_to_mel, input_signature=(
        ids_specs + [tf.TensorSpec([None, 2], tf.int32, name="noise_seeds")] + scale_specs
        + speaker_specs))
    self.text_to_mel_with_noise = tf.function(text_to_mel_with_noise, input_signature=(
        ids_specs + [tf.TensorSpec([None, None, config.n_feats], tf.float32, name="noise")]
        + scale_specs + speaker_specs))
    self.mel_frames_bound = tf.function(mel_frames_bound, input_signature=(
        ids_specs + scale_specs[1:] + speaker_specs))

  def signatures(self) -> dict:
    """Signature name → concrete function, for `tf.saved_model.save`."""
    return {"text_to_mel": self.text_to_mel.get_concrete_function(),
            "text_to_mel_with_noise": self.text_to_mel_with_noise.get_concrete_function(),
            "mel_frames_bound": self.mel_frames_bound.get_concrete_function()}


def acoustic_metadata(loaded_run, n_timesteps: int) -> dict:
  """What an app needs next to the SavedModel: audio and text conventions, signatures."""
  facts = synthesize_lib.run_facts(loaded_run)
  front_end = synthesize_lib.text_front_end(loaded_run)
  config = synthesize_lib.acoustic_model(loaded_run).config
  symbols = front_end.symbols
  return {
      "format": FORMAT,
      "format_version": FORMAT_VERSION,
      "tfspeech_version": tfspeech.__version__,
      "model": loaded_run.config.model,
      "preset": loaded_run.config.preset,
      "step": loaded_run.step,
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
      "signatures": {
          "text_to_mel": {
              "inputs": {"text_ids": "int32 [batch, tokens]", "text_lengths": "int32 [batch]",
                         "noise_seeds": "int32 [batch, 2]", "temperature": "float32 []",
                         "length_scale": "float32 []"},
              "outputs": {"mel": "float32 [batch, frames, n_mels]",
                          "mel_lengths": "int32 [batch]",
                          "mel_encoder": "float32 [batch, frames, n_mels]",
                          "alignment": "float32 [batch, tokens, frames]"}},
          "text_to_mel_with_noise": {
              "inputs": {"text_ids": "int32 [batch, tokens]", "text_lengths": "int32 [batch]",
                         "noise": "float32 [batch, noise_frames >= mel_frames_bound, n_mels]",
                         "temperature": "float32 []", "length_scale": "float32 []"},
              "outputs": "as text_to_mel"},
          "mel_frames_bound": {
              "inputs": {"text_ids": "int32 [batch, tokens]", "text_lengths": "int32 [batch]",
                         "length_scale": "float32 []"},
              "outputs": {"frames": "int32 []"}},
      },
      "speaker_input": ("every signature also takes speaker int32 [batch]"
                        if config.n_spks > 1 else None),
  }


def export_acoustic_saved_model(loaded_run, out_dir: str, n_timesteps: int = 10) -> str:
  """Writes the SavedModel of a trained acoustic model run and `metadata.json` into `out_dir`.

  Args:
    loaded_run: `tfspeech.training.load_run(workdir)` of a grad_tts run.
    out_dir: the SavedModel folder (created; must not hold a SavedModel already).
    n_timesteps: reverse-diffusion steps, unrolled into the graph.

  Returns:
    `out_dir`.

  Raises:
    ValueError: not an acoustic-model run, bad `n_timesteps`, or `out_dir` not empty.
  """
  model = synthesize_lib.acoustic_model(loaded_run)
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    raise ValueError(f"export: {out_dir} is not empty; choose a new folder")
  metadata = acoustic_metadata(loaded_run, n_timesteps)
  module = AcousticInference(model, n_timesteps)
  tf.saved_model.save(module, out_dir, signatures=module.signatures())
  with open(os.path.join(out_dir, METADATA_FILE), "w", encoding="utf-8") as f:
    json.dump(metadata, f, indent=2, ensure_ascii=False)
  return out_dir
