"""Runs as served models: which registered models play which role, and their controls.

The binaries and exporters use these to accept any registered model: `--vocoder` takes
any run whose task serves as a vocoder, and a model's declared controls become
`--control=name=value` values without the callers knowing what they mean.
"""

import json
import os
from typing import Mapping, Optional, Sequence

from tfspeech.models import serving as serving_lib
from tfspeech.training import precision as precision_lib

RUN_CONFIG = "config.json"


def models_with_role(role: str) -> list:
  """Registered model names whose task serves as `role` ("acoustic" or "vocoder")."""
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  return [name for name in registry.names()
          if serving_lib.task_role(registry.get(name)) == role]


def models_that_align() -> list:
  """Registered acoustic models whose task declares `serving_aligns` (tfspeech-align)."""
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  return [name for name in models_with_role(serving_lib.ACOUSTIC)
          if getattr(registry.get(name), "serving_aligns", False)]


def run_model_name(workdir: str) -> Optional[str]:
  """The model name a run's config.json records (None when unreadable)."""
  try:
    with open(os.path.join(workdir, RUN_CONFIG), encoding="utf-8") as f:
      return json.load(f).get("model")
  except (OSError, ValueError, AttributeError):
    return None


def model_controls(model: str) -> tuple:
  """The controls model `model` declares (its task's `serving_controls`), before loading."""
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  try:
    return serving_lib.task_controls(registry.get(model))
  except KeyError as e:
    raise ValueError(str(e).strip("'\"")) from None


def resolve_flag_controls(model: str, control_flags: Sequence[str],
                          aliases: Optional[Mapping[str, object]] = None,
                          flag: str = "control") -> tuple:
  """Checks `--control=name=value` flags (and set alias flags) against a model's controls.

  Args:
    model: registered model name.
    control_flags: the repeated `--control` values.
    aliases: control name → value of a flag of that name (None when not given).
    flag: the repeated flag's name ("control", or "vocoder_control" for a --vocoder's).

  Returns:
    (values: every control's checked value, sources: name → the flag that gave it).

  Raises:
    ValueError: a malformed entry, a name the model does not declare (the message lists
      its controls), a value out of range, or one control given twice.
  """
  given = serving_lib.parse_control_flags(control_flags, flag)
  sources = {name: f"--{flag}={name}" for name in given}
  for name, value in (aliases or {}).items():
    if value is None:
      continue
    if name in given:
      raise ValueError(f"--{name} and --{flag}={name}=... both given; keep one")
    given[name], sources[name] = value, f"--{name}"
  controls = model_controls(model)
  return serving_lib.resolve_controls(controls, given, sources), sources


def serving_of_run(loaded_run, role: str, flag: str = "workdir"):
  """The serving object of a loaded run, which must serve as `role`.

  Raises:
    ValueError: the run's model serves another role (or none); the message names the flag.
  """
  model = loaded_run.config.model
  actual = serving_lib.task_role(type(loaded_run.task))
  if actual != role:
    raise ValueError(f"--{flag}: a run of model {model!r} does not serve as the {role} "
                     f"(its role: {actual or 'none'}); pass the workdir of a trained {role}")
  with precision_lib.precision_policy(loaded_run.precision):
    return serving_lib.build_serving(loaded_run.task, loaded_run.modules,
                                     loaded_run.config.data_info)
