"""Starting a new run from another run's weights (`TrainConfig.init_from`): fine-tuning.

  tfspeech-train --model=hifigan --preset=v1 --data=data/ljspeech_gta \
      --workdir=runs/hifigan_gta --override=init_from=runs/hifigan
  --override=init_from=runs/hifigan:generator        # only the generator
  --override=init_from=runs/hifigan:mpd+msd          # several ("," works outside --override)
  --override=init_from=runs/hifigan,init_optimizers=true   # and the optimizers' state

`fit` calls `initialize(trainer)` once, before the first step of a run that has
no checkpoint of its own (never on resume, which restores the run's own state).
It works for any task: the modules are read with the keys of a training
checkpoint (`checkpoints.modules_checkpoint`: module name + position in
`module.weights`), so a source run of another model whose modules share names
and shapes serves too. Before anything is assigned, every weight to load is
checked against the source: it must exist there with the same shape; the error
lists the differences. Then the task may refuse what shapes cannot show
(`Task.check_init_source`, e.g. a vocoder trained on another mel convention).
"""

import json
import os
import re
from typing import Optional

import tensorflow as tf
from absl import logging

from tfspeech.training import checkpoints as checkpoints_lib

CONFIG_FILE = "config.json"
# Differences listed in an error before "... and N more".
_MAX_LISTED = 8


class InitFromError(ValueError):
  """`init_from` names a source that cannot initialise this run (the message says why)."""


def parse(spec: str) -> tuple[str, Optional[tuple[str, ...]]]:
  """"WORKDIR[:module+module]" → (WORKDIR, module names or None for every module).

  Modules are separated by "+" or "," (--override splits its value at commas).
  """
  path, sep, names = spec.rpartition(":")
  # A colon inside a path (no module list after it) stays part of the path.
  if not sep or not names.strip() or "/" in names or os.sep in names:
    return spec, None
  modules = tuple(n.strip() for n in re.split(r"[,+]", names) if n.strip())
  return path, modules


def source_checkpoint(path: str, where: str) -> tuple[str, Optional[str]]:
  """(checkpoint prefix, workdir or None) of a run directory or a checkpoint prefix."""
  if tf.io.gfile.isdir(path):
    checkpoint = checkpoints_lib.latest_checkpoint(path)
    if checkpoint is None:
      raise FileNotFoundError(f"{where}: no checkpoint in "
                              f"{os.path.join(path, checkpoints_lib.CHECKPOINT_DIR)}; pass the "
                              "workdir of a trained run (or a checkpoint path)")
    return checkpoint, path
  if tf.io.gfile.exists(path + ".index"):
    folder = os.path.dirname(path)
    workdir = os.path.dirname(folder) if os.path.basename(folder) in (
        checkpoints_lib.CHECKPOINT_DIR, checkpoints_lib.BEST_DIR) else None
    return path, workdir
  raise FileNotFoundError(f"{where}: {path} is neither a run directory nor a checkpoint "
                          "prefix (…/checkpoints/ckpt-N); pass the workdir of a trained run")


def check_source(spec: str) -> str:
  """The checkpoint `spec` ("WORKDIR[:modules]") names; fails early when there is none.

  `api.train` calls it before a new run writes its config.json, so a mistyped path
  leaves no half-started workdir behind.
  """
  path, _ = parse(spec)
  return source_checkpoint(path, f"init_from={spec}")[0]


