"""The training loop: steps, logging, validation, summaries, checkpoints, signals.

`fit` is independent of the registry and of config.json (see `api.train` for
that); tests and custom binaries can drive it with any dataset.
"""

import contextlib
import dataclasses
import math
import os
import signal
import time
from typing import Any, Callable, Mapping, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from tfspeech.training import init_from
from tfspeech.training import multi_worker
from tfspeech.training import step_cache
from tfspeech.training.checkpoints import Checkpoints
from tfspeech.training.progress import Progress
from tfspeech.training.signals import StopRequested
from tfspeech.training.summaries import SummaryWriters
from tfspeech.training.trainer import TrainingDivergedError
from tfspeech.training.workdir_lock import hold_workdir


@dataclasses.dataclass
class TrainResult:
  """What a call to `fit`/`train` did.

  Attributes:
    start_step: global step when this call started (after restoring).
    final_step: global step when it returned.
    losses: the last logged training values (`losses/*` tags without prefix).
    eval_metrics: the last validation metrics ({} when none ran).
    skipped_steps: total skipped (non-finite) steps over the whole run.
    stopped_by_signal: name of the signal that stopped the run, `PEER_STOP` on a worker
      stopped because another worker got one, or None.
    checkpoint: path of the newest checkpoint, or None.
    workdir: the run directory.
  """
  start_step: int
  final_step: int
  losses: dict
  eval_metrics: dict
  skipped_steps: int
  stopped_by_signal: Optional[str]
  checkpoint: Optional[str]
  workdir: str


DATA_CHECKPOINT_MODES = ("symbolic", "reseed")
PEER_STOP = "peer"  # TrainResult.stopped_by_signal: another worker was signalled


def with_symbolic_checkpoint(dataset):
  """Checkpoint map/prefetch buffers as positions rather than contents."""
  options = tf.data.Options()
  options.experimental_symbolic_checkpoint = True
  return dataset.with_options(options)


def _mean_of(history: list) -> dict:
  keys = history[0].keys()
  return {k: float(np.mean(tf.stack([h[k] for h in history]).numpy()))  # graph-ok: logging.
          for k in keys}


def fit(trainer, train_dataset, workdir: str, *, eval_dataset=None,
        stop_at_step: Optional[int] = None, progress: bool = True,
        handle_signals: bool = True,
        trace_cache_key: Optional[Mapping[str, Any]] = None,
        on_signal_stop: Optional[Callable[[TrainResult], Any]] = None) -> TrainResult:
  """Trains until `stop_at_step` (default `config.max_steps`), resuming from WORKDIR.

  Args:
    trainer: a `Trainer`.
    train_dataset: infinite dataset of global batches.
    workdir: run directory (checkpoints/, train/, eval/ are created inside).
    eval_dataset: finite validation dataset, or None.
    stop_at_step: stop when the global step reaches this (≤ max_steps); the
      config is unchanged, so a later call continues to max_steps.
    progress: show a tqdm bar (only on a TTY).
    handle_signals: SIGINT/SIGTERM save a checkpoint and return early; the
      save path is warmed up at start so that save takes well under a second.
    trace_cache_key: what the traced functions depend on besides the code and versions
      (JSON-able: the run's config, the corpus's metadata). With it, a single-replica
      run keeps its traced train step, eval step and summaries in WORKDIR/trace_cache/
      and a later start with the same key calls them without tracing
      (`tfspeech.training.step_cache`).
    on_signal_stop: called with the `TrainResult` when a signal (or a stopping peer)
      ended the run, once its checkpoint is written and the writers are closed, but
      before this function's trainer state, datasets and traced graphs are released.
      A binary that exits the process here skips that release, which took 2 s on a
      quiet 2-core host and 9–19 s on busy CI hosts, past a container's grace period.

  Under `MultiWorkerMirroredStrategy` every worker runs `fit` on the same dataset of
  global batches; only the chief holds the lock and writes checkpoints and summaries
  into `workdir` (see `tfspeech.training.multi_worker`), and a signal on any worker
  stops all of them after the same step.

  A run without a checkpoint of its own first loads `config.init_from` (another
  run's weights, see `tfspeech.training.init_from`); a resumed run never does.

  Checkpoints are never written while the most recent step(s) were skipped as
  non-finite (the weights are not known good): a periodic save waits for the
  next applied step, and a stop during a skip streak keeps the checkpoint from
  before it.

  Raises:
    TrainingDivergedError: `max_consecutive_skips` consecutive non-finite steps.
    NonFiniteWeightsError: a variable became non-finite (no checkpoint written).
    WorkdirLockedError: another process is training in `workdir`.
    InitFromError, FileNotFoundError: `config.init_from` cannot initialise this run.
  """
  role = getattr(trainer, "role", None) or multi_worker.WorkerRole()
  with hold_workdir(workdir) if role.is_chief else contextlib.nullcontext():
    return _fit(trainer, train_dataset, workdir, eval_dataset=eval_dataset,
                stop_at_step=stop_at_step, progress=progress, handle_signals=handle_signals,
                trace_cache_key=trace_cache_key, on_signal_stop=on_signal_stop)


