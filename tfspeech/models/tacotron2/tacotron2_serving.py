"""Tacotron 2 behind the `tfspeech.models.serving.AcousticModel` interface.

Decoding is one `tf.while_loop` over decoder steps (`Tacotron2.infer`): every loop variable
keeps its shape, each item stops at its own gate, and `max_decoder_steps` (a graph input)
bounds it. Unlike the loop-free graphs the interface describes, an autoregressive decoder
cannot be unrolled; the export form (`Tacotron2Serving(model)`, `preallocated=True`) stores
frames in preallocated tensors so TFLite converts the loop to one builtin WHILE, and
`in_process()` uses TensorArrays (faster in plain graph mode).

Randomness: the prenet keeps its 0.5 dropout at inference (as the reference). Its keep/drop
decisions are read from the `noise` input (`noise_channels = 2 * prenet_dim`, standard
normal; a unit is kept where its noise value is >= the dropout rate's normal quantile, 0 for
0.5), frame `t` reading noise frame `t mod noise_frames`. So the same noise gives the same mel
in TF, TFLite and TFJS, and an item decoded alone equals the same item in a batch.

Durations: frames per token from the attention, each valid frame counted for the token with
the largest weight (`durations_from_alignments`); rows sum to the mel lengths. They describe
where the attention was, not a hard alignment the model was trained with.
"""

import tensorflow as tf

from tfspeech.models import serving
from tfspeech.models.tacotron2.tacotron2_model import durations_from_alignments

# The reference's limit (hparams.py max_decoder_steps); presets may train with another.
DEFAULT_MAX_DECODER_STEPS = 1000

CONTROLS = (
    serving.Control("max_decoder_steps", "int32", DEFAULT_MAX_DECODER_STEPS,
                    "most mel frames per item (decoding stops there if the stop gate never "
                    "fires)", minimum=1),
)


class Tacotron2Serving(serving.AcousticModel):
  """A trained `Tacotron2` as an acoustic model (its weights are used, not copied).

  Args:
    model: a `Tacotron2`.
    preallocated: frames go to preallocated tensors (TFLite-convertible loop); False uses
      TensorArrays (`in_process()`).
  """
  controls = CONTROLS

  def __init__(self, model, preallocated: bool = True):
    self.model = model
    self.preallocated = preallocated
    self._in_process = self if not preallocated else None
    self.n_mels = model.config.n_mel_channels
    self.noise_channels = model.config.prenet_noise_channels

  @property
  def weights(self):
    return list(self.model.weights)

  def in_process(self):
    """The same model with TensorArray loop storage (see `serving.AcousticModel.in_process`)."""
    if self._in_process is None:
      self._in_process = Tacotron2Serving(self.model, preallocated=False)
    return self._in_process

  def frames_bound(self, text_ids, text_lengths, speaker=None,
                   max_decoder_steps=DEFAULT_MAX_DECODER_STEPS, **unused):
    """Noise frames `synthesize` reads: one per decoder step."""
    del text_ids, text_lengths, speaker, unused
    return tf.cast(max_decoder_steps, tf.int32)

  def synthesize(self, text_ids, text_lengths, noise, speaker=None,
                 max_decoder_steps=DEFAULT_MAX_DECODER_STEPS):
    """Decodes a batch; see the module docstring. Extra output: "alignments"."""
    del speaker
    out = self.model.infer(text_ids, text_lengths, noise, max_decoder_steps=max_decoder_steps,
                           preallocated=self.preallocated)
    durations = durations_from_alignments(out["alignments"], out["mel_lengths"], text_lengths)
    return {"mel": out["mel"], "mel_lengths": out["mel_lengths"], "durations": durations,
            "alignments": out["alignments"]}

  def ground_truth_aligned(self, text_ids, text_lengths, mel, mel_lengths, noise,
                           speaker=None, max_decoder_steps=DEFAULT_MAX_DECODER_STEPS):
    """Teacher forcing as in training (inference-mode layers): postnet mels, 0 past lengths.

    `noise` is the prenet dropout noise, `[batch, frames of mel, 2 * prenet_dim]` (shorter
    noise is repeated).
    """
    del speaker, max_decoder_steps
    out = self.model.teacher_forced(text_ids, text_lengths, mel, mel_lengths, noise=noise,
                                    training=False, preallocated=self.preallocated)
    return out["mel_after"]
