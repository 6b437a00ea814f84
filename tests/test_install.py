"""Every pip path installs the same package: `tfspeech.ops` and `tfspeech.export` included.

`ops/` and `export/` live at the repository's top and install as `tfspeech.ops` and
`tfspeech.export` (setup.py `package_dir`). These tests install a copy of the tracked tree
into fresh virtualenvs and import from outside it:

- a built wheel (what `pip install .` and PyPI users get), with the export package data;
- a PEP 660 editable install into a venv that already has `wheel` (the path that used to fall
  back to `setup.py develop` and lose the mapping);
- the legacy `setup.py develop` layout (pip < 21.3): the repository root on `sys.path`.

The fresh venvs see this venv's dependencies (TensorFlow, ...) through a `.pth` line, so
nothing is downloaded; `--no-build-isolation` builds with this venv's setuptools.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
EXPORT_DATA = ["web/index.html", "web/demo.js", "js/run_graph_model.js", "js/check_web_demo.js",
               "package.json", "package-lock.json"]
IMPORT_CHECK = """
import json, os, sys
import tfspeech, tfspeech.ops, tfspeech.ops.alignment, tfspeech.export, tfspeech.export.tflite
print(json.dumps({"tfspeech": os.path.dirname(tfspeech.__file__),
                  "ops": os.path.dirname(tfspeech.ops.__file__),
                  "export": os.path.dirname(tfspeech.export.__file__),
                  "maximum_path": hasattr(tfspeech.ops, "maximum_path")}))
"""


def _run(args, **kwargs):
  result = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False,
                          **kwargs)
  assert result.returncode == 0, (
      f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
  return result


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory):
  """The tracked files of this checkout (as a clone has them), copied outside the repository."""
  tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
  if not tracked.stdout:
    pytest.skip("not a git checkout: no tracked-file list to copy")
  copy = tmp_path_factory.mktemp("source") / "tfspeech-src"
  for name in tracked.stdout.decode().split("\0"):
    if not name or not (REPO / name).is_file():
      continue
    (copy / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / name, copy / name)
  return copy


def _fresh_venv(path: pathlib.Path) -> pathlib.Path:
  """A new venv whose imports fall back to this venv's dependencies (no downloads)."""
  _run([sys.executable, "-m", "venv", path])
  python = path / "bin" / "python"
  purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
  pathlib.Path(purelib.stdout.strip(), "_tfspeech_test_deps.pth").write_text(SITE_PACKAGES + "\n")
  return python


def _imports(python: pathlib.Path, cwd: pathlib.Path, env=None) -> dict:
  import json  # pylint: disable=import-outside-toplevel
  clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  clean_env.update(env or {})
  result = _run([python, "-c", IMPORT_CHECK], cwd=cwd, env=clean_env)
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.smoke
def test_wheel_installs_the_mapped_packages_and_their_data(source_copy, tmp_path):
  dist = tmp_path / "dist"
  _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", dist, source_copy])
  wheel, = dist.glob("tfspeech-*.whl")
  python = _fresh_venv(tmp_path / "venv")
  _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel])

  found = _imports(python, cwd=tmp_path)
  installed = pathlib.Path(found["tfspeech"])
  assert installed.is_relative_to(tmp_path / "venv"), found
  assert pathlib.Path(found["ops"]) == installed / "ops"
  assert pathlib.Path(found["export"]) == installed / "export"
  assert found["maximum_path"]
  missing = [name for name in EXPORT_DATA if not (installed / "export" / name).is_file()]
  assert not missing, f"the wheel lacks export package data: {missing}"
  # Nothing generic lands at the top of site-packages.
  top_level = {p.name for p in installed.parent.iterdir()}
  assert not {"ops", "export", "tests", "benchmarks"} & top_level, top_level
  for script in ("tfspeech-train", "tfspeech-export", "tfspeech-demo"):
    assert (tmp_path / "venv" / "bin" / script).is_file(), script


def test_editable_install_with_wheel_present_maps_the_packages(source_copy, tmp_path):
  python = _fresh_venv(tmp_path / "venv")
  # `wheel` importable is what made pip take the legacy `setup.py develop` path.
  _run([python, "-c", "import wheel"])
  _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e",
        source_copy])
  found = _imports(python, cwd=tmp_path)
  assert pathlib.Path(found["tfspeech"]) == source_copy / "tfspeech", found
  assert pathlib.Path(found["ops"]) == source_copy / "ops"
  assert pathlib.Path(found["export"]) == source_copy / "export"


def test_legacy_develop_layout_maps_the_packages(source_copy, tmp_path):
  """pip < 21.3 editable installs put the checkout's root on sys.path and nothing more."""
  python = _fresh_venv(tmp_path / "venv")
  found = _imports(python, cwd=tmp_path, env={"PYTHONPATH": str(source_copy)})
  assert pathlib.Path(found["ops"]) == source_copy / "ops", found
  assert pathlib.Path(found["export"]) == source_copy / "export"