def read_source_config(workdir: Optional[str]) -> dict:
  """The source run's config.json as a dict ({} when there is none)."""
  if not workdir:
    return {}
  path = os.path.join(workdir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    return {}
  with tf.io.gfile.GFile(path, "r") as f:
    try:
      data = json.loads(f.read())
    except json.JSONDecodeError:
      return {}
  return data if isinstance(data, dict) else {}


def shape_differences(checkpoint: str, modules: dict) -> list[str]:
  """How `modules`' weights differ from those stored in `checkpoint` ([] = all present, alike).

  Keys follow `checkpoints.modules_checkpoint`: modules/<name>/weights/<i>.
  """
  stored = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
  lines = []
  for name, module in modules.items():
    prefix = f"modules/{name}/weights/"
    count = len({k.split("/")[3] for k in stored if k.startswith(prefix)})
    if not count:
      lines.append(f"module {name!r}: not in the source")
      continue
    if count != len(module.weights):
      lines.append(f"module {name!r}: {count} weights in the source, "
                   f"{len(module.weights)} in this run")
    for i, weight in enumerate(module.weights[:count]):
      shape = stored.get(f"{prefix}{i}/.ATTRIBUTES/VARIABLE_VALUE")
      if shape is not None and list(shape) != list(weight.shape):
        label = getattr(weight, "path", None) or weight.name
        lines.append(f"{name}/{label}: {tuple(shape)} in the source, {tuple(weight.shape)} "
                     "in this run")
  return lines


def optimizer_differences(checkpoint: str, optimizers: dict) -> list[str]:
  """Optimizers whose stored state has another number of variables than this run's.

  Keras optimizers track their variables by position, so a source whose optimizer
  holds other variables (a constant learning rate is a variable, a schedule is not)
  would load moments into the wrong slots.
  """
  stored = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
  lines = []
  for name, optimizer in optimizers.items():
    prefix = f"optimizers/{name}/"
    count = sum(1 for k in stored if k.startswith(prefix))
    if count != len(optimizer.variables):
      lines.append(f"optimizer {name!r}: {count} variables in the source, "
                   f"{len(optimizer.variables)} in this run")
  return lines


def initialize(trainer) -> Optional[str]:
  """Loads `trainer.config.init_from` into a new run's modules (and optimizers).

  Returns:
    The checkpoint read, or None when `init_from` is empty.

  Raises:
    FileNotFoundError: the source is not a run directory or checkpoint.
    InitFromError: an unknown module name, a weight missing or shaped differently
      in the source, or `init_optimizers` with an optimizer whose modules are not
      all loaded.
    ValueError: the task refuses the source (`Task.check_init_source`).
  """
  config = trainer.config
  if not config.init_from:
    return None
  where = f"init_from={config.init_from}"
  path, names = parse(config.init_from)
  names = tuple(trainer.modules) if names is None else names
  unknown = [n for n in names if n not in trainer.modules]
  if unknown:
    raise InitFromError(f"{where}: this run has no module(s) {unknown}; its modules are "
                        f"{list(trainer.modules)}")
  checkpoint, workdir = source_checkpoint(path, where)
  modules = {n: trainer.modules[n] for n in names}
  differences = shape_differences(checkpoint, modules)
  if differences:
    more = len(differences) - _MAX_LISTED
    raise InitFromError(
        f"{where}: {checkpoint} does not fit this run's modules:\n  "
        + "\n  ".join(differences[:_MAX_LISTED]) + (f"\n  ... and {more} more" if more > 0
                                                    else "")
        + "\nStart the new run with the source run's preset and model overrides, or name "
        "only the modules that match (init_from=WORKDIR:module+module)")
  check = getattr(trainer.task, "check_init_source", None)
  if check is not None:
    check(read_source_config(workdir), where)

  objects = {"modules": checkpoints_lib.modules_checkpoint(modules)}
  if config.init_optimizers:
    partial = [o for o, owned in trainer.optimizer_modules.items()
               if not set(owned) <= set(names)]
    if partial:
      raise InitFromError(f"{where}: init_optimizers loads whole optimizers, but "
                          f"{partial} also update modules not loaded; load every module "
                          "they update, or set init_optimizers=false")
    differences = optimizer_differences(checkpoint, trainer.optimizers)
    if differences:
      raise InitFromError(
          f"{where}: the source's optimizer state does not fit this run's:\n  "
          + "\n  ".join(differences) + "\nUse the source run's optimizer, lr_schedule and "
          "mixed_precision settings, or set init_optimizers=false (weights only)")
    objects["optimizers"] = tf.train.Checkpoint(**trainer.optimizers)
  try:
    status = tf.train.Checkpoint(**objects).read(checkpoint)
  except ValueError as e:  # A shape the checks above could not see.
    raise InitFromError(f"{where}: {checkpoint} does not fit this run ({e})") from e
  status.expect_partial()  # The source's other modules, step counters and data are skipped.
  try:
    status.assert_existing_objects_matched()
  except AssertionError as e:
    raise InitFromError(f"{where}: {checkpoint} does not hold every variable to load "
                        f"({e})") from e
  if config.init_optimizers:
    # A constant learning rate is an optimizer variable: keep this run's value.
    trainer.reset_constant_learning_rates()
  logging.info("initialised %s%s from %s", ", ".join(names),
               " and their optimizers" if config.init_optimizers else "", checkpoint)
  return checkpoint
