"""Model tasks. `registry.get(name)` returns a registered `Task` class."""

from tfspeech.models.registry import OptimizerSpec, Task, get, names, register

__all__ = ["OptimizerSpec", "Task", "get", "names", "register"]
