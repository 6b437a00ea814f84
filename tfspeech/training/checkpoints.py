"""Training checkpoints: what is saved, retention, the non-finite guard, restore.

A checkpoint holds every module weight, every optimizer (slots, `iterations`,
loss scale), the global step, skip counters, the best eval metric, the step RNG
(`tf.random.Generator` state) and, for "symbolic" tasks, the tf.data iterator.

Data position (`Task.data_checkpoint`): with "symbolic" the *iterator itself*
is checkpointed (tf.data's own iterator checkpointing), so a resumed run sees
exactly the batches an uninterrupted one would (tests/training/test_resume.py
compares the loss curves value by value). With "reseed" (prepared TFRecord
corpora: Grad-TTS, HiFi-GAN by default) no iterator is saved and `api.train`
rebuilds the pipeline with `seed + step`: a new shuffle (and new HiFi-GAN
crops) from the start of a fresh pass, so the batches after a resume differ
from an uninterrupted run's. Replaying epochs with the original seed and
skipping to the offset would be exact, but needs a known epoch length (unknown
once items are filtered or bucketed) and re-reads everything it skips.

Not in the checkpoint: the state of Keras `SeedGenerator`s (`Dropout` masks;
they are module variables but not `module.weights`), so dropout restarts from
its initial seed on resume; and the partial `log_every` window, so a run
stopped between two log steps logs, at the next one, the mean of only the
steps since the restart.

Cost: iterator checkpoints store the contents of shuffle buffers. The loop sets
`tf.data.Options().experimental_symbolic_checkpoint`, which stores map and
prefetch buffers as positions, but shuffle cannot be symbolic (measured on
TF 2.17: a 1000-slot shuffle of 40 KB elements gives a ~10 MB checkpoint with
or without the option). So tasks shuffle *file indices* before loading audio;
the buffer then costs 8 bytes a slot. (MirroredStrategy's distributed
iterator cannot be checkpointed in TF 2.17, so the loop iterates the plain
dataset and each replica slices its share of the global batch.)

Retention (a million-step run must not fill the disk, nor lose more than one interval
when killed): WORKDIR/checkpoints/ keeps the newest `keep_checkpoints` (K) saves, plus one
per `keep_every_n_hours`; with `keep_every_steps` (N) every save at a multiple of N is also
kept for good in WORKDIR/kept/ as hard links of its files (a copy where links fail), so
disk use is about (K + steps / N) checkpoints. Kill safety: tf.train.CheckpointManager
writes the new checkpoint's files, then atomically rewrites the `checkpoint` state file,
then deletes the oldest, so a kill at any moment leaves the previous (or the new)
checkpoint restorable; a kept copy links the data files before the .index, and a prefix
without .index is not listed by `kept_checkpoints`. `write_weights` writes the modules'
weights only (no optimizer slots, RNG or data position): the release form of a run,
readable by `load_run(workdir, checkpoint=PATH)`.

Layout: WORKDIR/checkpoints/ckpt-<step>.*, WORKDIR/kept/ckpt-<step>.*,
WORKDIR/best/ckpt-<step>.*.

Several workers (`multi_worker`): only the chief writes into WORKDIR. Every worker
restores WORKDIR's newest checkpoint; the others save (saving may run collectives, so
all must) into a local scratch directory holding one checkpoint, deleted by `close`.
"""

import os
import re
import shutil
import tempfile
import time

import tensorflow as tf
from absl import logging

CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
KEPT_DIR = "kept"


class _ModuleWeights(tf.Module):
  """Tracks every weight of a Keras module by its position in `module.weights`.

  Keras 3.15 on TF hides sub-layers held in Python lists from
  `tf.train.Checkpoint` (its TrackedList is not a TF trackable), so
  checkpointing a module directly silently drops those weights while
  `assert_consumed()` still passes. `module.weights` lists every weight, in an
  order fixed by the architecture code, so it is the one reliable key.
  """

  def __init__(self, module):
    super().__init__(name=None)
    self.weights = list(module.weights)


def modules_checkpoint(modules) -> tf.train.Checkpoint:
  """A `tf.train.Checkpoint` over every weight of each named Keras module.

  Used for training checkpoints and by `load_run`, so both use the same keys.
  """
  return tf.train.Checkpoint(**{name: _ModuleWeights(m) for name, m in modules.items()})


