"""TF-native building blocks (installed as `tfspeech.ops`).

Every op runs under `tf.function` with `None` dims and under XLA; the ops used
at inference time also convert to TFLite with builtin ops.

Modules: `alignment` (MAS, paths, durations, length regulation, alignment
prior), `sequence` (masks), `pitch` (YIN), `resample` (sample-rate conversion:
`tfspeech.ops.resample.resample(audio, source_rate, target_rate)` — the module
name is kept for the function's module, so the function is not re-exported here),
`convolution` (1-D convolutions with native dilation) and `winograd` (width-3
1-D convolutions by Winograd's F(4, 3), for wide channels on CPUs).
"""

from tfspeech.ops import alignment, pitch, resample, sequence
from tfspeech.ops.alignment import (beta_binomial_prior, durations_to_path, length_regulate,
                                    maximum_path, path_to_durations)
from tfspeech.ops.pitch import average_pitch_per_token, yin_pitch
from tfspeech.ops.resample import resampled_length
from tfspeech.ops.sequence import max_length_of, pair_mask, sequence_mask

__all__ = [
    "alignment", "average_pitch_per_token", "beta_binomial_prior", "durations_to_path",
    "length_regulate", "max_length_of", "maximum_path", "pair_mask", "path_to_durations",
    "pitch", "resample", "resampled_length", "sequence", "sequence_mask", "yin_pitch",
]
