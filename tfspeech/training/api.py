"""Entry points for the binaries: `train`, `resolve_config`, `load_run`, `count_parameters`.

  result = train("toy", "tiny", data_dir="", workdir="/tmp/run",
                 overrides=parse_overrides("batch_size=8,max_steps=200"))
  loaded = load_run("/tmp/run")               # task, config, restored modules
  counts = count_parameters(loaded.modules)   # {"net": {"trainable": …, …}}

A model is named by its registered name or given as its `Task` class. Names
resolve through the `tasks` argument (a callable name → Task class) or the
default lookup the model registry installs when it is imported (callers above
this floor pass `tasks=registry.get`); this floor never imports the registry.
"""

import contextlib
import dataclasses
import hashlib
import os
from typing import Any, Callable, Mapping, Optional, Union

import tensorflow as tf
from absl import logging

from tfspeech import config as cfg
from tfspeech.training import checkpoints as checkpoints_lib
from tfspeech.training import init_from
from tfspeech.training import multi_worker
from tfspeech.training import precision as precision_lib
from tfspeech.training.config import (ConfigMismatchError, RunConfig, apply_run_overrides,
                                      load_run_config, override_paths, resolve_run_config,
                                      write_run_config)
from tfspeech.training.loop import TrainResult, fit
from tfspeech.training.task import TaskLookup, resolve_task
from tfspeech.training.trainer import Trainer
from tfspeech.training.workdir_lock import hold_workdir

Model = Union[str, type]


def _lookup(model: Model, tasks: Optional[TaskLookup]) -> tuple[str, type, TaskLookup]:
  """(model name, Task class, lookup of stored names) for `model` (a name or a Task class)."""
  task_class = resolve_task(model, tasks)
  name = model if isinstance(model, str) else (task_class.name or task_class.__name__)

  def lookup(stored_name):
    return task_class if stored_name == name else resolve_task(stored_name, tasks)
  return name, task_class, lookup


def _config_class_for(lookup: TaskLookup):
  return lambda name: lookup(name).config_class


@dataclasses.dataclass
class ResolvedConfig:
  """The outcome of `resolve_config`.

  Attributes:
    task_class: the registered `Task` subclass.
    run: the `RunConfig` to train with.
    changes: accepted safe changes versus the stored config (resume only).
    resumed: whether WORKDIR/config.json existed.
  """
  task_class: type
  run: RunConfig
  changes: list
  resumed: bool


def resolve_config(model_name: Model, preset: Optional[str] = None, *, data_dir: str = "",
                   workdir: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
                   allow_changes=(), tasks: Optional[TaskLookup] = None) -> ResolvedConfig:
  """Works out the run config from the task's presets, WORKDIR/config.json and overrides.

  New run: preset config + the task's default `TrainConfig` + overrides.
  Resume: the *stored* config + overrides; `preset` (if given) must match the
  stored one, and every changed field must be safe and listed in
  `allow_changes` (see `resolve_run_config`).

  Args:
    model_name: registered name, or the `Task` class.
    preset: model preset; required for a new run, optional on resume.
    data_dir: data directory ("" keeps the stored one on resume).
    workdir: run directory (None: never resume).
    overrides: key → value ("key" is a bare field name or `model.`/`train.`
      prefixed; str values are parsed by field type, see `parse_overrides`).
    allow_changes: safe keys that may change on resume.
    tasks: name → Task class (default: the model registry's `get`).

  Raises:
    ConfigMismatchError: refused change, with the diff in the message.
    tfspeech.config.ConfigError: unknown field or bad value.
    KeyError: unknown model or preset.
  """
  overrides = dict(overrides or {})
  model_name, task_class, lookup = _lookup(model_name, tasks)
  stored = load_run_config(workdir, _config_class_for(lookup)) if workdir else None
  if stored is None:
    if workdir and checkpoints_lib.latest_checkpoint(workdir):
      raise ConfigMismatchError(
          f"{workdir} holds checkpoints but no config.json; restore config.json or use a "
          "new workdir")
    if preset is None:
      raise ValueError(f"a new run needs a preset; model {model_name!r} has "
                       f"{sorted(task_class.presets)}")
    base = RunConfig(model=model_name, preset=preset, model_config=task_class.preset(preset),
                     train=task_class.default_train_config(preset), data_dir=data_dir)
    return ResolvedConfig(task_class, apply_run_overrides(base, overrides), [], False)
  if stored.model != model_name:
    raise ConfigMismatchError(
        f"{workdir} holds a run of model {stored.model!r}; refusing to resume it as "
        f"{model_name!r} (stored → requested):\n  model_name: {stored.model!r} → "
        f"{model_name!r}  [fixed for the life of a run]")
  requested = dataclasses.replace(stored, preset=preset or stored.preset,
                                  data_dir=data_dir or stored.data_dir)
  requested = apply_run_overrides(requested, overrides)
  run, changes = resolve_run_config(stored, requested, allow_changes)
  return ResolvedConfig(task_class, run, changes, True)


