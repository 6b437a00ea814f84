r"""Trains a model, resuming automatically from the newest checkpoint in --workdir.

  tfspeech-train --model=grad_tts --preset=tiny --data=data/tiny --workdir=runs/gradtts
  tfspeech-train --model=hifigan --preset=v1 --data=data/ljspeech --workdir=runs/hifigan

The run's full config is stored in WORKDIR/config.json. Resuming with a
conflicting setting is refused with a diff; safe settings (learning rate, step
budget, logging cadence) may change when named in --allow_changes. SIGINT or
SIGTERM saves a checkpoint and exits; a killed run loses at most the steps since
the last checkpoint. TensorBoard: `tensorboard --logdir=WORKDIR`.
"""

from absl import app
from absl import flags

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
flags.DEFINE_enum("strategy", "default", ["default", "mirrored"], "tf.distribute strategy: "
                  "default (one device) or mirrored (all local GPUs).")
flags.DEFINE_bool("progress", True, "Show a progress bar (only on a terminal).")
flags.mark_flags_as_required(["model", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfspeech import config as cfg  # pylint: disable=import-outside-toplevel
  from tfspeech import training  # pylint: disable=import-outside-toplevel

  overrides = training.parse_overrides(FLAGS.override)
  allow = list(FLAGS.allow_changes)
  if FLAGS.max_steps is not None:
    overrides["max_steps"] = str(FLAGS.max_steps)
    allow.append("max_steps")  # Naming --max_steps is itself the consent.
  strategy = tf.distribute.MirroredStrategy() if FLAGS.strategy == "mirrored" else None
  try:
    result = training.train(FLAGS.model, FLAGS.preset, data_dir=FLAGS.data,
                            workdir=FLAGS.workdir, overrides=overrides,
                            allow_changes=tuple(allow), strategy=strategy,
                            progress=FLAGS.progress)
  except (KeyError, ValueError, FileNotFoundError, cfg.ConfigError,
          training.WorkdirLockedError) as e:
    common.fail(str(e).strip("'\""))
  except (training.TrainingDivergedError, training.NonFiniteWeightsError,
          training.CheckpointRestoreError) as e:
    common.fail(str(e), code=1)
  _print_result(result)


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
  app.run(main)


if __name__ == "__main__":
  run()
