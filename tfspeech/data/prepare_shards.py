"""Shard files of `tfspeech.data.prepare`: writing, done-markers, resume, statistics.

Each shard is written to `NAME.tmp` and renamed when complete, then its marker
`NAME.done` (JSON: fingerprint, examples, skipped and converted entries, frame
lengths, per-bin mel sums, pitch/energy moments) is written; a re-run keeps shards whose marker has
the planned fingerprint. The markers' partial sums give stats.json and the
per-split counts and length deciles of dataset.json without reading any record
again.
"""

import collections
import concurrent.futures
import dataclasses
import itertools
import json
import math
import multiprocessing
import os
import time

import numpy as np
import tensorflow as tf
import tqdm

from tfspeech.data import dataset as dataset_lib
from tfspeech.data import prepare_worker
from tfspeech.data.corpus_info import write_json

MARKER_SUFFIX = ".done"
_STD_FLOOR = 1e-5
_DECILES = np.linspace(0.0, 1.0, 11)


def load_marker(out_dir, shard):
  """The marker of a finished shard with `shard`'s fingerprint, else None (redo it)."""
  marker = out_dir / (shard.name + MARKER_SUFFIX)
  if not marker.is_file() or not (out_dir / shard.name).is_file():
    return None
  try:
    data = json.loads(marker.read_text(encoding="utf-8"))
  except (OSError, ValueError):
    return None
  return data if data.get("fingerprint") == shard.fingerprint else None


def remove_stale_files(out_dir, shards, keep_finished):
  """Deletes shards/markers not in the plan (or all, when not resuming) and temp files."""
  planned = {s.name for s in shards}
  for split in dataset_lib.SPLITS:
    for path in out_dir.glob(f"{split}-*"):
      base = path.name
      for suffix in (".tmp", MARKER_SUFFIX):
        base = base[:-len(suffix)] if base.endswith(suffix) else base
      if path.name.endswith(".tmp") or base not in planned or not keep_finished:
        path.unlink()


class ShardWriter:
  """Writes one shard to a temp file; `finish` renames it and writes its marker."""

  def __init__(self, out_dir, shard, n_mels):
    self.out_dir = out_dir
    self.shard = shard
    self.tmp_path = out_dir / (shard.name + ".tmp")
    self.writer = tf.io.TFRecordWriter(str(self.tmp_path))
    self.remaining = len(shard.tasks)
    self.marker = {
        "fingerprint": shard.fingerprint, "split": shard.split, "index": shard.index,
        "count": shard.count, "num_examples": 0, "audio_seconds": 0.0, "mel_frames": 0,
        "frame_lengths": [], "skipped": [], "converted": [],
    }
    self._sum = np.zeros(n_mels)  # graph-ok: offline statistics
    self._sum_squares = np.zeros(n_mels)  # graph-ok: offline statistics

  def add(self, result: prepare_worker.Result):
    self.remaining -= 1
    if result.skip is not None:
      self.marker["skipped"].append(dataclasses.asdict(result.skip))
      return
    self.writer.write(result.serialized)
    if result.converted is not None:
      self.marker["converted"].append(result.converted)
    self.marker["num_examples"] += 1
    self.marker["audio_seconds"] += result.seconds
    self.marker["mel_frames"] += result.num_frames
    self.marker["frame_lengths"].append(result.num_frames)
    self._sum += result.mel_sum
    self._sum_squares += result.mel_sum_squares
    for name in ("pitch", "energy"):
      moments = getattr(result, name + "_moments")
      if moments is not None:
        total = self.marker.setdefault(name + "_moments", [0.0, 0.0, 0.0])
        for i, value in enumerate(moments):
          total[i] += value

  def finish(self):
    self.writer.close()
    os.replace(self.tmp_path, self.out_dir / self.shard.name)
    self.marker["mel_sum"] = self._sum.tolist()
    self.marker["mel_sum_squares"] = self._sum_squares.tolist()
    write_json(self.out_dir / (self.shard.name + MARKER_SUFFIX), self.marker)
    return self.marker


_NO_ITEM = object()


def ordered_thread_map(function, items, threads, in_flight):
  """`map(function, items)` on `threads` threads, results in order, at most `in_flight` pending.

  The in-process preparation path: TensorFlow releases the GIL while its ops run, so two
  utterances' graphs overlap on two cores without a spawned process's TensorFlow start-up or
  the pickling of every record back to the parent. The bound keeps finished records from
  piling up in memory when writing them is the slower side.
  """
  items = iter(items)
  executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="prepare")
  try:
    futures = collections.deque(
        executor.submit(function, item) for item in itertools.islice(items, in_flight))
    while futures:
      result = futures.popleft().result()
      following = next(items, _NO_ITEM)
      if following is not _NO_ITEM:
        futures.append(executor.submit(function, following))
      yield result
  finally:
    executor.shutdown(wait=True, cancel_futures=True)


