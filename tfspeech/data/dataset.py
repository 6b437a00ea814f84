"""tf.data input pipelines over corpora prepared by `tfspeech.data.prepare`.

A prepared directory holds `dataset.json` (conventions: sample rate, mel config,
symbols, counts; read typed by `tfspeech.data.CorpusInfo.load`), `stats.json`, and
sharded records `SPLIT-IIIII-of-NNNNN.tfrecord` in the schema of
`tfspeech.data.records`. Everything here is pure graph-mode tf.data: no Python
generators or callbacks, no fixed maximum lengths.
"""

import json
import os
import pathlib
import random
from typing import Any, Mapping, Optional, Sequence, Union

import tensorflow as tf

from tfspeech.data import corpus_info as corpus_info_lib
from tfspeech.data import records

PathLike = Union[str, os.PathLike]

DATASET_JSON = corpus_info_lib.DATASET_JSON
STATS_JSON = "stats.json"
REPORT_JSON = "report.json"
SPLITS = ("train", "validation")

# Which length each padded feature is measured by.
_LENGTH_OF = {"text_ids": "text_lengths", "mel": "mel_lengths", "audio": "audio_lengths"}
_LENGTH_SOURCE = {"text_lengths": "num_tokens", "mel_lengths": "num_frames",
                  "audio_lengths": "num_samples"}
_PER_FRAME = ("mel", "pitch", "energy")


def shard_name(split: str, index: int, count: int) -> str:
  """File name of one shard, e.g. `train-00000-of-00004.tfrecord`."""
  return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def shard_pattern(split: str) -> str:
  return f"{split}-?????-of-?????.tfrecord"


def load_dataset_info(prepared_dir: PathLike) -> dict:
  """Reads `dataset.json` of a prepared directory as a raw dict.

  Prefer `CorpusInfo.load(prepared_dir)`, which returns the typed facts.

  Raises:
    FileNotFoundError: if the directory was not prepared (no dataset.json).
    CorpusInfoError: (a ValueError) if dataset.json is not a JSON object.
  """
  return corpus_info_lib.read_dataset_json(prepared_dir)


def load_stats(prepared_dir: PathLike) -> dict:
  """Reads `stats.json` (per-mel-bin `mel_mean`/`mel_std` over the train split)."""
  with open(pathlib.Path(prepared_dir) / STATS_JSON, encoding="utf-8") as f:
    return json.load(f)


def shard_files(prepared_dir: PathLike, split: str) -> list:
  """Sorted paths of the finished shards of `split`.

  Raises:
    ValueError: if `split` is unknown or has no shards.
  """
  if split not in SPLITS:
    raise ValueError(f"split={split!r} is not one of {SPLITS}")
  files = sorted(str(p) for p in pathlib.Path(prepared_dir).glob(shard_pattern(split)))
  if not files:
    raise ValueError(f"no {split} shards ({shard_pattern(split)}) in {prepared_dir}; "
                     "was prepare interrupted? Re-run it with resume=True to finish")
  return files


def auto_bucket_boundaries(info: Union[corpus_info_lib.CorpusInfo, Mapping[str, Any]],
                           split: str) -> list:
  """Bucket boundaries (in mel frames) from the length deciles stored by prepare.

  Args:
    info: a `CorpusInfo`, or the dict of dataset.json.
    split: "train" or "validation".
  """
  if isinstance(info, corpus_info_lib.CorpusInfo):
    quantiles = info.length_quantiles.get(split, [])
  else:
    quantiles = info.get("length_quantiles", {}).get(split, [])
  # Interior deciles only: the extremes would make near-empty buckets.
  return sorted({int(q) for q in quantiles[1:-1] if q > 0})


