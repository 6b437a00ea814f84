r"""Trains a model, resuming automatically from the newest checkpoint in --workdir.

  tfspeech-train --model=grad_tts --preset=tiny --data=data/tiny --workdir=runs/gradtts
  tfspeech-train --model=hifigan --preset=v1 --data=data/ljspeech --workdir=runs/hifigan

The run's full config is stored in WORKDIR/config.json. Resuming with a
conflicting setting is refused with a diff; safe settings (learning rate, step
budget, logging cadence) may change when named in --allow_changes. SIGINT or
SIGTERM saves a checkpoint and exits; a killed run loses at most the steps since
the last checkpoint. TensorBoard: `tensorboard --logdir=WORKDIR`.

Long runs: --keep_checkpoints=K keeps the newest K checkpoints, --keep_every_steps=N also
keeps every N-th step's for good (WORKDIR/kept/); --export_weights=PATH writes the final
weights alone (no optimizer state: the release form, `load_run(WORKDIR, checkpoint=PATH)`).
A resume calls the train step (eval step, summaries) traced by an earlier start
(WORKDIR/trace_cache/, kept while the code, TensorFlow and the config are the same)
instead of tracing it again.

  tfspeech-train --model=diffwave --preset=base --data=data/ljspeech --workdir=runs/dw \
      --keep_checkpoints=3 --keep_every_steps=100000 --export_weights=release/dw-weights

Several machines: run the same command on each with --strategy=multi_worker and its own
TF_CONFIG (same cluster, own task); --workdir must be one shared folder. Worker 0 (or
the "chief" task) writes config.json, checkpoints and TensorBoard logs there.

  TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}' \
      tfspeech-train --strategy=multi_worker --model=hifigan --preset=v1 --data=/shared/lj \
      --workdir=/shared/runs/hifigan     # on host2: "index": 1
"""

import os
import sys

from absl import flags
from absl import logging

from tfspeech.bin import common

FLAGS = flags.FLAGS
common.define_model_flags()
flags.adopt_module_key_flags(common)
flags.DEFINE_string("data", "", "Prepared data folder (output of tfspeech-prepare). On resume "
                    "defaults to the stored one.")
flags.DEFINE_string("workdir", None, "Run folder: config.json, checkpoints, TensorBoard logs.")
flags.DEFINE_integer("max_steps", None, "Train until this global step (a safe change on resume).")
flags.DEFINE_list("allow_changes", [], "Safe settings allowed to differ from the stored config "
                  "when resuming, e.g. learning_rate,log_every.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy: default (one device), mirrored (all local GPUs) or "
                  "multi_worker (all GPUs of the machines in the TF_CONFIG environment "
                  "variable; run on every machine with a shared --workdir; "
                  "batch_size is the global batch).")
flags.DEFINE_bool("progress", True, "Show a progress bar (only on a terminal).")
flags.DEFINE_integer("keep_checkpoints", None, "Keep the newest K checkpoints (a safe change on "
                     "resume; default: the preset's train config, usually 5).")
flags.DEFINE_integer("keep_every_steps", None, "Also keep the checkpoint of every step that is a "
                     "multiple of N, for good, in WORKDIR/kept/ (a multiple of checkpoint_every; "
                     "a safe change on resume).")
flags.DEFINE_bool("trace_cache", True, "Keep the traced train step, eval step and summaries "
                  "in WORKDIR/trace_cache/ so that a resume with the same code, TensorFlow "
                  "and config runs them without tracing (seconds, not tens of seconds, "
                  "before its first step); --notrace_cache traces at every start and writes "
                  "nothing there.")
flags.DEFINE_string("export_weights", None, "After training, write the final weights alone "
                    "(no optimizer state) to this checkpoint prefix, e.g. release/model.")
flags.mark_flags_as_required(["model", "workdir"])