def train(model_name: Model, preset: Optional[str] = None, data_dir: str = "", workdir: str = "",
          overrides: Optional[Mapping[str, Any]] = None, allow_changes=(),
          strategy: Union[tf.distribute.Strategy, str, None] = None,
          stop_at_step: Optional[int] = None, progress: bool = True,
          handle_signals: bool = True, tasks: Optional[TaskLookup] = None,
          trace_cache: bool = True,
          on_signal_stop: Optional[Callable[[TrainResult], Any]] = None) -> TrainResult:
  """Trains (or resumes) a registered model in `workdir`.

  Args:
    model_name: registered name (e.g. "toy"), or the `Task` class.
    preset: model preset (required for a new run).
    data_dir: directory handed to the task's `dataset` hook.
    workdir: run directory; holds config.json, checkpoints/, train/, eval/.
    overrides: config overrides, see `resolve_config`.
    allow_changes: safe fields allowed to differ from the stored config.
    strategy: a `tf.distribute.Strategy`, or "default", "mirrored" or "multi_worker"
      (`MultiWorkerMirroredStrategy` from TF_CONFIG; create it before any other
      TensorFlow work in the process). Default: the current strategy. With several
      workers only the chief writes into `workdir` (see `tfspeech.training.multi_worker`).
    stop_at_step: return once the global step reaches this (config unchanged).
    progress: tqdm bar on a TTY.
    handle_signals: SIGINT/SIGTERM save a checkpoint and return early.
    tasks: name → Task class (default: the model registry's `get`).
    trace_cache: keep the traced train step, eval step and summaries in
      WORKDIR/trace_cache/, so that a resume (same code, versions and config) skips
      tracing them (`tfspeech.training.step_cache`); single-replica runs only.
    on_signal_stop: called with the `TrainResult` of a run a signal stopped, after its
      checkpoint is written and before the trainer and datasets are released (see `fit`):
      where a binary exits the process.

  Returns:
    `TrainResult` (start/final step, last losses, eval metrics, skipped steps,
    stopping signal, newest checkpoint).

  Raises:
    WorkdirLockedError: another process is running in `workdir` (its pid and
      host are in the message).
    multi_worker.ClusterConfigError: "multi_worker" with a missing or malformed
      TF_CONFIG (the message says what to set).
  """
  if not workdir:
    raise ValueError("train() needs a workdir")
  strategy = multi_worker.make_strategy(strategy)
  # Held from before config.json is read until the last checkpoint is written, so a
  # second process can neither rewrite the config nor interleave checkpoints. The other
  # workers of a cluster share the chief's workdir and write nothing there.
  chief = multi_worker.worker_role(strategy).is_chief
  with hold_workdir(workdir) if chief else contextlib.nullcontext():
    return _train(model_name, preset, data_dir, workdir, overrides, allow_changes, strategy,
                  stop_at_step, progress, handle_signals, tasks, trace_cache, on_signal_stop)


