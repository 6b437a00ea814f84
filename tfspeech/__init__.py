"""tfspeech: pure-TensorFlow, graph-mode speech synthesis."""

import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.1.0"

# `ops/` and `export/` sit at the top of the repository and install as `tfspeech.ops` and
# `tfspeech.export` (setup.py's `package_dir`). Wheels and PEP 660 editable installs honour that
# mapping; the legacy `setup.py develop` path (pip < 21.3 for `pip install -e`) only puts the
# repository root on sys.path and loses it. In that case alone -- a source checkout whose
# `tfspeech/` has no `ops/` beside it -- map the two packages to their folders here.
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
_SOURCE_PACKAGES = {
    f"{__name__}.{name}": os.path.join(_ROOT, name) for name in ("ops", "export")
    if not os.path.isdir(os.path.join(_HERE, name))
    and os.path.isfile(os.path.join(_ROOT, name, "__init__.py"))
    and os.path.isfile(os.path.join(_ROOT, "setup.py"))
}


class _SourceCheckoutFinder(importlib.abc.MetaPathFinder):
  """Finds `tfspeech.ops` / `tfspeech.export` in a source checkout when no installer did."""

  def find_spec(self, fullname, path=None, target=None):
    del path, target  # The two packages are found by name alone.
    folder = _SOURCE_PACKAGES.get(fullname)
    if folder is None:
      return None
    return importlib.util.spec_from_file_location(
        fullname, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder])


if _SOURCE_PACKAGES and not any(isinstance(f, _SourceCheckoutFinder) for f in sys.meta_path):
  # Appended, so an installer's own finder (PEP 660 editable installs) still answers first.
  sys.meta_path.append(_SourceCheckoutFinder())