def _check_paths_and_values():
  """Flag checks that need no TensorFlow: paths, numbers, --override syntax, model name."""
  common.check_model_name(FLAGS.model)
  common.check_out_dir("workdir", FLAGS.workdir)
  if os.path.isdir(FLAGS.workdir) and not os.path.isfile(
      os.path.join(FLAGS.workdir, common.RUN_CONFIG)) and os.path.isfile(
          os.path.join(FLAGS.workdir, "checkpoints", "checkpoint")):
    common.fail(f"--workdir={FLAGS.workdir} holds checkpoints but no {common.RUN_CONFIG}; "
                "restore config.json or use a new workdir")
  if FLAGS.data:
    common.check_prepared_dir("data", FLAGS.data)
  if FLAGS.strategy == "multi_worker":
    from tfspeech.training import multi_worker  # pylint: disable=import-outside-toplevel
    try:
      multi_worker.check_tf_config()
    except multi_worker.ClusterConfigError as e:
      common.fail(f"--strategy=multi_worker: {e}")
  if FLAGS.max_steps is not None and FLAGS.max_steps < 0:
    common.fail(f"--max_steps={FLAGS.max_steps}: must be >= 0")
  for name in ("keep_checkpoints", "keep_every_steps"):
    value = getattr(FLAGS, name)
    if value is not None and value < 1:
      common.fail(f"--{name}={value}: must be >= 1")
  if FLAGS.export_weights is not None:
    if not FLAGS.export_weights.strip() or FLAGS.export_weights.endswith(("/", os.sep)):
      common.fail(f"--export_weights={FLAGS.export_weights!r}: give a checkpoint prefix (a "
                  "file name without extension), e.g. release/model")
    parent = os.path.dirname(os.path.abspath(FLAGS.export_weights))
    if os.path.exists(parent) and not os.path.isdir(parent):
      common.fail(f"--export_weights={FLAGS.export_weights}: {parent} is a file, not a folder")
  return common.parse_overrides(FLAGS.override)


def _check_config(training, cfg, overrides, allow):
  """Resolves the run config once before training, so a bad preset, override key or value,
  or a refused change on resume, fails before the workdir is touched."""
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  from tfspeech.training import config as run_config  # pylint: disable=import-outside-toplevel
  config_class = registry.get(FLAGS.model).config_class
  for key in allow:
    if key == "data_dir":
      continue
    try:
      run_config.canonical_key(key, config_class)
    except cfg.ConfigError as e:
      common.fail(f"--allow_changes: {e}")
  try:
    training.resolve_config(FLAGS.model, FLAGS.preset, data_dir=FLAGS.data,
                            workdir=FLAGS.workdir, overrides=overrides,
                            allow_changes=tuple(allow))
  except cfg.ConfigError as e:
    common.fail(str(e))
  except (KeyError, ValueError) as e:
    common.fail(f"{common.error_text(e)} (--model={FLAGS.model}, --preset={FLAGS.preset})")


def main(argv):
  common.check_no_arguments(argv)
  overrides = _check_paths_and_values()
  from tfspeech import config as cfg  # pylint: disable=import-outside-toplevel
  from tfspeech import training  # pylint: disable=import-outside-toplevel

  allow = list(FLAGS.allow_changes)
  # Naming one of these flags is itself the consent to change it on resume.
  for name in ("max_steps", "keep_checkpoints", "keep_every_steps"):
    if getattr(FLAGS, name) is not None:
      overrides[name] = str(getattr(FLAGS, name))
      allow.append(name)
  _check_config(training, cfg, overrides, allow)
  try:
    strategy = training.multi_worker.make_strategy(FLAGS.strategy)
  except training.multi_worker.ClusterConfigError as e:
    common.fail(f"--strategy=multi_worker: {e}")
  chief = training.multi_worker.worker_role(strategy).is_chief
  try:
    result = training.train(FLAGS.model, FLAGS.preset, data_dir=FLAGS.data,
                            workdir=FLAGS.workdir, overrides=overrides,
                            allow_changes=tuple(allow), strategy=strategy,
                            progress=FLAGS.progress, trace_cache=FLAGS.trace_cache,
                            on_signal_stop=lambda stopped: _exit_stopped_run(stopped, chief))
  except (KeyError, ValueError, FileNotFoundError, cfg.ConfigError,
          training.WorkdirLockedError) as e:
    common.fail(str(e).strip("'\""))
  except (training.TrainingDivergedError, training.NonFiniteWeightsError,
          training.CheckpointRestoreError) as e:
    common.fail(str(e), code=1)
  except _lost_peer_errors() as e:
    _lost_peer(training, e)
  _print_result(result)
  if FLAGS.export_weights and chief:  # one writer; the others would race for the file
    _export_weights(training)
  if FLAGS.strategy == "multi_worker":
    # The cluster's runtime shutdown waits on its peers (6 s measured on a 2-core host);
    # every checkpoint is on disk.
    common.exit_now(0)


