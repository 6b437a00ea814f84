"""Registry of trainable model "tasks": registration and lookups by name.

The `Task` interface itself lives on the trainer's floor
(`tfspeech.training.task`); it is re-exported here, so `registry.Task` and
`registry.OptimizerSpec` keep working. Importing this module installs `get` as
the default lookup of the training entry points (`tfspeech.training.train("toy")`).

A minimal task and the full interface are in `tfspeech.training.task`; register
one with `@registry.register("my_model")` on a `registry.Task` subclass.
"""

import dataclasses
import importlib

# Imports no TensorFlow: listing model names stays fast for the binaries' flag checks.
from tfspeech.training.task import OptimizerSpec, Task, TaskLookup  # re-exported
from tfspeech.training import task as _task_lib

# Built-in tasks, imported on first use so `get("toy")` works without an import.
# Model authors add their package here when it lands.
_BUILTIN_MODULES = {
    "toy": "tfspeech.models.toy",
    "toy_gan": "tfspeech.models.toy",
    "grad_tts": "tfspeech.models.grad_tts",
    "hifigan": "tfspeech.models.hifigan",
    "diffwave": "tfspeech.models.diffwave",
    "fastpitch": "tfspeech.models.fastpitch",
    "tacotron2": "tfspeech.models.tacotron2",
    "dctts": "tfspeech.models.dctts",
}

_REGISTRY: dict[str, type] = {}


def register(name: str, *, overwrite: bool = False):
  """Class decorator registering a `Task` subclass under `name`."""
  def decorator(cls):
    if not (isinstance(cls, type) and issubclass(cls, Task)):
      raise TypeError(f"@register({name!r}) expects a Task subclass, got {cls!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls and not overwrite:
      raise ValueError(f"model name {name!r} is already registered by "
                       f"{_REGISTRY[name].__module__}.{_REGISTRY[name].__qualname__}")
    if cls.config_class is None or not dataclasses.is_dataclass(cls.config_class):
      raise TypeError(f"{cls.__name__}.config_class must be a dataclass")
    if "tiny" not in cls.presets:
      raise TypeError(f"{cls.__name__}.presets must contain a 'tiny' preset")
    for preset, config in cls.presets.items():
      if not isinstance(config, cls.config_class):
        raise TypeError(f"{cls.__name__}.presets[{preset!r}] is not a "
                        f"{cls.config_class.__name__}")
    cls.name = name
    _REGISTRY[name] = cls
    return cls
  return decorator


def unregister(name: str):
  """Removes `name` (for tests that register throwaway tasks)."""
  _REGISTRY.pop(name, None)


def get(name: str) -> type:
  """The `Task` class registered as `name` (importing built-in packages on demand)."""
  if name not in _REGISTRY and name in _BUILTIN_MODULES:
    importlib.import_module(_BUILTIN_MODULES[name])
  if name not in _REGISTRY:
    raise KeyError(f"unknown model {name!r}; registered models: {names()}")
  return _REGISTRY[name]


def names() -> list[str]:
  """Every model name that `get` accepts."""
  return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


__all__ = ["OptimizerSpec", "Task", "TaskLookup", "get", "names", "register", "unregister"]

_task_lib.set_default_lookup(get)