def _train(model_name, preset, data_dir, workdir, overrides, allow_changes, strategy,
           stop_at_step, progress, handle_signals, tasks, trace_cache, on_signal_stop):
  resolved = resolve_config(model_name, preset, data_dir=data_dir, workdir=workdir,
                            overrides=overrides, allow_changes=allow_changes, tasks=tasks)
  run = resolved.run
  precision_lib.check_mixed_precision(resolved.task_class, run.train.mixed_precision)
  task = resolved.task_class(run.model_config)
  chief = multi_worker.worker_role(strategy).is_chief
  if not resolved.resumed:
    if run.train.init_from:
      init_from.check_source(run.train.init_from)  # before config.json exists
    if chief:
      run = dataclasses.replace(run, data_info=dict(task.data_info(run.data_dir)))
      write_run_config(workdir, run)
  elif resolved.changes and chief:
    step = checkpoints_lib.checkpoint_step(checkpoints_lib.latest_checkpoint(workdir))
    for change in resolved.changes:
      logging.warning("resuming with changed %s", str(change).strip())
    write_run_config(workdir, run, resolved.changes, step=step)
  trainer = Trainer(task, run.train, strategy)
  data_config = run.train
  if getattr(task, "data_checkpoint", "symbolic") == "reseed":
    # No iterator in the checkpoint: continue with a fresh shuffle seeded by the step.
    resume_step = checkpoints_lib.checkpoint_step(checkpoints_lib.latest_checkpoint(workdir))
    data_config = dataclasses.replace(run.train, seed=run.train.seed + resume_step)
  train_dataset = task.dataset(run.data_dir, "train", data_config)
  eval_dataset = task.dataset(run.data_dir, "eval", run.train) if trainer.has_eval() else None
  return fit(trainer, train_dataset, workdir, eval_dataset=eval_dataset,
             stop_at_step=stop_at_step, progress=progress, handle_signals=handle_signals,
             trace_cache_key=trace_cache_key(run) if trace_cache else None,
             on_signal_stop=on_signal_stop)


# Train fields that only the loop reads: a resume may change them and keep its traced step.
_LOOP_ONLY_FIELDS = ("max_steps", "log_every", "checkpoint_every", "keep_checkpoints",
                     "keep_every_n_hours", "keep_every_steps", "keep_best", "eval_every",
                     "eval_batches", "summary_every", "max_consecutive_skips", "init_from",
                     "init_optimizers")


def trace_cache_key(run: RunConfig) -> dict:
  """What a run's traced functions depend on besides code and versions (step_cache).

  The whole config but the loop's own fields, and the contents of the corpus's JSON
  files (statistics such as the pitch mean reach the graph as constants).
  """
  config = run.to_dict()
  config["train"] = {k: v for k, v in config["train"].items() if k not in _LOOP_ONLY_FIELDS}
  config.pop("data_dir")
  data_files = {}
  if run.data_dir and tf.io.gfile.isdir(run.data_dir):
    for name in sorted(tf.io.gfile.listdir(run.data_dir)):
      if name.endswith(".json"):
        with tf.io.gfile.GFile(os.path.join(run.data_dir, name), "rb") as f:
          data_files[name] = hashlib.sha256(f.read()).hexdigest()
  return {"config": config, "data_files": data_files}


@dataclasses.dataclass
class LoadedRun:
  """A run restored for inference/export (`load_run`).

  Attributes:
    task: the `Task`, with `task.modules` built (and restored).
    config: the `RunConfig`.
    modules: name → Keras module (same as `task.modules`).
    step: global step of the restored checkpoint (0 if none restored).
    checkpoint: path restored from, or None.
    precision: the compute precision its modules were built for ("float32" or
      "bfloat16"; see `tfspeech.training.precision`); its serving object is
      built for the same.
  """
  task: Any
  config: RunConfig
  modules: dict
  step: int
  checkpoint: Optional[str]
  precision: str = "float32"


