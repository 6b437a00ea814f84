"""The TFRecord schema of prepared corpora: one `tf.train.Example` per utterance.

Features (all written by `serialize_example`; the optional ones may be absent):

  name          stored as                                   parsed as
  ------------  ------------------------------------------  -------------------------------
  id            bytes                                       tf.string []
  text          bytes, UTF-8 cleaned transcript             tf.string []
  text_ids      int64_list                                  tf.int32 [num_tokens]
  audio         bytes, 16-bit signed little-endian PCM      tf.float32 [num_samples] in [-1, 1)
  mel           bytes, tf.io.serialize_tensor(float32)      tf.float32 [num_frames, n_mels]
  num_samples   int64                                       tf.int32 []
  num_frames    int64                                       tf.int32 []
  num_tokens    int64                                       tf.int32 []
  speaker       int64 speaker index (0 if single-speaker)   tf.int32 []
  pitch         float_list, optional, Hz per mel frame      tf.float32 [num_frames or 0]
  energy        float_list, optional, per mel frame         tf.float32 [num_frames or 0]
  durations     int64_list, optional, frames per token      tf.int32 [num_tokens or 0]

Audio is stored as 16-bit PCM: it halves the size of float32, it is the
precision of the source WAV files, and the mel is computed from the quantized
samples, so vocoder targets and their mels agree exactly. A decoded sample is
`int16 / 32768`.
"""

from typing import Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

SCHEMA_VERSION = 1
AUDIO_ENCODING = "pcm_s16le"

_SCALARS = ("num_samples", "num_frames", "num_tokens", "speaker")
OPTIONAL_FEATURES = ("pitch", "energy", "durations")
ALL_FEATURES = ("id", "text", "text_ids", "audio", "mel") + _SCALARS + OPTIONAL_FEATURES

_FEATURE_SPECS = {
    "id": tf.io.FixedLenFeature([], tf.string),
    "text": tf.io.FixedLenFeature([], tf.string),
    "text_ids": tf.io.RaggedFeature(tf.int64),
    "audio": tf.io.FixedLenFeature([], tf.string),
    "mel": tf.io.FixedLenFeature([], tf.string),
    "num_samples": tf.io.FixedLenFeature([], tf.int64),
    "num_frames": tf.io.FixedLenFeature([], tf.int64),
    "num_tokens": tf.io.FixedLenFeature([], tf.int64),
    "speaker": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    # RaggedFeature parses a missing feature to an empty vector.
    "pitch": tf.io.RaggedFeature(tf.float32),
    "energy": tf.io.RaggedFeature(tf.float32),
    "durations": tf.io.RaggedFeature(tf.int64),
}

ArrayLike = Union[np.ndarray, Sequence[float]]


