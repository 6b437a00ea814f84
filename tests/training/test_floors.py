"""The floors of the code (shared/notes/architecture.md): each imports only from floors below.

The trainer's floor (`training/`, `data/`) must not import the model floor or inference, and
models must not import inference; the `Task` interface sits on the trainer's floor.
"""
import ast
import pathlib
import subprocess
import sys

import pytest

from tfspeech import training
from tfspeech.training import task as task_lib

PACKAGE = pathlib.Path(training.__file__).resolve().parent.parent

# Package (relative to tfspeech/) → packages above it that it must not import.
FORBIDDEN = {
    "training": ("tfspeech.models", "tfspeech.inference", "tfspeech.export", "tfspeech.bin"),
    "data": ("tfspeech.models", "tfspeech.inference", "tfspeech.export", "tfspeech.bin"),
    "audio": ("tfspeech.training", "tfspeech.models", "tfspeech.inference"),
    "models": ("tfspeech.inference", "tfspeech.export", "tfspeech.bin"),
}


def imported_modules(path):
  """Every module name an `import` / `from ... import` in `path` names (function bodies too)."""
  names = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names.append(node.module)
      names += [f"{node.module}.{alias.name}" for alias in node.names]
  return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_a_floor_above_it(package):
  offenders = []
  for path in sorted((PACKAGE / package).rglob("*.py")):
    for name in imported_modules(path):
      if name.startswith(FORBIDDEN[package]):
        offenders.append(f"{path.relative_to(PACKAGE.parent)}: {name}")
  assert not offenders, "imports from a floor above:\n" + "\n".join(offenders)


def test_the_scan_sees_imports_inside_functions(tmp_path):
  # The check above would pass vacuously if the scan missed deferred imports.
  path = tmp_path / "example.py"
  path.write_text("def f():\n  from tfspeech.inference import synthesize_lib\n")
  assert "tfspeech.inference" in imported_modules(path)


def test_registry_re_exports_the_trainer_floor_task():
  from tfspeech.models import registry
  assert registry.Task is task_lib.Task and registry.OptimizerSpec is task_lib.OptimizerSpec
  assert training.Task is task_lib.Task


def test_task_interface_and_registry_load_without_tensorflow():
  # The binaries list model names (registry) before paying for TensorFlow.
  code = ("import sys; import tfspeech.models.registry as r; r.names(); "
          "print('tensorflow' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_the_transitional_registry_fallback_is_the_only_dynamic_import():
  # Callers above the trainer's floor that do not yet pass `tasks=` still work ...
  code = ("import sys; from tfspeech.training import task; "
          "print(task.resolve_task('toy').__name__, 'tfspeech.models.registry' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["ToyTask", "True"], out.stderr[-2000:]
  # ... through one named module string; any other string import of a floor above fails here.
  strings = []
  for path in sorted((PACKAGE / "training").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
          node.value.startswith(FORBIDDEN["training"]) and " " not in node.value:
        strings.append((path.name, node.value))
  assert strings == [("task.py", task_lib.FALLBACK_REGISTRY_MODULE)]


def test_a_name_without_a_lookup_is_refused_with_the_fix(monkeypatch):
  monkeypatch.setattr(task_lib, "_default_lookup", None)
  monkeypatch.setattr(task_lib, "FALLBACK_REGISTRY_MODULE", "")
  with pytest.raises(LookupError, match="pass tasks=tfspeech.models.registry.get"):
    training.resolve_config("toy", "tiny")
  from tfspeech.models.toy import ToyTask
  # The class itself, or a lookup the caller gives, needs no default.
  assert training.resolve_config(ToyTask, "tiny").run.model == "toy"
  seen = []

  def lookup(name):
    seen.append(name)
    return ToyTask
  assert training.resolve_config("toy", "tiny", tasks=lookup).task_class is ToyTask
  assert seen == ["toy"]
