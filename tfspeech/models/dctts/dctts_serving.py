"""DC-TTS behind the `tfspeech.models.serving.AcousticModel` interface.

Synthesis = Text2Mel decoding (`Text2Mel.infer`: one `tf.while_loop` over chunks with
fixed-shape buffers, forcibly incremental attention, per-item end, `max_decoder_steps`
guard), then SSRN on the decoded coarse mels. As Tacotron 2's, this autoregressive decoder
cannot be unrolled, so its graph loops; the loop converts to one TFLite builtin WHILE.
`in_process()` is this same object: each step must re-read the frames decoded so far (the
causal audio encoder and decoder together see ~250 past coarse frames), so the preallocated buffer
is the store both forms need.

Outputs: "mel" is SSRN's output in the corpus' mel convention: SSRN's full-rate linear
magnitudes projected by the corpus' mel filterbank and log-compressed like the corpus
(`MelConfig` from the run's data_info), so any vocoder trained on the corpus reads it and
mel lengths are coarse frames x r. Extra outputs: "magnitudes" (linear |STFT|, 0 past each
length: feed them to `tfspeech.audio.griffin_lim` with the corpus' `MelConfig` for the
paper's waveform), "coarse_mel" (Text2Mel's normalised coarse mels) and "alignments"
`[batch, coarse frames, tokens]`.

Durations: each coarse frame counts r mel frames for the token its attention chose (the
argmax the forcibly incremental window follows); rows sum to the mel lengths. DC-TTS draws
no noise (`noise_channels = None`): decoding is deterministic.
"""

import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.models import serving
from tfspeech.models.dctts import dctts_model
from tfspeech.models.dctts.dctts_config import DCTTSConfig

# Kyubyong hyperparams.py max_T (coarse frames, ~10 s at r = 4).
DEFAULT_MAX_DECODER_STEPS = 210

CONTROLS = (
    serving.Control("max_decoder_steps", "int32", DEFAULT_MAX_DECODER_STEPS,
                    "most Text2Mel steps per item (each makes chunk_size x r mel frames; "
                    "decoding stops there if the attention never reaches the text's end)",
                    minimum=1),
)


def default_mel_config(config: DCTTSConfig) -> audio_lib.MelConfig:
  """The HiFi-GAN mel convention at the config's sizes (for models without a corpus)."""
  fmax = min(8000.0, config.sample_rate / 2)
  return audio_lib.MelConfig.hifigan(sample_rate=config.sample_rate, n_fft=config.fft_size,
                                     hop_length=config.hop, n_mels=config.n_mels, fmax=fmax)


class DCTTSServing(serving.AcousticModel):
  """Trained `Text2Mel` and `SSRN` as an acoustic model (their weights are used, not copied).

  Args:
    text2mel: a `Text2Mel`; ssrn: an `SSRN` of the same config.
    mel_config: the corpus' `MelConfig` (the convention of the "mel" output); None uses
      `default_mel_config`.
  """
  controls = CONTROLS
  noise_channels = None

  def __init__(self, text2mel, ssrn, mel_config=None):
    self.text2mel, self.ssrn = text2mel, ssrn
    self.config = text2mel.config
    self.n_mels = self.config.n_mels
    self.mel_config = mel_config or default_mel_config(self.config)
    if (self.mel_config.n_mels, self.mel_config.num_bins) != (self.n_mels, self.config.n_linear):
      raise ValueError(
          f"dctts: the mel convention has {self.mel_config.n_mels} mels and "
          f"{self.mel_config.num_bins} linear bins, the model {self.n_mels} and "
          f"{self.config.n_linear}; train with --override=n_mels=... / n_fft=... to match")

  @property
  def weights(self):
    return list(self.text2mel.weights) + list(self.ssrn.weights)

  def frames_bound(self, text_ids, text_lengths, speaker=None, **unused):
    """DC-TTS draws no noise; 1 (for the interface)."""
    del text_ids, text_lengths, speaker, unused
    return tf.constant(1, tf.int32)

  def synthesize(self, text_ids, text_lengths, noise=None, speaker=None,
                 max_decoder_steps=DEFAULT_MAX_DECODER_STEPS):
    """Decodes a batch; see the module docstring."""
    del noise, speaker
    config = self.config
    text_lengths = tf.cast(text_lengths, tf.int32)
    coarse = self.text2mel.infer(text_ids, text_lengths, max_decoder_steps)
    magnitudes = tf.sigmoid(self.ssrn(coarse["mel"], coarse["lengths"]))
    mel_lengths = coarse["lengths"] * config.reduction
    mask = dctts_model.sequence_mask3(mel_lengths, tf.shape(magnitudes)[1])
    mel = dctts_model.magnitudes_to_mel(magnitudes, self.mel_config, config) * mask
    durations = dctts_model.durations_from_positions(
        coarse["positions"], coarse["lengths"], text_lengths, tf.shape(text_ids)[1],
        config.reduction)
    return {"mel": mel, "mel_lengths": mel_lengths, "durations": durations,
            "magnitudes": dctts_model.linear_magnitudes(magnitudes, config) * mask,
            "coarse_mel": coarse["mel"], "alignments": coarse["alignments"]}