class NonFiniteWeightsError(RuntimeError):
  """Variables became NaN/Inf; the last good checkpoint was kept."""


class CheckpointRestoreError(RuntimeError):
  """A checkpoint did not match the run's model, optimizers or data pipeline."""


class Checkpoints:
  """Saves and restores a `Trainer`'s state (plus a data iterator) in a workdir."""

  def __init__(self, trainer, workdir: str, iterator=None):
    config = trainer.config
    self.trainer = trainer
    role = getattr(trainer, "role", None)
    self.is_chief = role is None or role.is_chief
    objects = trainer.checkpoint_objects()
    if iterator is not None:
      objects["data"] = iterator
    self.checkpoint = tf.train.Checkpoint(**objects)
    self.directory = os.path.join(workdir, CHECKPOINT_DIR)  # the run's (restored from)
    # A non-chief worker's saves go to scratch; WORKDIR is the chief's alone.
    self.scratch = None if self.is_chief else tempfile.mkdtemp(prefix="tfspeech-worker-save-")
    save_root = self.scratch or workdir
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(save_root, CHECKPOINT_DIR),
        max_to_keep=config.keep_checkpoints if self.is_chief else 1,
        keep_checkpoint_every_n_hours=config.keep_every_n_hours if self.is_chief else None)
    self.keep_every_steps = getattr(config, "keep_every_steps", None) if self.is_chief else None
    self.kept_directory = os.path.join(workdir, KEPT_DIR)
    self.best_manager = None
    if config.keep_best:
      self.best_manager = tf.train.CheckpointManager(
          self.checkpoint, os.path.join(save_root, BEST_DIR), max_to_keep=1)
    self.last_saved_step = None

  @property
  def latest(self):
    """The run's newest checkpoint (on a non-chief worker: the one the chief wrote with
    this worker's last save)."""
    if self.is_chief:
      return self.manager.latest_checkpoint
    if self.last_saved_step is None:
      return tf.train.latest_checkpoint(self.directory)
    return os.path.join(self.directory, f"ckpt-{self.last_saved_step}")

  def close(self):
    """Deletes a non-chief worker's scratch saves (nothing to do on the chief)."""
    if self.scratch:
      shutil.rmtree(self.scratch, ignore_errors=True)
      self.scratch = None

  def newest_before(self, step: int):
    """The newest kept training checkpoint written at a step < `step`, or None."""
    earlier = [p for p in self.manager.checkpoints if checkpoint_step(p) < step]
    return max(earlier, key=checkpoint_step) if earlier else None

  def warm_up(self):
    """Runs the whole save path once into a scratch directory, so real saves are fast.

    The first save in a process traces the non-finite check over every variable
    and builds TF's saver (1.5–4 s for the tiny grad_tts on 2 CPU cores, 7–11 s
    reported on a GPU host); a SIGTERM must be saved and exited within a
    container's ~10 s grace period, so that cost is paid at start-up instead.
    The scratch copy is deleted; a failure here only costs speed later.
    """
    start = time.perf_counter()
    self.trainer.nonfinite_variables()
    scratch = tempfile.mkdtemp(prefix="tfspeech-save-warmup-")
    try:
      self.checkpoint.write(os.path.join(scratch, "ckpt"))
    except (OSError, tf.errors.OpError) as e:
      logging.warning("could not warm up checkpoint saving in %s (%s); the first save may "
                      "be slow", scratch, e)
    finally:
      shutil.rmtree(scratch, ignore_errors=True)
    logging.info("checkpoint saving warmed up in %.1f s", time.perf_counter() - start)

  def restore_latest(self):
    """Restores the newest checkpoint, if any. Returns its step or None."""
    path = self.manager.latest_checkpoint if self.is_chief else \
        tf.train.latest_checkpoint(self.directory)
    if path is None:
      return None
    try:
      self.checkpoint.restore(path).assert_consumed()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
      raise CheckpointRestoreError(
          f"cannot restore {path}: it does not match this run's modules, optimizers or "
          f"data pipeline ({type(e).__name__}: {e}). Was the task's code or dataset "
          "changed? Use a new workdir, or restore the code that wrote it.") from e
    step = int(self.trainer.step.numpy())  # graph-ok: host bookkeeping.
    self.last_saved_step = step
    self._keep_missed()
    logging.info("restored %s (step %d)", path, step)
    return step

  def _keep_missed(self):
    """Keeps every-N-th checkpoints whose keeping a kill cut short (saved, not yet kept)."""
    if not self.keep_every_steps:
      return
    kept = {checkpoint_step(p) for p in kept_checkpoints(os.path.dirname(self.directory))}
    for path in self.manager.checkpoints:
      step = checkpoint_step(path)
      if step % self.keep_every_steps == 0 and step not in kept:
        logging.info("keeping %s (its keeping was interrupted)", path)
        keep_copy(path, self.kept_directory)

  def save(self, step: int, *, best: bool = False):
    """Saves at `step` unless a variable is non-finite.

    Returns:
      The checkpoint path.

    Raises:
      NonFiniteWeightsError: some variable is NaN/Inf; nothing was written and
        the previous checkpoint stays the latest.
    """
    bad = self.trainer.nonfinite_variables()
    if bad:
      message = (f"NOT saving a checkpoint at step {step}: {len(bad)} variable(s) are "
                 f"non-finite ({', '.join(bad[:5])}{', …' if len(bad) > 5 else ''}). "
                 f"The last good checkpoint is {self.latest}. Resuming restarts from it; "
                 "consider a lower learning rate (allow_changes / --override=learning_rate).")
      logging.error(message)
      raise NonFiniteWeightsError(message)
    manager = self.best_manager if best else self.manager
    path = manager.save(checkpoint_number=step)
    if not best:
      self.last_saved_step = step
      if self.keep_every_steps and step % self.keep_every_steps == 0:
        keep_copy(path, self.kept_directory)
    logging.info("saved %s%s", path, "" if self.is_chief else " (worker scratch)")
    return path