def load_run(workdir: str, checkpoint: Optional[str] = None, *,
             restore: bool = True, tasks: Optional[TaskLookup] = None,
             precision: str = "float32") -> LoadedRun:
  """Builds the task of a run and restores its module weights.

  Args:
    workdir: a run directory with config.json.
    checkpoint: a specific checkpoint prefix (default: the newest, or the one in
      WORKDIR/best when `checkpoint="best"`).
    restore: False builds fresh modules only (e.g. to count parameters).
    tasks: name → Task class (default: the model registry's `get`).
    precision: "float32", or "bfloat16" for inference in bfloat16 compute (variables stay
      float32, so any checkpoint restores) where the model's task lists it in
      `serving_precisions`.

  Raises:
    FileNotFoundError: no config.json, or no checkpoint to restore.
    ValueError: the model does not run at `precision`.
  """
  run = load_run_config(workdir, lambda name: resolve_task(name, tasks).config_class)
  if run is None:
    raise FileNotFoundError(f"{os.path.join(workdir, 'config.json')} not found: "
                            f"{workdir} is not a tfspeech run directory")
  task_class = resolve_task(run.model, tasks)
  precision_lib.check_precision(task_class, precision)
  precision_lib.warn_if_emulated(precision)
  task = task_class(run.model_config)
  with precision_lib.precision_policy(precision):
    modules = task.build_modules()
  if not restore:
    return LoadedRun(task, run, modules, 0, None, precision)
  if checkpoint == "best":
    checkpoint = tf.train.latest_checkpoint(os.path.join(workdir, checkpoints_lib.BEST_DIR))
  else:
    checkpoint = checkpoint or checkpoints_lib.latest_checkpoint(workdir)
  if checkpoint is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}; train first")
  step = tf.Variable(0, dtype=tf.int64)
  status = tf.train.Checkpoint(modules=checkpoints_lib.modules_checkpoint(modules),
                              step=step).read(
      checkpoint)
  status.expect_partial()
  status.assert_existing_objects_matched()
  return LoadedRun(task, run, modules, int(step.numpy()), checkpoint,  # graph-ok: host value.
                   precision)


def count_parameters(modules: Mapping[str, Any], depth: int = 0) -> dict:
  """Parameter counts per module (and, with depth=1, per direct sub-layer).

  Returns:
    dict "name" (or "name/child") → {"trainable": int, "non_trainable": int}.
  """
  def count(layer):
    trainable = sum(int(tf.size(v)) for v in layer.trainable_weights)
    non = sum(int(tf.size(v)) for v in layer.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": non}

  counts = {}
  for name, module in modules.items():
    counts[name] = count(module)
    if depth >= 1:
      for child in module._flatten_layers(include_self=False, recursive=False):
        if child.weights:  # skips input layers and other weightless children
          counts[f"{name}/{child.name}"] = count(child)
  return counts


def format_parameter_table(counts: Mapping[str, dict]) -> str:
  """Human-readable table of `count_parameters` output with a total line."""
  width = max([len(k) for k in counts] + [5])
  lines = [f"{'module':<{width}}  {'trainable':>12}  {'non-trainable':>13}"]
  total_t = total_n = 0
  for name, c in counts.items():
    lines.append(f"{name:<{width}}  {c['trainable']:>12,}  {c['non_trainable']:>13,}")
    if "/" not in name:
      total_t += c["trainable"]
      total_n += c["non_trainable"]
  lines.append(f"{'total':<{width}}  {total_t:>12,}  {total_n:>13,}")
  return "\n".join(lines)


def override_keys(model_name: Model, tasks: Optional[TaskLookup] = None) -> list[str]:
  """Every key `overrides` accepts for `model_name`, `model.`/`train.` prefixed, with safety."""
  paths = override_paths(resolve_task(model_name, tasks).config_class)
  return sorted(f"{k}{' (safe)' if safe else ''}" for k, (_, safe) in paths.items())


def parse_overrides(text: str) -> dict[str, str]:
  """`"batch_size=8,model.upsample_rates=(8,8,2,2)"` → {key: raw string}; see tfspeech.config."""
  return cfg.parse_overrides(text)


def parse_allow_changes(text: str) -> tuple[str, ...]:
  """`"learning_rate,max_steps"` → ("learning_rate", "max_steps")."""
  return tuple(k.strip() for k in (text or "").split(",") if k.strip())
