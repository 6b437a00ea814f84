"""TF-native building blocks (installed as `tfspeech.ops`).

Every op runs under `tf.function` with `None` dims and under XLA; the ops used
at inference time also convert to TFLite with builtin ops.
"""

from tfspeech.ops.alignment import (beta_binomial_prior, durations_to_path, length_regulate,
                                    maximum_path, path_to_durations)
from tfspeech.ops.pitch import average_pitch_per_token, yin_pitch
from tfspeech.ops.resample import resample, resampled_length
from tfspeech.ops.sequence import max_length_of, pair_mask, sequence_mask

__all__ = [
    "average_pitch_per_token", "beta_binomial_prior", "durations_to_path", "length_regulate",
    "max_length_of", "maximum_path", "pair_mask", "path_to_durations", "resample",
    "resampled_length", "sequence_mask", "yin_pitch",
]
