"""HiFi-GAN behind the `tfspeech.models.serving.Vocoder` interface.

The generator is served with weight norm folded into plain kernels (`remove_weight_norm`),
which gives the same audio with fewer ops. Its convolutions zero-pad, so the padding of a
short item in a batch changes its audio only within `receptive_field_samples(config)`
samples of its end.
"""

import math
from typing import Optional

import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.data.corpus_info import CorpusInfo
from tfspeech.models import serving
from tfspeech.models.hifigan.generator import CONV_PRE_POST_KERNEL, HifiGanGenerator
from tfspeech.models.hifigan.hifigan_config import HifiGanConfig

DEFAULT_SAMPLE_RATE = 22050


def receptive_field_samples(config: HifiGanConfig) -> int:
  """How far (in output samples) a change of one mel frame can reach past that frame's samples.

  Summed layer by layer, each layer's reach in output samples: conv_pre and
  conv_post (kernel 7: 3 positions each side), each transposed conv ((kernel -
  rate) / 2 of its output positions: torch's padding crops the rest), and the
  widest residual block of each stage (its dilated and undilated convs in
  series). Exact up to taps that happen to cancel; equally, the output at a
  sample depends on no mel frame further away than this.

  Args:
    config: the generator's `HifiGanConfig`.

  Returns:
    The one-sided radius in output samples.
  """
  half = (CONV_PRE_POST_KERNEL - 1) // 2
  spacing = config.hop_length  # Output samples between neighbouring positions of a stage.
  radius = half * spacing  # conv_pre, at frame rate.
  for rate, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes):
    spacing //= rate
    radius += (kernel - rate) // 2 * spacing
    widest = 0
    for k, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
      per_block = sum((k - 1) // 2 * d for d in dilations)
      if config.resblock == "1":
        per_block += len(dilations) * ((k - 1) // 2)  # The undilated conv after each.
      widest = max(widest, per_block)
    radius += widest * spacing
  return radius + half  # conv_post, at the output rate.


class HifiGanServing(serving.Vocoder):
  """A HiFi-GAN generator as a vocoder.

  Args:
    generator: a `HifiGanGenerator` (weight norm is folded away first).
    sample_rate: output rate in Hz.
    mel_config: the `MelConfig` of its training mels, or None when unknown (then the
      HiFi-GAN convention pads mels).
  """

  def __init__(self, generator: HifiGanGenerator, sample_rate: int = DEFAULT_SAMPLE_RATE,
               mel_config: Optional[audio_lib.MelConfig] = None):
    if generator.weight_norm:
      generator = generator.remove_weight_norm()
    self.generator = generator
    config = generator.config
    self.n_mels = config.num_mels
    self.hop_length = config.hop_length
    self.sample_rate = int(sample_rate)
    self.mel_config = mel_config
    convention = mel_config or audio_lib.MelConfig.hifigan()
    self.mel_pad_value = float(audio_lib.log_compress(tf.zeros([]), convention))
    self.receptive_field = math.ceil(receptive_field_samples(config) / config.hop_length)

  @classmethod
  def from_data_info(cls, generator: HifiGanGenerator, data_info) -> "HifiGanServing":
    """The vocoder of a run whose `data_info` may record `mel_config` and `sample_rate`."""
    info = dict(data_info or {})
    if not info.get("mel_config"):
      return cls(generator, info.get("sample_rate") or DEFAULT_SAMPLE_RATE)
    facts = CorpusInfo.from_dict(info, source="the vocoder run's data_info")
    return cls(generator, facts.sample_rate, facts.mel_config)

  @property
  def config(self) -> HifiGanConfig:
    return self.generator.config

  def context_frames(self) -> int:
    """Mel frames of context each side that make a chunk's audio equal the whole utterance's
    (`tfspeech.inference.streaming`): the receptive field (HiFi-GAN declares no controls)."""
    return self.receptive_field

  @property
  def weights(self):
    return list(self.generator.weights)

  def vocode(self, mel, mel_lengths, noise=None):
    """`[batch, frames, n_mels]`, `[batch]` → audio `[batch, frames * hop]` (0 past lengths).

    HiFi-GAN draws no noise and declares no controls (`noise` is always None).
    """
    del noise
    frames = tf.shape(mel)[1]
    # A batch of empty mels (every item 0 frames) would give the transposed convolutions
    # a zero-length input, which oneDNN rejects; one frame of padding is cut off again.
    padded = tf.pad(mel, [[0, 0], [0, tf.maximum(1 - frames, 0)], [0, 0]])
    # A dynamic pad loses the static channel count, which the TFLite converter needs to
    # legalize the convolutions; a reshape restores it.
    padded = tf.reshape(padded, [tf.shape(mel)[0], -1, self.n_mels])
    audio = self.generator(padded, training=False)[:, :frames * self.hop_length]
    audio_lengths = mel_lengths * self.hop_length
    valid = tf.sequence_mask(audio_lengths, tf.shape(audio)[1], audio.dtype)
    return {"audio": audio * valid, "audio_lengths": audio_lengths}