def _checkpoint_files(prefix):
  """The files of checkpoint `prefix`: data shards first, the .index last."""
  data = sorted(tf.io.gfile.glob(prefix + ".data-*"))
  return data + [prefix + ".index"]


def keep_copy(prefix: str, directory: str) -> str:
  """Keeps checkpoint `prefix` in `directory` (hard links, or copies); returns the new prefix.

  The .index goes last, so a kill part-way leaves a prefix `kept_checkpoints` ignores.
  """
  os.makedirs(directory, exist_ok=True)
  target = os.path.join(directory, os.path.basename(prefix))
  for source in _checkpoint_files(prefix):
    destination = os.path.join(directory, os.path.basename(source))
    partial = destination + ".tmp"
    if os.path.exists(partial):
      os.remove(partial)
    try:
      os.link(source, partial)
    except OSError:  # another file system, or no hard links there
      shutil.copyfile(source, partial)
    os.replace(partial, destination)  # atomic: no half-written file under the real name
  return target


def kept_checkpoints(workdir: str) -> list:
  """Prefixes of the complete checkpoints in WORKDIR/kept/, oldest first."""
  directory = os.path.join(workdir, KEPT_DIR)
  prefixes = [p[:-len(".index")] for p in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index"))]
  return sorted(prefixes, key=checkpoint_step)


def write_weights(modules, path: str, step: int = 0) -> str:
  """Writes only the weights of `modules` (name → Keras module) to checkpoint prefix `path`.

  The keys are a training checkpoint's ("modules/<name>/...", "step"), so `load_run(workdir,
  checkpoint=path)` restores from it; optimizer slots, the RNG and the data position are
  left out (for Adam, about a third of a training checkpoint).

  Returns:
    The written prefix.
  """
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  checkpoint = tf.train.Checkpoint(modules=modules_checkpoint(modules),
                                   step=tf.Variable(int(step), dtype=tf.int64))
  return checkpoint.write(path)


def checkpoint_step(path) -> int:
  """The step in a checkpoint prefix `…/ckpt-<step>` (0 when there is none)."""
  match = re.search(r"ckpt-(\d+)$", path or "")
  return int(match.group(1)) if match else 0


def latest_checkpoint(workdir: str):
  """Path of the newest training checkpoint in `workdir`, or None."""
  return tf.train.latest_checkpoint(os.path.join(workdir, CHECKPOINT_DIR))
