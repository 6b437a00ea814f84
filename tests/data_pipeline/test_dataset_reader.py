"""Tests of tfspeech.data.dataset on a synthetic prepared directory."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfspeech import testing
from tfspeech.data import dataset as dataset_lib
from tfspeech.data import records

HOP = 16
N_MELS = 3
MEL_PAD = -11.5
TEXT_PAD = 99  # Not 0, to tell the table's pad id from a default.


def _write_prepared(out_dir, num_examples=24, num_shards=3):
  """A prepared dir whose values encode positions, to check alignment.

  Audio sample i is i / 32768 (exact in 16-bit PCM) and mel[t] = t, so a crop's
  first sample and first frame reveal where it starts.
  """
  rng = np.random.default_rng(0)
  truth = {}
  writers = [tf.io.TFRecordWriter(str(out_dir / dataset_lib.shard_name("train", i, num_shards)))
             for i in range(num_shards)]
  frame_counts = []
  for index in range(num_examples):
    samples = int(rng.integers(HOP * 2, HOP * 60))
    frames = 1 + samples // HOP
    tokens = int(rng.integers(2, 12))
    utterance_id = f"utt-{index:03d}"
    audio = np.arange(samples, dtype=np.int16)
    mel = np.repeat(np.arange(frames, dtype=np.float32)[:, None], N_MELS, axis=1)
    text_ids = rng.integers(1, 60, tokens)
    writers[index % num_shards].write(records.serialize_example(
        utterance_id, "text", text_ids, audio, mel, pitch=np.full(frames, 100.0)))
    truth[utterance_id] = dict(samples=samples, frames=frames, text_ids=text_ids)
    frame_counts.append(frames)
  for writer in writers:
    writer.close()
  info = {"n_mels": N_MELS, "hop_length": HOP, "mel_pad_value": MEL_PAD,
          "symbols": {"symbols": [f"s{i}" for i in range(100)], "pad": f"s{TEXT_PAD}"},
          "length_quantiles": {"train": np.quantile(frame_counts, np.linspace(0, 1, 11)).tolist()}}
  (out_dir / dataset_lib.DATASET_JSON).write_text(json.dumps(info))
  return truth


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  out_dir = tmp_path_factory.mktemp("prepared")
  return out_dir, _write_prepared(out_dir)


def _batches(ds, count):
  return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(count)]


def test_padded_batches_lengths_and_padding(prepared):
  out_dir, truth = prepared
  ds = dataset_lib.make_dataset(out_dir, batch_size=5, features=("id", "text_ids", "mel"),
                                shuffle=False, repeat=False, bucket_boundaries=False)
  spec = ds.element_spec
  assert spec["text_ids"].shape.as_list() == [None, None]
  assert spec["mel"].shape.as_list() == [None, None, N_MELS]
  assert spec["mel_lengths"].shape.as_list() == [None]
  assert set(spec) == {"id", "text_ids", "mel", "text_lengths", "mel_lengths"}
  seen = []
  for batch in _batches(ds, 100):
    for i, utterance_id in enumerate(batch["id"]):
      expected = truth[utterance_id.decode()]
      seen.append(utterance_id.decode())
      n_tokens, n_frames = batch["text_lengths"][i], batch["mel_lengths"][i]
      assert (n_tokens, n_frames) == (len(expected["text_ids"]), expected["frames"])
      np.testing.assert_array_equal(batch["text_ids"][i, :n_tokens], expected["text_ids"])
      assert (batch["text_ids"][i, n_tokens:] == TEXT_PAD).all()
      np.testing.assert_array_equal(batch["mel"][i, :n_frames, 0], np.arange(n_frames))
      assert (batch["mel"][i, n_frames:] == MEL_PAD).all()
    # Padded to the longest in the batch, not to a fixed maximum.
    assert batch["mel"].shape[1] == batch["mel_lengths"].max()
  assert sorted(seen) == sorted(truth)  # One pass, every example exactly once.


def test_bucketing_groups_similar_lengths(prepared):
  out_dir, _ = prepared
  boundaries = [20, 35]
  ds = dataset_lib.make_dataset(out_dir, batch_size=3, features=("mel",), shuffle=True, seed=1,
                                repeat=False, bucket_boundaries=boundaries)
  assert ds.element_spec["mel"].shape.as_list() == [None, None, N_MELS]
  total = 0
  for batch in _batches(ds, 100):
    buckets = np.searchsorted(boundaries, batch["mel_lengths"], side="right")
    assert len(set(buckets)) == 1, batch["mel_lengths"]
    total += len(batch["mel_lengths"])
  assert total == 24


def test_auto_bucket_boundaries_from_quantiles(prepared):
  out_dir, _ = prepared
  info = dataset_lib.load_dataset_info(out_dir)
  boundaries = dataset_lib.auto_bucket_boundaries(info, "train")
  quantiles = info["length_quantiles"]["train"]
  assert boundaries == sorted(set(boundaries))
  assert len(boundaries) >= 3
  assert quantiles[0] <= boundaries[0] and boundaries[-1] <= quantiles[-1]
  ds = dataset_lib.make_dataset(out_dir, batch_size=2, features=("mel",), seed=0, repeat=False)
  for batch in _batches(ds, 100):
    buckets = np.searchsorted(boundaries, batch["mel_lengths"], side="right")
    assert len(set(buckets)) == 1


def test_segments_exact_size_aligned_and_padded(prepared):
  out_dir, truth = prepared
  segment = HOP * 40  # Longer than some clips, shorter than others.
  ds = dataset_lib.make_dataset(out_dir, batch_size=4, features=("id", "audio", "mel", "pitch"),
                                segment_samples=segment, seed=3, repeat=True)
  assert ds.element_spec["audio"].shape.as_list() == [None, segment]
  assert ds.element_spec["mel"].shape.as_list() == [None, 40, N_MELS]
  saw_short = saw_long = False
  for batch in _batches(ds, 12):
    for i, utterance_id in enumerate(batch["id"]):
      expected = truth[utterance_id.decode()]
      start_frame = int(batch["mel"][i, 0, 0])
      n_samples, n_frames = batch["audio_lengths"][i], batch["mel_lengths"][i]
      # Audio starts at the first frame's centre sample.
      assert round(batch["audio"][i, 0] * 32768) == start_frame * HOP
      assert n_samples == min(segment, expected["samples"] - start_frame * HOP)
      assert n_frames == min(40, expected["frames"] - start_frame)
      assert (batch["audio"][i, n_samples:] == 0).all()
      assert (batch["mel"][i, n_frames:] == MEL_PAD).all()
      assert (batch["pitch"][i, n_frames:] == 0).all()
      saw_short |= expected["samples"] < segment
      saw_long |= expected["frames"] > 40
  assert saw_short and saw_long


def test_same_seed_same_order_different_seed_differs(prepared):
  out_dir, _ = prepared

  def ids(seed):
    ds = dataset_lib.make_dataset(out_dir, batch_size=4, features=("id", "audio"), seed=seed,
                                  segment_samples=HOP * 8)
    return [(tuple(b["id"]), b["audio"].tobytes()) for b in _batches(ds, 10)]

  assert ids(7) == ids(7)
  assert ids(7) != ids(8)


def test_pipeline_is_pure_graph(prepared):
  out_dir, _ = prepared
  for kwargs in ({}, {"segment_samples": HOP * 8, "features": ("audio", "mel")},
                 {"bucket_boundaries": False}):
    ds = dataset_lib.make_dataset(out_dir, batch_size=2, **kwargs)
    graph_def = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
    node_ops = {node.op for node in graph_def.node}
    assert "GeneratorDataset" not in node_ops  # What from_generator builds.
    assert testing.python_ops(graph_def) == []


def test_graph_check_catches_from_generator():
  # The check above must be able to fail.
  ds = tf.data.Dataset.from_generator(lambda: iter([1, 2]), output_signature=tf.TensorSpec([], tf.int32))
  graph_def = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
  assert testing.python_ops(graph_def) or "GeneratorDataset" in {n.op for n in graph_def.node}


def test_errors(prepared, tmp_path):
  out_dir, _ = prepared
  with pytest.raises(FileNotFoundError, match="tfspeech-prepare"):
    dataset_lib.make_dataset(tmp_path)
  with pytest.raises(ValueError, match="unknown record features"):
    dataset_lib.make_dataset(out_dir, features=("mels",))
  with pytest.raises(ValueError, match="multiple of the hop length"):
    dataset_lib.make_dataset(out_dir, features=("audio",), segment_samples=HOP * 8 + 1)
  with pytest.raises(ValueError, match="needs 'audio'"):
    dataset_lib.make_dataset(out_dir, features=("mel",), segment_samples=HOP * 8)
  with pytest.raises(ValueError, match="no validation shards"):
    dataset_lib.make_dataset(out_dir, split="validation")
