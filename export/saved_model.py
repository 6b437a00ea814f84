"""SavedModel export of trained runs: an acoustic model, a vocoder, or the pair end to end.

  acoustic = tfspeech.training.load_run("runs/tts")
  vocoder = tfspeech.training.load_run("runs/vocoder")
  export_saved_model("exported/tts", acoustic, vocoder, controls={"temperature": 1.3})

The SavedModel holds only the models' weights and the serving signatures; every batch and
length dim is `None`. Its shared signatures are the `text_to_mel`, `mel_to_audio` and
`text_to_audio` functions of `export.inference_graphs` (the same inputs and outputs as the
TFLite and TFJS files; see that module), which exist as the runs allow. A model that draws
noise gets extra signatures on the same modules:

  text_to_mel_seeded / text_to_audio_seeded / mel_to_audio_seeded
    the inputs of the graph with its noise inputs (`noise`, `vocoder_noise`) replaced by
    one noise_seeds int32 [batch, 2] → the same outputs. Item b's noise is stateless
    Philox normal noise from `noise_seeds[b]` (the vocoder's from its fold-in, see
    `tfspeech.inference.vocode_lib`), the noise `tfspeech.inference.synthesize_texts`
    (and tfspeech-vocode) draw for seed (s, k) = noise_seeds[b], so they reproduce its
    mels and audio. text_to_audio_seeded exists when either model draws noise,
    mel_to_audio_seeded when the vocoder does.

  mel_frames_bound(the inputs of text_to_mel without noise) → frames int32 []
    The noise frames the model needs for these inputs (shorter noise is repeated).

`metadata.json` beside it has the layout of every export (`inference_graphs.export_metadata`)
plus "signatures", the extra signatures' inputs and outputs.

Ids are what `metadata.json`'s symbol table gives: clean the text with its `cleaners`,
map symbols to ids and, when the table has a blank, put the blank id before, between and
after every id (see `tfspeech.text.symbols`).
"""

import os
from typing import Mapping, Optional

import tensorflow as tf

from tfspeech.export import inference_graphs
from tfspeech.export import progress
from tfspeech.inference import synthesize_lib
from tfspeech.inference import vocode_lib
from tfspeech.models import unrolled

TEXT_TO_MEL = inference_graphs.TEXT_TO_MEL
MEL_TO_AUDIO = inference_graphs.MEL_TO_AUDIO
TEXT_TO_AUDIO = inference_graphs.TEXT_TO_AUDIO
TEXT_TO_MEL_SEEDED = "text_to_mel_seeded"
TEXT_TO_AUDIO_SEEDED = "text_to_audio_seeded"
MEL_TO_AUDIO_SEEDED = "mel_to_audio_seeded"
NOISE_SEEDS = "noise_seeds"
_SEEDS_SPEC = tf.TensorSpec([None, 2], tf.int32, name=NOISE_SEEDS)
MEL_FRAMES_BOUND = "mel_frames_bound"
METADATA_FILE = inference_graphs.METADATA_FILE


