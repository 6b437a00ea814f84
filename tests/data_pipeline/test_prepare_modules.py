"""Tests of the parts of prepare on their own: worker, planning, shard statistics."""

import pickle

import numpy as np
import pytest

from tfspeech import audio as audio_lib
from tfspeech.data import corpus as corpus_lib
from tfspeech.data import prepare
from tfspeech.data import prepare_plan
from tfspeech.data import prepare_shards
from tfspeech.data import prepare_worker
from tfspeech.data import records


def test_names_other_code_imports_from_prepare_still_resolve():
  for name in ("prepare_corpus", "PrepareReport", "SkippedEntry", "MEL_PRESETS", "FORMATS",
               "ON_UNKNOWN", "MARKER_SUFFIX", "MIN_ENTRIES_FOR_WORKERS", "_text_lib",
               "_read_corpus", "_validation_rank", "_process_unchecked"):
    assert hasattr(prepare, name), name
  assert prepare.SkippedEntry is prepare_worker.SkippedEntry
  # Spawned workers unpickle the task function by module path.
  task_fn = prepare._process  # pylint: disable=protected-access
  assert pickle.loads(pickle.dumps(task_fn)) is task_fn


def _settings(**changes):
  config = audio_lib.MelConfig.hifigan()
  fields = dict(sample_rate=config.sample_rate, mel_config=config, allow_resample=True,
                allow_downmix=True, trim_top_db=None, threads=1)
  fields.update(changes)
  return prepare_worker.Settings(**fields)


def test_worker_turns_a_task_into_a_record_or_a_skip(tiny_corpus, tmp_path):
  prepare_worker.init_worker(_settings(), configure_threads=False)
  wav = str(tiny_corpus / "wavs" / "TINY-0002.wav")
  task = prepare_worker.Task(7, "TINY-0002", wav, "the train", (1, 2, 3), 0, "train")
  result = prepare_worker.process(task)
  assert result.skip is None and result.position == 7 and result.converted is None
  example = records.parse_example(result.serialized)
  assert example["id"].numpy() == b"TINY-0002"
  assert int(example["num_frames"]) == result.num_frames == example["mel"].shape[0]
  assert result.mel_sum.shape == (80,)
  np.testing.assert_allclose(result.mel_sum, example["mel"].numpy().sum(axis=0), rtol=1e-5)

  missing = prepare_worker.process(
      prepare_worker.Task(8, "X", str(tmp_path / "x.wav"), "x", (1,), 0, "train"))
  assert (missing.skip.reason, missing.serialized) == ("missing_file", None)
  # A failure inside the work is a processing_error skip, never an exception.
  def broken(unused_task):
    raise RuntimeError("disk on fire\nsecond line")
  failed = prepare_worker.process(task, broken)
  assert failed.skip.reason == "processing_error"
  assert failed.skip.message == f"{wav}: RuntimeError: disk on fire"


def test_split_is_stable_when_entries_are_added():
  def kept(ids):
    return [(corpus_lib.Utterance(i, f"{i}.wav", "text"), "text", (1,)) for i in ids]
  ids = [f"U{i:03d}" for i in range(40)]
  first, _ = prepare_plan.split_entries(kept(ids), 4, seed=3)
  more, _ = prepare_plan.split_entries(kept(ids + ["U900", "U901"]), 4, seed=3)
  held_out = [u.id for u, _, _ in first["validation"]]
  assert len(held_out) == 4 and len(first["train"]) == 36
  # Adding entries only moves a held-out entry back to train if a new one outranks it.
  assert len(set(held_out) - {u.id for u, _, _ in more["validation"]}) <= 2
  # A candidate that fails the screen is passed over and stays in train.
  screened, passed_over = prepare_plan.split_entries(
      kept(ids), 4, seed=3, usable=lambda item: item[0].id != held_out[0])
  assert passed_over == [held_out[0]]
  assert held_out[0] in {u.id for u, _, _ in screened["train"]}
  assert len(screened["validation"]) == 4


def test_shard_statistics_from_markers():
  def marker(frames, value):
    mel = np.full([sum(frames), 2], value, np.float64)
    return {"num_examples": len(frames), "audio_seconds": 0.5 * len(frames),
            "mel_frames": sum(frames), "frame_lengths": frames,
            "mel_sum": mel.sum(axis=0).tolist(),
            "mel_sum_squares": (mel ** 2).sum(axis=0).tolist()}
  markers = {"train": [marker([2, 4], 1.0), marker([6], 3.0)], "validation": []}
  counts, seconds, quantiles = prepare_shards.split_statistics(markers)
  assert counts == {"train": 3, "validation": 0} and seconds == {"train": 1.5, "validation": 0}
  assert quantiles["train"][0] == 2 and quantiles["train"][-1] == 6
  assert quantiles["validation"] == []
  stats = prepare_shards.mel_stats(markers["train"], 2)
  assert stats["mel_frames"] == 12 and stats["mel_mean"] == pytest.approx([2.0, 2.0])
  assert stats["mel_std"] == pytest.approx([1.0, 1.0])
  assert prepare_shards.mel_stats([], 2)["mel_mean"] is None


def test_ordered_thread_map_overlaps_calls_keeps_order_and_bounds_pending_work():
  import threading
  running, seen = [0], {"most_running": 0, "submitted": 0}
  lock = threading.Lock()
  release = threading.Event()

  def work(item):
    with lock:
      running[0] += 1
      seen["most_running"] = max(seen["most_running"], running[0])
    # Item 0 waits until a later item has run: with one thread this would deadlock, so the
    # test fails (by timeout) unless two calls really overlap; later items finish first.
    if item == 0:
      assert release.wait(10), "no other call ran while item 0 was running"
    else:
      release.set()
    with lock:
      running[0] -= 1
    return item * 10

  def items():
    for i in range(20):
      seen["submitted"] = i + 1
      yield i

  results = prepare_shards.ordered_thread_map(work, items(), threads=2, in_flight=3)
  assert next(results) == 0
  # One result taken: 3 submitted up front, one more after it, no more.
  assert seen["submitted"] == 4
  assert list(results) == [i * 10 for i in range(1, 20)]
  assert seen["most_running"] == 2


def test_ordered_thread_map_closed_early_runs_nothing_more():
  calls = []
  results = prepare_shards.ordered_thread_map(calls.append, iter(range(100)), threads=2,
                                              in_flight=4)
  next(results)
  results.close()
  assert len(calls) <= 5


@pytest.mark.parametrize("cores, entries_floor, expected", [
    (2, 0, (1, 2)),    # 2 cores: threads in this process, faster there than spawned workers
    (8, 0, (8, 1)),    # more cores: a spawned process per core
    (8, 10**6, (1, 8)),  # a small corpus: in-process, worker start-up would cost more
])
def test_default_workers_follow_cores_and_corpus_size(
    tiny_corpus, tmp_path, monkeypatch, cores, entries_floor, expected):
  class Chosen(Exception):
    pass

  def run_tasks(out_dir, pending, settings, workers, *args, **kwargs):
    raise Chosen((workers, settings.threads))

  monkeypatch.setattr(prepare.os, "cpu_count", lambda: cores)
  monkeypatch.setattr(prepare, "MIN_ENTRIES_FOR_WORKERS", entries_floor)
  monkeypatch.setattr(prepare_shards, "run_tasks", run_tasks)
  with pytest.raises(Chosen) as chosen:
    prepare.prepare_corpus(tiny_corpus, tmp_path, progress=False)
  assert chosen.value.args[0] == expected