def _padding_values(element_spec: Mapping[str, tf.TensorSpec], mel_pad_value: float,
                    text_pad_id: int):
  values = {}
  for name, spec in element_spec.items():
    if spec.dtype == tf.string:
      values[name] = tf.constant("", tf.string)
    elif name == "mel":
      values[name] = tf.constant(mel_pad_value, spec.dtype)
    elif name == "text_ids":
      values[name] = tf.constant(text_pad_id, spec.dtype)
    else:
      values[name] = tf.zeros([], spec.dtype)
  return values


def _random_segment(example, seed, segment_samples, hop_length, mel_pad_value):
  """Crops `segment_samples` of audio and the mel frames that cover them.

  The crop starts on a frame boundary so that mel frame t stays aligned with
  audio sample t * hop_length (the HiFi-GAN fine-tuning convention). Clips
  shorter than the segment are padded: audio with zeros, mel with silence.
  """
  segment_frames = segment_samples // hop_length
  num_frames = example["num_frames"]
  max_start = tf.maximum(num_frames - segment_frames, 0)
  start_frame = tf.random.stateless_uniform(
      [], seed=seed, minval=0, maxval=max_start + 1, dtype=tf.int32)
  start_sample = start_frame * hop_length
  out = dict(example)

  audio = example["audio"][start_sample:start_sample + segment_samples]
  out["num_samples"] = tf.shape(audio)[0]
  audio = tf.pad(audio, [[0, segment_samples - tf.shape(audio)[0]]])
  out["audio"] = tf.ensure_shape(audio, [segment_samples])

  for name in _PER_FRAME:
    if name not in example:
      continue
    values = example[name][start_frame:start_frame + segment_frames]
    frames = tf.shape(values)[0]
    if name == "mel":
      out["num_frames"] = frames
      pad = [[0, segment_frames - frames], [0, 0]]
      values = tf.pad(values, pad, constant_values=mel_pad_value)
      values = tf.ensure_shape(values, [segment_frames, example["mel"].shape[-1]])
    else:
      values = tf.pad(values, [[0, segment_frames - frames]])
      values = tf.ensure_shape(values, [segment_frames])
    out[name] = values
  return out


