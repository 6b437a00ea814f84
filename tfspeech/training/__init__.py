"""tfspeech training core: configs, the `Trainer`, the loop, checkpoints and summaries.

Binaries use:
  train(model_name, preset, data_dir, workdir, overrides, allow_changes, ...)
  resolve_config(...)  load_run(workdir)  count_parameters(modules)
  parse_overrides("k=v,...")  parse_allow_changes("a,b")  override_keys(model_name)
  hold_workdir(workdir)  (the exclusive run lock; WorkdirLockedError when in use)
"""

from tfspeech.training.api import (LoadedRun, ResolvedConfig, count_parameters,
                                   format_parameter_table, load_run, override_keys,
                                   parse_allow_changes, parse_overrides, resolve_config, train)
from tfspeech.training.checkpoints import (CheckpointRestoreError, Checkpoints,
                                           NonFiniteWeightsError)
from tfspeech.training.config import (ConfigMismatchError, OptimizerConfig, RunConfig,
                                      TrainConfig)
from tfspeech.training.loop import TrainResult, fit
from tfspeech.training.step_context import StepContext
from tfspeech.training.trainer import Trainer, TrainingDivergedError
from tfspeech.training.workdir_lock import WorkdirLockedError, hold_workdir

__all__ = [
    "CheckpointRestoreError", "Checkpoints", "ConfigMismatchError", "LoadedRun",
    "NonFiniteWeightsError", "OptimizerConfig", "ResolvedConfig", "RunConfig", "StepContext",
    "TrainConfig", "TrainResult", "Trainer", "TrainingDivergedError", "WorkdirLockedError",
    "count_parameters", "fit", "format_parameter_table", "hold_workdir", "load_run",
    "override_keys", "parse_allow_changes", "parse_overrides", "resolve_config", "train",
]
