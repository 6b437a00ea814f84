r"""Prints a model's resolved config and the parameter count of every sub-network.

  tfspeech-info --list
  tfspeech-info --model=grad_tts --preset=ljspeech
  tfspeech-info --model=hifigan --preset=v1 --override=upsample_initial_channel=256
  tfspeech-info --workdir=runs/gradtts        # a training run's stored config
"""

import json

from absl import flags

from tfspeech.bin import common

FLAGS = flags.FLAGS
common.define_model_flags()
flags.adopt_module_key_flags(common)
flags.DEFINE_string("workdir", None, "Show the stored config of this run instead.")
flags.DEFINE_bool("list", False, "List registered models and their presets.")
flags.DEFINE_bool("list_keys", False, "List every key --override accepts for --model.")
flags.DEFINE_integer("depth", 1, "0: one line per module; 1: also each direct sub-layer.")


def main(argv):
  common.check_no_arguments(argv)
  if FLAGS.depth < 0:
    common.fail(f"--depth={FLAGS.depth}: must be 0 or 1")
  if FLAGS.workdir is not None:
    if FLAGS.model or FLAGS.preset or FLAGS.override or FLAGS.list_keys:
      common.fail("--workdir shows a run's stored config; drop --model/--preset/--override/"
                  "--list_keys (or drop --workdir)")
    common.check_run_dir("workdir", FLAGS.workdir)
  elif not FLAGS.list:
    if not FLAGS.model:
      common.fail("give --model (and --preset), --workdir, or --list")
    common.check_model_name(FLAGS.model)
  overrides = common.parse_overrides(FLAGS.override)
  from tfspeech import config as cfg  # pylint: disable=import-outside-toplevel
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel

  if FLAGS.list:
    for name in registry.names():
      print(f"{name}: presets {', '.join(sorted(registry.get(name).presets))}")
    return
  if FLAGS.workdir:
    try:
      loaded = training.load_run(FLAGS.workdir, restore=False, tasks=registry.get)
    except (KeyError, ValueError, FileNotFoundError, cfg.ConfigError) as e:
      common.fail(f"--workdir={FLAGS.workdir}: {common.error_text(e)}")
    run, modules = loaded.config, loaded.modules
  else:
    if not FLAGS.model:
      common.fail("give --model (and --preset), --workdir, or --list")
    if FLAGS.list_keys:
      print("\n".join(training.override_keys(FLAGS.model, tasks=registry.get)))
      return
    try:
      resolved = training.resolve_config(
          FLAGS.model, FLAGS.preset or "tiny",
          overrides=overrides, tasks=registry.get)
    except (KeyError, ValueError, cfg.ConfigError) as e:
      common.fail(str(e).strip("'\""))
    run = resolved.run
    modules = resolved.task_class(run.model_config).build_modules()
  print(json.dumps(cfg.to_dict(run), indent=2))
  print()
  print(training.format_parameter_table(training.count_parameters(modules, depth=FLAGS.depth)))
  task_class = registry.get(run.model)
  from tfspeech.training import precision  # pylint: disable=import-outside-toplevel
  print()
  print("training precisions (--override=mixed_precision=...): "
        + ", ".join(precision.task_training_policies(task_class)))
  _print_serving(task_class)


def _print_serving(task_class):
  """The model's serving role and the controls it declares (--control=NAME=VALUE)."""
  from tfspeech.models import serving  # pylint: disable=import-outside-toplevel
  role = serving.task_role(task_class)
  if role is None:
    return
  print()
  print(f"serves as: {role}")
  from tfspeech.training import precision  # pylint: disable=import-outside-toplevel
  flag = ("tfspeech-synthesize --precision" if role == serving.ACOUSTIC
          else "tfspeech-vocode --precision, tfspeech-synthesize --vocoder_precision")
  print(f"precisions ({flag}): {', '.join(precision.task_precisions(task_class))}")
  controls = serving.task_controls(task_class)
  if controls:
    print("controls (tfspeech-synthesize / tfspeech-export --control=NAME=VALUE):")
    for control in controls:
      print(f"  {control.describe()}")


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