def make_dataset(
    prepared_dir: PathLike,
    split: str = "train",
    batch_size: int = 16,
    features: Sequence[str] = ("text_ids", "mel"),
    shuffle: bool = True,
    seed: Optional[int] = 0,
    repeat: bool = True,
    bucket_boundaries: Union[None, bool, Sequence[int]] = None,
    segment_samples: Optional[int] = None,
    drop_remainder: bool = False,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    shuffle_buffer_size: int = 2048,
) -> tf.data.Dataset:
  """Batched, padded examples from a prepared corpus.

  Args:
    prepared_dir: output directory of `prepare_corpus`.
    split: "train" or "validation".
    batch_size: examples per batch.
    features: record features to return (see `records.ALL_FEATURES`), e.g.
      ("text_ids", "mel") for acoustic models, ("audio", "mel") for vocoders.
    shuffle: shuffle shard order and examples.
    seed: seed of shuffling and segment crops; the same seed gives the same
      batches in the same order. None: nondeterministic.
    repeat: repeat forever.
    bucket_boundaries: mel-frame lengths separating buckets of similar length
      (less padding). None: interior deciles of the split's lengths recorded by
      prepare. False or (): no bucketing. Ignored with `segment_samples`.
    segment_samples: if set, each example is cut to a random `segment_samples`
      long audio crop starting on a frame boundary, with its mel/pitch/energy
      frames (`segment_samples // hop_length`); shorter clips are padded. Must be
      a multiple of the hop length and needs "audio" in `features`.
    drop_remainder: drop the last partial batch (gives a static batch dim).
    num_parallel_calls: parallelism of reading and parsing.
    shuffle_buffer_size: examples in the shuffle buffer.

  Returns:
    A dataset of dicts with the requested features padded to the longest in the
    batch (`text_ids` [batch, tokens], `mel` [batch, frames, n_mels], `audio`
    [batch, samples], `pitch`/`energy` [batch, frames], `durations`
    [batch, tokens], scalars [batch]) plus `text_lengths`, `mel_lengths`,
    `audio_lengths` [batch] for each padded text_ids/mel/audio. Text ids pad
    with the symbol table's pad id, mel with the log-mel of silence
    (`mel_pad_value` in dataset.json), everything else with 0 / "".

  Raises:
    FileNotFoundError: if `prepared_dir` is not prepared.
    ValueError: on unknown features/split, a bad `segment_samples`, or a
      malformed dataset.json (`CorpusInfoError`, naming the file).
  """
  info = corpus_info_lib.CorpusInfo.load(prepared_dir)
  features = records.check_features(features)
  files = shard_files(prepared_dir, split)
  n_mels = info.n_mels
  hop_length = info.hop_length
  mel_pad_value = 0.0 if info.mel_pad_value is None else float(info.mel_pad_value)
  text_pad_id = info.text_pad_id
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if segment_samples is not None:
    if "audio" not in features:
      raise ValueError("segment_samples needs 'audio' in features")
    if segment_samples <= 0 or segment_samples % hop_length:
      raise ValueError(f"segment_samples={segment_samples} must be a positive multiple of "
                       f"the hop length {hop_length} so mel frames stay aligned with audio")

  lengths = [_LENGTH_OF[name] for name in features if name in _LENGTH_OF]
  parse_features = tuple(dict.fromkeys(
      features + tuple(_LENGTH_SOURCE[name] for name in lengths) + ("num_frames",)))

  dataset = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.interleave(
      tf.data.TFRecordDataset, cycle_length=min(len(files), 8), block_length=1,
      num_parallel_calls=num_parallel_calls, deterministic=True)
  if shuffle:
    dataset = dataset.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    dataset = dataset.repeat()
  dataset = dataset.map(
      lambda serialized: records.parse_example(serialized, parse_features, n_mels=n_mels),
      num_parallel_calls=num_parallel_calls, deterministic=True)

  if segment_samples is not None:
    crop_seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    # Each element gets its own stateless seed (seed, position), so crops are
    # reproducible and differ from epoch to epoch.
    dataset = dataset.enumerate().map(
        lambda index, example: _random_segment(
            example, tf.stack([tf.constant(crop_seed, tf.int64), index]),
            segment_samples, hop_length, mel_pad_value),
        num_parallel_calls=num_parallel_calls, deterministic=True)

  def select(example):
    out = {name: example[name] for name in features}
    for name in lengths:
      out[name] = example[_LENGTH_SOURCE[name]]
    return out

  boundaries = []
  if segment_samples is None and bucket_boundaries is not False:
    boundaries = (auto_bucket_boundaries(info, split) if bucket_boundaries is None
                  else sorted({int(b) for b in bucket_boundaries}))

  if boundaries:
    # Bucket on mel frames, which stays available whatever `features` asks for:
    # carry it next to the selected features and drop it after batching.
    dataset = dataset.map(lambda example: (select(example), example["num_frames"]),
                          num_parallel_calls=num_parallel_calls, deterministic=True)
    padding_values = (_padding_values(dataset.element_spec[0], mel_pad_value, text_pad_id),
                      tf.constant(0, tf.int32))
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda unused_example, num_frames: num_frames,
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=padding_values,
        drop_remainder=drop_remainder)
    dataset = dataset.map(lambda batch, unused_num_frames: batch,
                          num_parallel_calls=num_parallel_calls, deterministic=True)
  else:
    dataset = dataset.map(select, num_parallel_calls=num_parallel_calls, deterministic=True)
    dataset = dataset.padded_batch(
        batch_size,
        padding_values=_padding_values(dataset.element_spec, mel_pad_value, text_pad_id),
        drop_remainder=drop_remainder)

  options = tf.data.Options()
  options.deterministic = True
  options.experimental_optimization.map_parallelization = True
  return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