class SpeechInference(tf.Module):
  """The inference-only module saved by `export_saved_model`.

  Holds every weight in a flat list (Keras 3 hides layers kept in Python lists from TF
  tracking, see `tfspeech.training.checkpoints`) and the serving `tf.function`s: the
  graphs' own functions, plus the seeded variants and the frame bound on the same modules.

  Args:
    graphs: name → `InferenceGraph` (see `inference_graphs.build_graphs`).
  """

  def __init__(self, graphs: Mapping[str, inference_graphs.InferenceGraph],
               name: Optional[str] = None):
    super().__init__(name=name)
    self.graphs = dict(graphs)
    weights = {}
    for graph in graphs.values():
      for variable in getattr(graph, "model_weights", []):
        weights[id(variable)] = variable
    self.model_weights = list(weights.values())
    # The graphs' bodies as new tf.functions: traced by `save_graphs` (where unrolled steps stay
    # calls), they leave each graph's own function, which TFLite and TFJS freeze and which
    # needs its calls inlined, untraced by this module.
    self._functions = {name: tf.function(graph.function.python_function,
                                         input_signature=graph.function.input_signature)
                       for name, graph in graphs.items()}
    text_to_audio = graphs.get(TEXT_TO_AUDIO)
    text_to_mel = graphs.get(TEXT_TO_MEL) or getattr(text_to_audio, "text_to_mel", None)
    mel_to_audio = graphs.get(MEL_TO_AUDIO) or getattr(text_to_audio, "mel_to_audio", None)
    if text_to_mel is not None and text_to_mel.has_noise:
      self._add_text_to_mel_seeded(text_to_mel)
    if mel_to_audio is not None and mel_to_audio.has_noise:
      self._add_mel_to_audio_seeded(mel_to_audio)
    if text_to_audio is not None and (text_to_mel.has_noise or mel_to_audio.has_noise):
      self._add_text_to_audio_seeded(text_to_audio)

  def _seeded_mel(self, text_to_mel, named):
    """text_to_mel's outputs for named inputs whose noise is drawn from `noise_seeds`."""
    args = text_to_mel.split_args([named.get(spec.name) for spec in text_to_mel.signature()])
    if text_to_mel.has_noise:
      frames = text_to_mel.frames_bound(args["text_ids"], args["text_lengths"],
                                        args["speaker"], args["controls"])
      args["noise"] = synthesize_lib.seeded_noise(text_to_mel.acoustic, named[NOISE_SEEDS],
                                                  frames)
    return text_to_mel.mel(**args)

  def _seeded_audio(self, mel_to_audio, named, mel, mel_lengths):
    """mel_to_audio's outputs with its noise drawn from `noise_seeds` (vocode_lib's stream)."""
    vocoder = mel_to_audio.split_vocoder_args(named)
    vocoder["noise"] = vocode_lib.vocoder_noise(mel_to_audio.vocoder, named[NOISE_SEEDS],
                                                tf.shape(mel)[1])
    return mel_to_audio.audio(mel, mel_lengths, **vocoder)

  def _add_text_to_mel_seeded(self, text_to_mel):
    seeded_specs = text_to_mel.signature(_SEEDS_SPEC)
    names = [spec.name for spec in seeded_specs]
    self.text_to_mel_seeded = inference_graphs.named_function(
        seeded_specs, lambda *args: self._seeded_mel(text_to_mel, dict(zip(names, args))))
    self._functions[TEXT_TO_MEL_SEEDED] = self.text_to_mel_seeded

    bound_specs = [spec for spec in text_to_mel.signature() if spec.name != "noise"]

    def frames_bound(*args):
      named = dict(zip([spec.name for spec in bound_specs], args))
      controls = dict(text_to_mel.static,
                      **{c.name: named[c.name] for c in text_to_mel.dynamic})
      return {"frames": text_to_mel.frames_bound(named["text_ids"], named["text_lengths"],
                                                 named.get("speaker"), controls)}
    self.mel_frames_bound = inference_graphs.named_function(bound_specs, frames_bound)
    self._functions[MEL_FRAMES_BOUND] = self.mel_frames_bound

  def _add_mel_to_audio_seeded(self, mel_to_audio):
    seeded_specs = mel_to_audio.signature(_SEEDS_SPEC)
    names = [spec.name for spec in seeded_specs]

    def mel_to_audio_seeded(*args):
      named = dict(zip(names, args))
      return self._seeded_audio(mel_to_audio, named, named["mel"], named["mel_lengths"])
    self.mel_to_audio_seeded = inference_graphs.named_function(seeded_specs,
                                                               mel_to_audio_seeded)
    self._functions[MEL_TO_AUDIO_SEEDED] = self.mel_to_audio_seeded

  def _add_text_to_audio_seeded(self, text_to_audio):
    text_to_mel, mel_to_audio = text_to_audio.text_to_mel, text_to_audio.mel_to_audio
    acoustic = (text_to_mel.signature(_SEEDS_SPEC) if text_to_mel.has_noise
                else text_to_mel.signature() + [_SEEDS_SPEC])
    seeded_specs = acoustic + mel_to_audio.vocoder_specs(False)
    names = [spec.name for spec in seeded_specs]

    def text_to_audio_seeded(*args):
      named = dict(zip(names, args))
      out = self._seeded_mel(text_to_mel, named)
      return dict(out, **self._seeded_audio(mel_to_audio, named, out["mel"],
                                            out["mel_lengths"]))
    self.text_to_audio_seeded = inference_graphs.named_function(seeded_specs,
                                                                text_to_audio_seeded)
    self._functions[TEXT_TO_AUDIO_SEEDED] = self.text_to_audio_seeded

  def signatures(self) -> dict:
    """Signature name → concrete function, for `tf.saved_model.save` (traced here)."""
    signatures = {}
    for name, fn in self._functions.items():
      with progress.step(f"{name}: traced"):
        signatures[name] = fn.get_concrete_function()
    return signatures

  def extra_signatures(self) -> dict:
    """metadata.json's "signatures": the SavedModel-only signatures, inputs and outputs."""
    described = {}
    for name, fn in self._functions.items():
      if name in self.graphs:
        continue
      concrete = fn.get_concrete_function()
      inputs = {spec.name: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
                for spec in fn.input_signature}
      outputs = {key: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
                 for key, spec in concrete.structured_outputs.items()}
      described[name] = {"inputs": inputs, "outputs": outputs}
    return described