def _exit_stopped_run(result, chief):
  """Reports a run a signal stopped and ends the process there, inside `train`.

  Its checkpoint is on disk. Returning first would release the trainer, the datasets and
  the traced graphs (each node frees its recorded stack trace), which took 2 s on a quiet
  2-core host and 9–19 s on busy CI hosts, past a container's ~10 s grace period; the
  kernel drops the workdir lock with the process.
  """
  _print_result(result)
  if FLAGS.export_weights and chief:
    print(f"--export_weights skipped: stopped by {result.stopped_by_signal}, whose grace "
          "period is short. To export now, rerun this command with "
          f"--max_steps={result.final_step} (it trains no further).")
  logging.info("stopped by %s: exiting without interpreter teardown", result.stopped_by_signal)
  common.exit_now(0)


def _lost_peer_errors():
  """The errors a collective raises when another worker is gone (none for one process)."""
  if FLAGS.strategy != "multi_worker":
    return ()
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return (tf.errors.UnavailableError, tf.errors.AbortedError,
          tf.errors.DeadlineExceededError, tf.errors.CancelledError)


def _lost_peer(training, error):
  """One `error:` line for a worker lost mid-run, then exit at once (no teardown: it waits
  for the lost peer)."""
  lines = [l.strip() for l in str(error).splitlines() if l.strip()]
  # TF's message starts "Graph execution error:"; the cause is the "…aborted by: …" line.
  reason = next((l for l in lines if any(w in l.lower() for w in ("abort", "heartbeat", "reset"))),
                type(error).__name__)
  latest = training.checkpoints.latest_checkpoint(FLAGS.workdir)
  print(f"error: --strategy=multi_worker: lost contact with another worker ({reason}). "
        f"The newest checkpoint is {latest}; start every worker again with the same command "
        "to resume from it.", file=sys.stderr)
  common.exit_now(1)


def _export_weights(training):
  """Writes the run's newest weights alone to --export_weights."""
  from tfspeech.training import checkpoints  # pylint: disable=import-outside-toplevel
  run = training.load_run(FLAGS.workdir)
  try:
    path = checkpoints.write_weights(run.modules, FLAGS.export_weights, run.step)
  except OSError as e:
    common.fail(f"--export_weights={FLAGS.export_weights}: cannot write there ({e})")
  print(f"weights (step {run.step}, no optimizer state): {path}; restore with "
        f"load_run({FLAGS.workdir!r}, checkpoint={path!r})")


def _print_result(result):
  how = f"stopped by {result.stopped_by_signal}" if result.stopped_by_signal else "finished"
  print(f"{how} at step {result.final_step} (started at {result.start_step}); "
        f"skipped non-finite steps: {result.skipped_steps}")
  if result.losses:
    print("last losses: " + ", ".join(f"{k}={float(v):.4g}" for k, v in result.losses.items()))
  if result.eval_metrics:
    print("validation: " + ", ".join(f"{k}={float(v):.4g}"
                                     for k, v in result.eval_metrics.items()))
  print(f"checkpoint: {result.checkpoint}")
  print(f"TensorBoard: tensorboard --logdir={result.workdir}")


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