def run_tasks(out_dir, pending, settings, workers, n_mels, progress,
              process=prepare_worker.process):
  """Processes the pending shards' utterances and writes their shards and markers.

  Args:
    out_dir: the output directory (pathlib.Path).
    pending: the `Shard`s to write, in plan order.
    settings: `prepare_worker.Settings` for every worker.
    workers: processes; 1 = in this process (on `settings.threads` threads), else a pool
      of 'spawn' processes.
    n_mels: mel bins (for the per-bin sums).
    progress: show a tqdm progress bar.
    process: the task function (Task -> Result); with workers > 1 it must be
      importable by module path, as spawned workers unpickle it by name.

  Returns:
    (markers by shard name, seconds from start to the first result).
  """
  tasks = [task for shard in pending for task in shard.tasks]
  shard_of = {task.position: shard for shard in pending for task in shard.tasks}
  markers = {}
  writers = {}

  def open_writer(shard):
    writers[shard.name] = ShardWriter(out_dir, shard, n_mels)
    if not shard.tasks:
      markers[shard.name] = writers.pop(shard.name).finish()

  for shard in pending:
    if not shard.tasks:
      open_writer(shard)

  workers = max(1, min(int(workers), len(tasks)))
  bar = tqdm.tqdm(total=len(tasks), unit="utt", desc="prepare", disable=not progress)
  pool = results = None
  started = time.perf_counter()
  first_result_seconds = 0.0
  try:
    if workers == 1:
      prepare_worker.init_worker(settings, configure_threads=False)
      threads = max(1, min(settings.threads, len(tasks)))
      results = (map(process, tasks) if threads == 1 else
                 ordered_thread_map(process, tasks, threads, in_flight=4 * threads))
    else:
      pool = multiprocessing.get_context("spawn").Pool(
          workers, initializer=prepare_worker.init_worker, initargs=(settings, True))
      # Ordered results: shards are written in plan order and finish one by one,
      # so an interruption loses at most the shards in flight.
      results = pool.imap(process, tasks, chunksize=max(1, min(8, len(tasks) // (4 * workers))))
    for result in results:
      if not first_result_seconds:
        first_result_seconds = time.perf_counter() - started
      shard = shard_of[result.position]
      if shard.name not in writers:
        open_writer(shard)
      writer = writers[shard.name]
      writer.add(result)
      if writer.remaining == 0:
        markers[shard.name] = writers.pop(shard.name).finish()
      bar.update(1)
  finally:
    bar.close()
    if hasattr(results, "close"):  # the threads' generator: cancel what has not started
      results.close()
    if pool is not None:
      pool.terminate()
      pool.join()
    for writer in writers.values():  # Only after an error: leave no half shard behind.
      writer.writer.close()
      writer.tmp_path.unlink(missing_ok=True)
  return markers, first_result_seconds


# --- the entry point -----------------------------------------------------------------------


def moment_stats(markers, name):
  """{"mean", "std", "frames"} of `name` ("pitch": voiced frames' f0 in Hz, "energy") over
  the markers, or None when they hold none (prepared without pitch, or no voiced frame)."""
  moments = [m[name + "_moments"] for m in markers if name + "_moments" in m]
  count, total, total_squares = np.sum(moments, axis=0) if moments else (0, 0, 0)
  if not count:
    return None
  mean = total / count
  return {"mean": float(mean),
          "std": max(math.sqrt(max(total_squares / count - mean ** 2, 0.0)), _STD_FLOOR),
          "frames": int(count)}


def mel_stats(markers, n_mels):
  """stats.json: per-bin and global mel mean/std over the markers' frames (train split),
  and the pitch/energy statistics (`moment_stats`) when the records carry them."""
  frames = sum(m["mel_frames"] for m in markers)
  if not frames:
    return {"mel_mean": None, "mel_std": None, "mel_frames": 0, "pitch": None, "energy": None}
  total = np.sum([m["mel_sum"] for m in markers], axis=0)  # graph-ok: offline statistics
  total_squares = np.sum([m["mel_sum_squares"] for m in markers], axis=0)  # graph-ok: offline
  mean = total / frames
  std = np.sqrt(np.maximum(total_squares / frames - np.square(mean), 0.0))
  global_mean = float(total.sum() / (frames * n_mels))
  global_var = float(total_squares.sum() / (frames * n_mels)) - global_mean ** 2
  return {
      "mel_mean": mean.tolist(),
      # Floored so that normalizing never divides by zero (e.g. bins above fmax).
      "mel_std": np.maximum(std, _STD_FLOOR).tolist(),
      "mel_global_mean": global_mean,
      "mel_global_std": max(math.sqrt(max(global_var, 0.0)), _STD_FLOOR),
      "mel_frames": int(frames),
      "std_floor": _STD_FLOOR,
      "split": "train",
      "pitch": moment_stats(markers, "pitch"),
      "energy": moment_stats(markers, "energy"),
  }


def split_statistics(by_split):
  """(examples, audio seconds, mel-length deciles) per split, from the shards' markers.

  Args:
    by_split: split -> that split's markers.
  """
  counts = {split: sum(m["num_examples"] for m in by_split[split]) for split in by_split}
  seconds = {split: sum(m["audio_seconds"] for m in by_split[split]) for split in by_split}
  quantiles = {}
  for split, split_markers in by_split.items():
    lengths = [n for m in split_markers for n in m["frame_lengths"]]
    quantiles[split] = np.quantile(lengths, _DECILES).tolist() if lengths else []
  return counts, seconds, quantiles
