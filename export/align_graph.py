"""The `align` inference graph: audio + transcript ids → frames per token (forced alignment).

  align
    audio float32 [batch, samples] (at the run's sample rate, 0 past each length),
    audio_lengths int32 [batch], text_ids int32 [batch, tokens], text_lengths int32 [batch],
    speaker int32 [batch]                                   (multi-speaker models)
      →  durations int32 [batch, tokens] (mel frames per token, 0 for padding tokens;
           sum = mel_lengths), mel_lengths int32 [batch] (= audio_lengths // hop_length for
           the HiFi-GAN padding), score float32 [batch] (mean log-likelihood per frame and
           mel bin along the path: higher is a more confident alignment)

Everything runs in the graph: the log-mel of the samples (`tfspeech.audio.MelSpectrogram`
with the run's mel convention), the text encoder, the log-likelihood of every (token,
frame) pair under the model's alignment prior, and monotonic alignment search
(`tfspeech.ops.alignment.maximum_path`), so a phone or a browser aligns without a host-side
MAS. Batch, samples and tokens are `None`; padding is masked, and each item is padded for
the STFT at its own ends (`ItemMel`), so a batch gives exactly the durations of its items
aligned one by one. With `tflite_compatible=True` MAS stores its per-frame results in
preallocated tensors (TFLite builtins at any shape) and the DFT is a matmul with a cos/sin
basis (no RFFT op); the durations are the same (see `tfspeech.ops.alignment.maximum_path`).

Models: any acoustic model whose serving `alignment_prior()` returns one (Grad-TTS: its encoder's
means mu and the prior N(mel; mu, I), the log-likelihood its
training step runs MAS on). Other acoustic models raise ValueError (see `prior_of`).

Silence (`pause_ids`): prepared corpora are trimmed, so a model sees silence only at the
ends of its utterances and learns no token for a pause inside one. Under N(mel; mu, I) a
silent frame scores ~1000 nats worse on any token but the edge ones, so MAS drags the words
towards the ends to give the silence to the first or last token (measured on a tiny run:
mean word-edge error 469 ms on tests/data/aligned_words, 0.15 s gaps between words). With
`pause_ids` (the ids that separate words: space, punctuation, pad), a frame
at the log-mel floor (mean over bins within `SILENCE_MARGIN` of the floor) scores 0 (above
any Gaussian log-density here) on those tokens, so silence goes to the pause between the
words it separates; other frames and tokens keep the model's log-likelihood.
"""

import math
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from tfspeech.audio import mel as mel_lib
from tfspeech.export import inference_graphs
from tfspeech.models import serving as serving_lib
from tfspeech.ops import alignment
from tfspeech.ops.sequence import sequence_mask

ALIGN = "align"
# A frame whose mean log-mel is within this much of the floor (the log of the clamp, what
# digital silence gives) is silent; natural-log units (about 4.3 dB).
SILENCE_MARGIN = 1.0


def prior_of(acoustic: serving_lib.AcousticModel):
  """The alignment prior of a serving acoustic model; ValueError for models without one."""
  prior = getattr(acoustic, "alignment_prior", lambda: None)()
  if prior is None:
    from tfspeech.inference import serving_runs  # pylint: disable=import-outside-toplevel
    raise ValueError(f"align: {type(acoustic).__name__} has no alignment prior the aligner can "
                     "use (serving.AcousticModel.alignment_prior); align with a run of "
                     f"{' or '.join(serving_runs.models_that_align())}")
  return prior