def _trace_cached(trainer, workdir, key_parts):
  """(traced function, name, element_spec) → it behind WORKDIR/trace_cache, where used."""
  # The default strategy (one replica), not entered: distributed steps always trace.
  used = (key_parts is not None and not tf.distribute.has_strategy()
          and trainer.strategy is tf.distribute.get_strategy())

  def wrap(traced, name, element_spec):
    cache = step_cache.StepCache(os.path.join(workdir, "trace_cache"), name,
                                 step_cache.cache_key(key_parts, element_spec)) if used else None
    return step_cache.CachingFunction(traced, cache, element_spec,
                                      lambda: _traced_variables(trainer))
  return wrap


def _traced_variables(trainer):
  """Every variable a traced step may capture, in the same order in every process."""
  # The checkpoint's variables, then those only Keras tracks (dropout seed states).
  found = step_cache.trackable_variables(tf.train.Checkpoint(**trainer.checkpoint_objects()))
  for owners in (trainer.modules, trainer.optimizers):
    for owner in owners.values():
      found.extend(owner.variables)
  return found


def _fit(trainer, train_dataset, workdir, *, eval_dataset, stop_at_step, progress,
         handle_signals, trace_cache_key, on_signal_stop):
  config = trainer.config
  role = getattr(trainer, "role", None) or multi_worker.WorkerRole()
  stop_at = min(stop_at_step or config.max_steps, config.max_steps)
  data_checkpoint = getattr(trainer.task, "data_checkpoint", "symbolic")
  if data_checkpoint not in DATA_CHECKPOINT_MODES:
    raise ValueError(f"{type(trainer.task).__name__}.data_checkpoint must be one of "
                     f"{DATA_CHECKPOINT_MODES}, got {data_checkpoint!r}")
  if data_checkpoint == "symbolic":
    iterator = iter(with_symbolic_checkpoint(train_dataset))
    checkpoints = Checkpoints(trainer, workdir, iterator)
  else:  # "reseed": the caller built train_dataset with seed + step (see api.train).
    iterator = iter(train_dataset)
    checkpoints = Checkpoints(trainer, workdir)
  restored = checkpoints.restore_latest()
  if restored is None:
    # A new run: start from another run's weights when asked (fine-tuning).
    init_from.initialize(trainer)
  else:
    trainer.reset_constant_learning_rates()
  step = restored or 0
  start_step = step
  if handle_signals:
    checkpoints.warm_up()  # a stop signal's save must not pay for tracing
  cached = _trace_cached(trainer, workdir, trace_cache_key)
  train_fn = cached(trainer.train_step_fn(train_dataset.element_spec), "train_step",
                    train_dataset.element_spec)
  eval_fn = None
  if eval_dataset is not None and trainer.has_eval():
    eval_fn = cached(trainer.eval_step_fn(eval_dataset.element_spec), "eval_step",
                     eval_dataset.element_spec)
  summary_batch = None
  summaries_fn = None
  if config.summary_every and role.is_chief:  # media needs no collectives: chief only
    source = eval_dataset if eval_dataset is not None else train_dataset
    summary_batch = next(iter(source.take(1)), None)
    if summary_batch is not None:
      # Traced for this one batch: its shapes are part of the key.
      summaries_fn = cached(tf.function(trainer.task.summaries), "summaries",
                            tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype),
                                                  summary_batch))
  writers = SummaryWriters(workdir, enabled=role.is_chief)
  bar = Progress(step, config.max_steps, enabled=progress and role.is_chief)
  history, last_losses, eval_metrics = [], {}, {}
  stopped_by = None
  save_due = False  # a periodic checkpoint postponed by a skip streak
  window_start, window_steps, window_items = time.perf_counter(), 0, 0.0
  logging.info("training %s from step %d to %d (%d replica(s), %s)", trainer.task.name or
               type(trainer.task).__name__, step, stop_at, trainer.num_replicas, role)
  # Several workers stop together: a signal becomes a vote counted in the next step.
  voting, voted, cluster_stops = role.multi_worker, False, False

  def skip_streak():
    """Steps skipped in a row up to now; their weights are not known good."""
    return int(trainer.consecutive_skips.numpy())  # graph-ok: host bookkeeping.

  def not_saving(why, streak):
    logging.warning(
        "not saving a checkpoint at step %d (%s): the last %d step(s) were skipped as "
        "non-finite, so the weights are not known to be good. The newest checkpoint from "
        "before the skips is %s.", step, why, streak, checkpoints.newest_before(step - streak + 1))

  def run_eval():
    sums, batches = {}, 0
    for batch in eval_dataset.take(config.eval_batches):
      for k, v in eval_fn(batch).items():
        sums[k] = sums.get(k, 0.0) + v
      batches += 1
    if not batches:
      logging.warning("the eval dataset yielded no batch")
      return {}
    return {k: float(v.numpy()) / batches for k, v in sums.items()}  # graph-ok: logging.

  stop = StopRequested(enabled=handle_signals)
  try:
    with stop:
      while step < stop_at and not (cluster_stops if voting else stop.requested):
        if voting and stop.requested and not voted:
          trainer.request_stop()
          voted = True
        try:
          batch = next(iterator)
        except StopIteration:
          raise RuntimeError(
              f"the train dataset ended at step {step}; Task.dataset(split='train') must "
              "repeat forever (.repeat())") from None
        metrics = train_fn(batch)
        if voting:
          # A host read each step; the step's all-reduces already make the workers wait
          # for one another.
          cluster_stops = float(metrics.pop("stop_votes")) > 0  # graph-ok: one scalar a step.
        step += 1
        history.append(metrics)
        bar.update()
        if step % config.log_every == 0 or step == stop_at:
          means = _mean_of(history)
          now = time.perf_counter()
          window_steps += len(history)
          window_items += means["items"] * len(history)
          elapsed = max(now - window_start, 1e-9)
          last = {k: float(history[-1][k].numpy())  # graph-ok: logging.
                  for k in ("skipped_steps", "consecutive_skips")}
          scalars = {k: v for k, v in means.items()
                     if k not in ("items", "skipped_steps", "consecutive_skips")}
          scalars.update({"skipped_steps": last["skipped_steps"],
                          "throughput/steps_per_sec": window_steps / elapsed,
                          "throughput/items_per_sec": window_items / elapsed})
          writers.scalars(step, scalars, "train")
          last_losses = {k.split("/", 1)[1]: v for k, v in scalars.items()
                         if k.startswith("losses/")}
          bar.set_metrics(dict(list(last_losses.items())[:2]))
          logging.info("step %d: %s, %.2f steps/s", step,
                       ", ".join(f"{k}={v:.4g}" for k, v in last_losses.items()),
                       window_steps / elapsed)
          history, window_start, window_steps, window_items = [], now, 0, 0.0
          if last["consecutive_skips"] >= config.max_consecutive_skips:
            streak = int(last["consecutive_skips"])
            raise TrainingDivergedError(
                f"{streak} consecutive steps up to step {step} had non-finite losses or "
                f"gradients (limit max_consecutive_skips={config.max_consecutive_skips}); "
                "nothing was applied during them and no checkpoint was written. The last "
                "checkpoint from before them is "
                f"{checkpoints.newest_before(step - streak + 1)}; a resume restarts from it. "
                "Check the data for NaN/Inf, lower the learning rate or enable clip_norm.")
        if eval_fn is not None and config.eval_every and step % config.eval_every == 0:
          eval_metrics = run_eval()
          writers.scalars(step, {f"losses/{k}": v for k, v in eval_metrics.items()}, "eval")
          logging.info("eval at step %d: %s", step,
                       ", ".join(f"{k}={v:.4g}" for k, v in eval_metrics.items()))
          if config.keep_best and config.keep_best in eval_metrics:
            value = eval_metrics[config.keep_best]
            best = float(trainer.best_metric.numpy())  # graph-ok: host-side bookkeeping.
            if math.isfinite(value) and value < best and not skip_streak():
              trainer.best_metric.assign(value)
              checkpoints.save(step, best=True)
        if summaries_fn is not None and step % config.summary_every == 0:
          outputs = summaries_fn(summary_batch)
          if outputs:
            writers.media(step, outputs, trainer.task.sample_rate)
        if step % config.checkpoint_every == 0:
          save_due = True
        if save_due:
          # Never while steps are being skipped: a finite update can blow the weights up
          # (to 1e30, say) and every later step is then skipped; saving such weights would
          # make a resume restart from them. The save waits for the next applied step.
          streak = skip_streak()
          if not streak:
            checkpoints.save(step)
            save_due = False
          elif step % config.checkpoint_every == 0:
            not_saving("due; saved at the next applied step", streak)
      stopped_by = stop.signum
      if stopped_by is None and cluster_stops:
        stopped_by = PEER_STOP
      if checkpoints.last_saved_step != step:
        streak = skip_streak()
        if streak:
          not_saving("stopping", streak)
        else:
          checkpoints.save(step)
  except BaseException:
    stop.thaw()
    raise
  finally:
    bar.close()
    writers.flush()
    writers.close()
    checkpoints.close()
  if isinstance(stopped_by, int):
    stopped_by = signal.Signals(stopped_by).name
  if stopped_by:
    # With the binary's exit line, these timestamps split a slow signal exit into the save,
    # this function's clean-up and the caller's exit.
    logging.info("stopped by %s at step %d: writers and checkpoints closed", stopped_by, step)
  result = TrainResult(
      start_step=start_step, final_step=step, losses=last_losses, eval_metrics=eval_metrics,
      skipped_steps=int(trainer.skipped_steps.numpy()),  # graph-ok: bookkeeping.
      stopped_by_signal=stopped_by,
      checkpoint=checkpoints.latest, workdir=workdir)
  try:
    if stopped_by and on_signal_stop is not None:
      on_signal_stop(result)
  finally:
    stop.thaw()  # the caller keeps the process: its garbage is collectable again
  return result
