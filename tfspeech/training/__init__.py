"""tfspeech training core: the `Task` interface, configs, the `Trainer`, the loop, checkpoints.

Binaries use:
  train(model, preset, data_dir, workdir, overrides, allow_changes, ..., tasks=None)
  resolve_config(...)  load_run(workdir)  count_parameters(modules)
  parse_overrides("k=v,...")  parse_allow_changes("a,b")  override_keys(model)
  hold_workdir(workdir)  (the exclusive run lock; WorkdirLockedError when in use)
  train(..., strategy="multi_worker")  (several machines from TF_CONFIG, see multi_worker)

`model` is a `Task` class or a registered name; names resolve through `tasks`
(a callable name → Task class) or, by default, the lookup the model registry
installs when it is imported. No module here imports a model or the registry:
without either, a name fails with a `LookupError` that says what to pass.

Names are imported on first use (PEP 562), so `tfspeech.training.task` — which
the model registry imports to list names — loads without TensorFlow.
"""

import importlib

_EXPORTS = {
    "api": ("LoadedRun", "ResolvedConfig", "count_parameters", "format_parameter_table",
            "load_run", "override_keys", "parse_allow_changes", "parse_overrides",
            "resolve_config", "train"),
    "checkpoints": ("CheckpointRestoreError", "Checkpoints", "NonFiniteWeightsError"),
    "config": ("ConfigMismatchError", "OptimizerConfig", "RunConfig", "TrainConfig"),
    "init_from": ("InitFromError",),
    "loop": ("TrainResult", "fit"),
    "multi_worker": ("ClusterConfigError", "WorkerRole"),
    "step_context": ("StepContext",),
    "task": ("OptimizerSpec", "Task", "TaskLookup"),
    "trainer": ("Trainer", "TrainingDivergedError"),
    "workdir_lock": ("WorkdirLockedError", "hold_workdir"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
# Submodules reachable as attributes (`training.config.TrainConfig`), as when this
# package imported them all eagerly.
_SUBMODULES = frozenset(_EXPORTS) | {"optimizers", "progress", "signals", "summaries"}

__all__ = sorted(_WHERE)


def __getattr__(name):
  if name in _SUBMODULES:
    return importlib.import_module(f"{__name__}.{name}")
  module = _WHERE.get(name)
  if module is None:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
  value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
  globals()[name] = value  # Later lookups skip this function.
  return value


def __dir__():
  return sorted(set(globals()) | set(__all__))