class ItemMel(tf.Module):
  """Log-mels of a zero-padded `[batch, samples]` batch, each item padded at its own ends.

  `MelSpectrogram` pads the batch's ends, so a short item's last frames would read the
  next zeros instead of its reflection; here every item is padded as if it were alone (its
  own reflect padding, gathered per item), so its frames equal `MelSpectrogram` of the item
  by itself and a batch aligns exactly like its items one by one.

  Args:
    config: the `MelConfig`.
    matmul_dft: the DFT as a matmul with a windowed cos/sin basis instead of the RFFT op
      (TFLite builtins, and TFJS kernels, at any frame count); equal up to float rounding.
  """

  def __init__(self, config: mel_lib.MelConfig, matmul_dft: bool = False, name=None):
    super().__init__(name=name)
    self.config = config
    self.filterbank = mel_lib.mel_filterbank(config)
    self.window = mel_lib.hann_window(config)
    self.matmul_dft = matmul_dft
    if matmul_dft:
      n_fft = config.n_fft
      # k * n reduced mod n_fft in integers: exact angles in float64 for any size.
      phase = (np.arange(n_fft)[:, None] * np.arange(n_fft // 2 + 1)[None, :]) % n_fft
      angle = 2.0 * math.pi * phase / n_fft
      window = self.window.numpy().astype(np.float64)[:, None]  # graph-ok: constant setup.
      self.cos = tf.constant((window * np.cos(angle)).astype(np.float32))
      self.sin = tf.constant((window * -np.sin(angle)).astype(np.float32))

  def _padded(self, audio, lengths):
    """Each item's reflect (or zero) padding at its own ends; past that, anything."""
    config = self.config
    width = mel_lib._stft_pad_width(config)  # pylint: disable=protected-access
    if config.padding == "center_constant":
      return tf.pad(audio, [[0, 0], [width, width]])
    # np.pad(mode="reflect") per item: position p folds into [0, length) with period
    # 2 * (length - 1), as `mel._reflect_pad_any_length` does for one signal.
    positions = tf.expand_dims(tf.range(-width, tf.shape(audio)[1] + width), 0)
    count = tf.expand_dims(tf.maximum(lengths, 1), 1)
    period = tf.maximum(2 * (count - 1), 1)
    folded = tf.math.floormod(positions, period)
    index = tf.where(folded >= count, period - folded, folded)
    return tf.gather(audio, index, batch_dims=1)

  def __call__(self, audio, lengths):
    """`[batch, frames, n_mels]` log-mels of `audio` (0 past each of `lengths`)."""
    config = self.config
    frames = tf.signal.frame(self._padded(audio, lengths), config.n_fft, config.hop_length)
    if self.matmul_dft:
      real, imag = tf.matmul(frames, self.cos), tf.matmul(frames, self.sin)
    else:
      spectrum = tf.signal.rfft(frames * self.window)
      real, imag = tf.math.real(spectrum), tf.math.imag(spectrum)
    energy = tf.square(real) + tf.square(imag)
    if config.magnitude_eps:
      energy += config.magnitude_eps
    if config.power == 1:
      magnitude = tf.sqrt(energy)
    elif config.power == 2:
      magnitude = energy
    else:
      magnitude = tf.pow(energy, config.power / 2.0)
    return mel_lib.log_compress(tf.matmul(magnitude, self.filterbank), config)


class Align(inference_graphs.InferenceGraph):
  """A serving acoustic model with an alignment prior as the `align` graph.

  Args:
    acoustic: a serving `AcousticModel` (see `prior_of`).
    mel_config: the run's mel convention (what its training mels were made with).
    tflite_compatible: MAS and the DFT in TFLite-builtin form (see the module docstring).
    pause_ids: token ids silent frames may go to (see the module docstring); None aligns
      on the model's log-likelihood alone, exactly the training step's MAS.

  Raises:
    ValueError: a model without an alignment prior, or a mel convention with another
      number of bins than the model's.
  """
  name = ALIGN

  def __init__(self, acoustic: serving_lib.AcousticModel, mel_config: mel_lib.MelConfig,
               tflite_compatible: bool = False, pause_ids=None, name: Optional[str] = None):
    super().__init__(name=name)
    self.acoustic = acoustic
    self.prior = prior_of(acoustic)
    if mel_config.n_mels != self.prior.n_mels:
      raise ValueError(f"align: the run's mels have {mel_config.n_mels} bins but the model "
                       f"takes {self.prior.n_mels}")
    self.model_weights = list(acoustic.weights)
    self.mel_config = mel_config
    self.hop_length = mel_config.hop_length
    self.sample_rate = mel_config.sample_rate
    self.tflite_compatible = tflite_compatible
    self.mel = ItemMel(mel_config, matmul_dft=tflite_compatible)
    self.multi_speaker = acoustic.num_speakers > 1
    self.pause_ids = None if pause_ids is None else tf.constant(sorted(pause_ids), tf.int32)
    if mel_config.log is None:
      self.silence_floor = None
    else:
      floor = float(mel_lib.log_compress(tf.constant(0.0), mel_config))
      scale = 1.0 if mel_config.log == "natural" else float(
          mel_lib.log_compress(tf.constant(math.e), mel_config)
          - mel_lib.log_compress(tf.constant(1.0), mel_config))
      self.silence_floor = floor + SILENCE_MARGIN * scale
    self.function = inference_graphs.named_function(self.signature(), self._align)
    self.input_dims = {"audio": ["batch", "samples"], "audio_lengths": ["batch"],
                       "text_ids": ["batch", "tokens"], "text_lengths": ["batch"],
                       "speaker": ["batch"]}
    self.output_specs = {"durations": tf.TensorSpec([None, None], tf.int32),
                         "mel_lengths": tf.TensorSpec([None], tf.int32),
                         "score": tf.TensorSpec([None], tf.float32)}
    self.output_dims = {"durations": ["batch", "tokens"], "mel_lengths": ["batch"],
                        "score": ["batch"]}

  def signature(self) -> list:
    specs = [tf.TensorSpec([None, None], tf.float32, name="audio"),
             tf.TensorSpec([None], tf.int32, name="audio_lengths"),
             tf.TensorSpec([None, None], tf.int32, name="text_ids"),
             tf.TensorSpec([None], tf.int32, name="text_lengths")]
    if self.multi_speaker:
      specs.append(tf.TensorSpec([None], tf.int32, name="speaker"))
    return specs

  def num_frames(self, audio_lengths):
    """Mel frames of `audio_lengths` samples (int or int tensor)."""
    return mel_lib.num_frames(audio_lengths, self.mel_config)

  def align(self, audio, audio_lengths, text_ids, text_lengths, speaker=None) -> dict:
    """The traced body: {"durations", "mel_lengths", "score"} (see the module docstring)."""
    mask = sequence_mask(audio_lengths, tf.shape(audio)[1])
    mel = self.mel(audio * mask, audio_lengths)  # [batch, frames, n_mels]
    frames = tf.shape(mel)[1]
    mel_lengths = tf.clip_by_value(self.num_frames(audio_lengths), 0, frames)
    log_likelihood = self.prior.log_likelihood(text_ids, text_lengths, mel, speaker)
    path = alignment.maximum_path(self._pause_silence(log_likelihood, text_ids, mel),
                                  text_lengths, mel_lengths,
                                  tflite_compatible=self.tflite_compatible)
    durations = tf.cast(tf.reduce_sum(path, axis=2), tf.int32)
    # Mean over the path's cells of the log-density per mel bin: comparable across lengths.
    total = tf.reduce_sum(tf.reduce_sum(path * log_likelihood, axis=2), axis=1)
    cells = tf.cast(tf.maximum(mel_lengths, 1) * self.prior.n_mels, tf.float32)
    return {"durations": durations, "mel_lengths": mel_lengths, "score": total / cells}

  def _pause_silence(self, log_likelihood, text_ids, mel):
    """`[batch, tokens, frames]` log-likelihood with silent frames given to pause tokens."""
    if self.pause_ids is None or self.silence_floor is None:
      return log_likelihood
    silent = tf.reduce_mean(mel, axis=2) < self.silence_floor  # [batch, frames]
    pause = tf.reduce_any(tf.expand_dims(text_ids, 2) == tf.reshape(self.pause_ids, [1, 1, -1]),
                          axis=2)  # [batch, tokens]
    both = tf.logical_and(tf.expand_dims(pause, 2), tf.expand_dims(silent, 1))
    return tf.where(both, tf.zeros_like(log_likelihood), log_likelihood)

  def _align(self, *args):
    named = dict(zip([spec.name for spec in self.signature()], args))
    return self.align(named["audio"], named["audio_lengths"], named["text_ids"],
                      named["text_lengths"], named.get("speaker"))


# --------------------------------------------------------------------------- #
# Export.


def floor_divisions(saved_model_dir: str) -> int:
  """Rewrites every TruncateDiv of a frozen SavedModel to FloorDiv, for TFJS; returns how many.

  MAS's backtrack divides an int by a runtime 1 (`maximum_path`: it keeps XLA from fusing
  across steps) with TruncateDiv, which tfjs 4.22 lacks ("Unsupported Ops ... TruncateDiv").
  Divided by 1 both give x exactly. The ops sit in the MAS loop bodies (library functions,
  which `frozen_graph` does not rewrite), so the file itself is edited; the converter reads
  it in its own process.
  """
  import itertools  # pylint: disable=import-outside-toplevel
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel
  path = os.path.join(saved_model_dir, "saved_model.pb")
  saved = saved_model_pb2.SavedModel()
  with open(path, "rb") as f:
    saved.ParseFromString(f.read())
  count = 0
  for meta_graph in saved.meta_graphs:
    graph_def = meta_graph.graph_def
    for node in itertools.chain(graph_def.node,
                                *(f.node_def for f in graph_def.library.function)):
      if node.op == "TruncateDiv":
        node.op = "FloorDiv"
        count += 1
  with open(path, "wb") as f:
    f.write(saved.SerializeToString())
  return count


FORMATS = ("saved_model", "tflite", "tfjs")


def _metadata(runtime, graph: Align, file: str, run, precision: str) -> dict:
  """metadata.json of an align-only export (the layout of `inference_graphs.export_metadata`:
  the run's text front end and mel convention, and graphs.align)."""
  text_to_mel = inference_graphs.TextToMel(graph.acoustic)
  metadata = inference_graphs.export_metadata(
      runtime, {inference_graphs.TEXT_TO_MEL: text_to_mel}, {inference_graphs.TEXT_TO_MEL: ""},
      acoustic_run=run, precision=precision)
  # Synthesis controls and noise do not apply to alignment.
  metadata.update(controls={}, noise=None, graphs={ALIGN: dict(graph.describe(), file=file)})
  return metadata


def add_to_export(run, fmt: str, out_dir: str, precision: str = "float32",
                  converter: Optional[str] = None) -> dict:
  """Writes the `align` graph of `run` into `out_dir` as `fmt`; returns {name: path}.

  Files: saved_model `OUT/align/` (signature "align"), tflite `OUT/align.tflite`, tfjs
  `OUT/align/model.json`. A `metadata.json` already in `out_dir` (a `tfspeech-export` of
  the same run and format, e.g. for the web demo) gains `graphs.align`; else one is written.

  Raises:
    ValueError: unknown format, a model without an alignment prior, an existing
      metadata.json of another runtime or model, or `align` already there.
  """
  import json  # pylint: disable=import-outside-toplevel
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  if fmt not in FORMATS:
    raise ValueError(f"--format={fmt!r} is not one of {', '.join(FORMATS)}")
  acoustic = synthesize_lib.acoustic_serving(run)
  mel_config = synthesize_lib.run_facts(run).mel_config
  existing_path = os.path.join(out_dir, inference_graphs.METADATA_FILE)
  existing = None
  if os.path.isfile(existing_path):
    with open(existing_path, encoding="utf-8") as f:
      existing = json.load(f)
    if existing.get("runtime") != fmt or existing.get("model") != run.config.model:
      raise ValueError(f"--export={out_dir} holds a {existing.get('runtime')} export of "
                       f"{existing.get('model')!r}; pass an empty folder or a {fmt} export of "
                       f"{run.config.model!r}")
    if ALIGN in existing.get("graphs", {}):
      raise ValueError(f"--export={out_dir} already has an align graph")
  elif os.path.isdir(out_dir) and os.listdir(out_dir):
    raise ValueError(f"--export={out_dir} is neither empty nor a tfspeech-export folder")
  os.makedirs(out_dir, exist_ok=True)
  # The TFLite file needs the builtin-only forms; TFJS takes either, and the preallocated
  # MAS keeps its loop body free of TensorArrays, which tfjs runs slowly.
  from tfspeech.inference import align_lib  # pylint: disable=import-outside-toplevel
  # The silence rule of `tfspeech-align` (align_lib.Aligner), so every runtime aligns alike.
  pause_ids = align_lib.pause_ids(synthesize_lib.text_front_end(run).symbols)
  graph = Align(acoustic, mel_config, tflite_compatible=fmt != "saved_model",
                pause_ids=pause_ids)
  if fmt == "saved_model":
    path = os.path.join(out_dir, ALIGN)
    tf.saved_model.save(graph, path, signatures={ALIGN: graph.concrete_function()})
    file = ALIGN
  elif fmt == "tflite":
    from tfspeech.export import tflite  # pylint: disable=import-outside-toplevel
    path = tflite.export_graphs({ALIGN: graph}, out_dir, precision)[ALIGN]
    file = os.path.basename(path)
  else:
    import tempfile  # pylint: disable=import-outside-toplevel
    from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
    from tfspeech.export import frozen_graph  # pylint: disable=import-outside-toplevel
    with tempfile.TemporaryDirectory(prefix="tfspeech_align_tfjs_") as frozen_dir:
      # tfjs.export_graphs reuses the frozen SavedModel it finds in frozen_dir.
      floor_divisions(frozen_graph.save_frozen_saved_models({ALIGN: graph}, frozen_dir)[ALIGN])
      path = tfjs.export_graphs({ALIGN: graph}, out_dir, precision, converter,
                                frozen_dir=frozen_dir)[ALIGN]
    file = f"{ALIGN}/model.json"
  if existing is None:
    metadata = _metadata(fmt, graph, file, run, precision)
  else:
    metadata = existing
    metadata["graphs"][ALIGN] = dict(graph.describe(), file=file)
  if fmt == "tflite":
    from tfspeech.export import tflite  # pylint: disable=import-outside-toplevel
    metadata["graphs"][ALIGN]["output_tensors"] = tflite.output_tensors(path)
  return {ALIGN: path, "metadata": inference_graphs.write_metadata(metadata, out_dir)}
