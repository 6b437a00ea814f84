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


def test_training_names_no_floor_above_it_even_as_a_string():
  # An import by string (importlib.import_module("tfspeech.models...")) escapes the AST
  # scan above; a bare dotted name of a floor above in training/ is refused too.
  strings = []
  for path in sorted((PACKAGE / "training").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
          node.value.strip().startswith(FORBIDDEN["training"]) and " " not in node.value.strip():
        strings.append(f"{path.name}: {node.value!r}")
  assert not strings, strings


def test_training_alone_imports_no_model_and_says_how_to_name_one():
  # Every training module loaded, a model name resolved without a lookup: the trainer's
  # floor must neither import the model floor (statically or on demand) nor guess.
  code = ("import pkgutil, importlib, sys\n"
          "import tfspeech.training as t\n"
          "for m in pkgutil.iter_modules(t.__path__):\n"
          "  importlib.import_module('tfspeech.training.' + m.name)\n"
          "from tfspeech.training import task\n"
          "try:\n"
          "  task.resolve_task('toy')\n"
          "except LookupError as e:\n"
          "  print('LookupError:', e)\n"
          "print(sorted(n for n in sys.modules if n.startswith(('tfspeech.models', "
          "'tfspeech.inference', 'tfspeech.export'))))\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  lines = out.stdout.strip().splitlines()
  assert lines[-1] == "[]", out.stdout + out.stderr[-2000:]
  assert lines[0].startswith("LookupError:"), out.stdout
  assert "tasks=tfspeech.models.registry.get" in lines[0] and "import tfspeech.models" in lines[0]


def test_importing_the_registry_anywhere_installs_the_default_lookup():
  # Library users who import tfspeech.models (or anything that does, e.g. inference)
  # may keep calling training entry points by name without tasks=.
  code = ("import tfspeech.models\n"
          "from tfspeech import training\n"
          "print(training.resolve_config('toy', 'tiny').task_class.__name__)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split()[-1] == "ToyTask", out.stderr[-2000:]


def test_a_name_without_a_lookup_is_refused_with_the_fix(monkeypatch):
  monkeypatch.setattr(task_lib, "_default_lookup", None)
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