def export_saved_model(out_dir: str, acoustic_run=None, vocoder_run=None,
                       controls: Optional[Mapping[str, object]] = None,
                       vocoder_controls: Optional[Mapping[str, object]] = None) -> str:
  """Writes the SavedModel of trained runs and `metadata.json` into `out_dir`.

  Args:
    out_dir: the SavedModel folder (created; must be empty or absent).
    acoustic_run: `tfspeech.training.load_run(workdir)` of an acoustic-model run, or None.
    vocoder_run: a vocoder run, or None. With both: the end-to-end signatures too.
    controls: the acoustic model's control values: static ones are fixed in the graphs,
      the others recorded as recommendations in metadata.json.
    vocoder_controls: the vocoder's control values, likewise.

  Returns:
    `out_dir`.

  Raises:
    ValueError: no run, runs of the wrong kind or of different mel conventions, bad
      controls, or `out_dir` not empty.
  """
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    raise ValueError(f"export: {out_dir} is not empty; choose a new folder")
  graphs = inference_graphs.graphs_for_runs(acoustic_run, vocoder_run, controls,
                                            vocoder_controls=vocoder_controls)
  return save_graphs(graphs, out_dir, acoustic_run, vocoder_run)


def save_graphs(graphs: Mapping[str, inference_graphs.InferenceGraph], out_dir: str,
                acoustic_run=None, vocoder_run=None) -> str:
  """`export_saved_model` for graphs already built from the runs (e.g. with
  mel_chunk_to_audio): the SavedModel of their `SpeechInference` and `metadata.json`.

  Returns:
    `out_dir`.
  """
  # Unrolled steps stay calls of one function: the loaded model's first call optimizes one
  # U-Net, not ten inlined copies (tfspeech.models.unrolled).
  with unrolled.calls_not_inlined():
    module = SpeechInference(graphs)
    signatures = module.signatures()
    # No gradients: an inference export does not differentiate, and each custom gradient in
    # the graphs (a layer's, once per unrolled step) would be traced and stored with them.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    with progress.step("SavedModel written"):
      tf.saved_model.save(module, out_dir, signatures=signatures, options=options)
  metadata = inference_graphs.export_metadata(
      "saved_model", graphs, {name: "." for name in graphs}, acoustic_run, vocoder_run,
      extra={"signatures": module.extra_signatures()})
  inference_graphs.write_metadata(metadata, out_dir)
  return out_dir