def _bytes(value: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _floats(values) -> tf.train.Feature:
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def quantize_pcm16(audio: ArrayLike) -> np.ndarray:
  """Float audio in [-1, 1] -> int16 samples (clipped), as stored in records.

  Args:
    audio: [samples] float waveform.

  Returns:
    [samples] int16.
  """
  audio = np.asarray(audio, dtype=np.float64)  # graph-ok: offline serialization
  return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def serialize_example(
    id: str,  # noqa: A002 - the schema's feature name
    text: str,
    text_ids: Sequence[int],
    audio: ArrayLike,
    mel: ArrayLike,
    speaker: int = 0,
    pitch: Optional[ArrayLike] = None,
    energy: Optional[ArrayLike] = None,
    durations: Optional[Sequence[int]] = None,
) -> bytes:
  """Encodes one utterance as a serialized `tf.train.Example` (see module docstring).

  Args:
    id: utterance id.
    text: cleaned transcript.
    text_ids: [num_tokens] symbol ids.
    audio: [num_samples] waveform, either int16 PCM or float in [-1, 1]
      (quantized to int16; values outside are clipped).
    mel: [num_frames, n_mels] float32 log-mel spectrogram.
    speaker: speaker index.
    pitch: optional [num_frames] pitch in Hz (0 where unvoiced).
    energy: optional [num_frames] energy.
    durations: optional [num_tokens] frames per token.

  Returns:
    The serialized example.

  Raises:
    ValueError: if a shape is wrong or optional features disagree with the lengths.
  """
  text_ids = np.asarray(text_ids, dtype=np.int64).reshape(-1)  # graph-ok: offline serialization
  audio = np.asarray(audio)  # graph-ok: offline serialization
  if audio.ndim != 1:
    raise ValueError(f"audio of {id!r} must be [samples], got shape {audio.shape}")
  pcm = audio if audio.dtype == np.int16 else quantize_pcm16(audio)
  mel = np.asarray(mel, dtype=np.float32)  # graph-ok: offline serialization
  if mel.ndim != 2:
    raise ValueError(f"mel of {id!r} must be [frames, n_mels], got shape {mel.shape}")
  feature = {
      "id": _bytes(id.encode("utf-8")),
      "text": _bytes(text.encode("utf-8")),
      "text_ids": _ints(text_ids),
      "audio": _bytes(pcm.astype("<i2").tobytes()),
      "mel": _bytes(tf.io.serialize_tensor(mel).numpy()),  # graph-ok: offline serialization
      "num_samples": _ints([pcm.shape[0]]),
      "num_frames": _ints([mel.shape[0]]),
      "num_tokens": _ints([text_ids.shape[0]]),
      "speaker": _ints([int(speaker)]),
  }
  per_frame = {"pitch": pitch, "energy": energy}
  for name, values in per_frame.items():
    if values is None:
      continue
    values = np.asarray(values, dtype=np.float32).reshape(-1)  # graph-ok: offline serialization
    if values.shape[0] != mel.shape[0]:
      raise ValueError(f"{name} of {id!r} has {values.shape[0]} values but the mel has "
                       f"{mel.shape[0]} frames")
    feature[name] = _floats(values)
  if durations is not None:
    durations = np.asarray(durations, dtype=np.int64).reshape(-1)  # graph-ok: offline serialization
    if durations.shape[0] != text_ids.shape[0]:
      raise ValueError(f"durations of {id!r} has {durations.shape[0]} values but there are "
                       f"{text_ids.shape[0]} tokens")
    feature["durations"] = _ints(durations)
  example = tf.train.Example(features=tf.train.Features(feature=feature))
  return example.SerializeToString()


def check_features(features: Sequence[str]) -> tuple:
  """Returns `features` as a tuple; ValueError naming any unknown feature."""
  features = tuple(features)
  unknown = [name for name in features if name not in ALL_FEATURES]
  if unknown:
    raise ValueError(f"unknown record features {unknown}; known: {list(ALL_FEATURES)}")
  return features


def parse_example(serialized: tf.Tensor, features: Sequence[str] = ALL_FEATURES,
                  n_mels: Optional[int] = None) -> Mapping[str, tf.Tensor]:
  """Decodes one serialized example into tensors (graph mode, no Python ops).

  Args:
    serialized: scalar tf.string, one record.
    features: names to decode (see `ALL_FEATURES`); decoding only what is needed
      saves work, e.g. skipping `audio` when training an acoustic model.
    n_mels: if given, the mel's static shape is [None, n_mels].

  Returns:
    Dict name -> tensor with the dtypes and static ranks in the module docstring.

  Raises:
    ValueError: on unknown feature names.
  """
  features = check_features(features)
  parsed = tf.io.parse_single_example(
      serialized, {name: _FEATURE_SPECS[name] for name in features})
  result = {}
  for name in features:
    value = parsed[name]
    if name == "audio":
      pcm = tf.io.decode_raw(value, tf.int16, little_endian=True)
      value = tf.cast(pcm, tf.float32) / 32768.0
      value.set_shape([None])
    elif name == "mel":
      value = tf.io.parse_tensor(value, tf.float32)
      value = tf.ensure_shape(value, [None, n_mels])
    elif value.dtype == tf.int64:
      value = tf.cast(value, tf.int32)
    result[name] = value
  return result
