"""export_workdir writes a local output folder whole or not at all (a staging sibling, renamed)."""
import os
import stat

import pytest

from tfspeech.export import export_lib


def _fake_export(fail=None):
  """An `_export` that writes two files into its folder, then raises `fail` if given."""
  seen = {}

  def export(workdir, fmt, out, *args):
    del workdir, fmt, args
    seen["folder"] = out
    os.makedirs(os.path.join(out, "graph"))
    for name in ("metadata.json", os.path.join("graph", "model.json")):
      with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        f.write("{}")
    if fail is not None:
      raise fail
    return {"metadata": os.path.join(out, "metadata.json"),
            "graph": os.path.join(out, "graph", "model.json")}
  return export, seen


@pytest.mark.parametrize("existing", [False, True])
def test_a_complete_export_is_renamed_into_place(tmp_path, monkeypatch, existing):
  out = tmp_path / "exported"
  if existing:
    out.mkdir()  # empty folders are accepted
  export, seen = _fake_export()
  monkeypatch.setattr(export_lib, "_export", export)
  paths = export_lib.export_workdir("run", "tfjs", str(out) + "/")
  assert seen["folder"] != str(out) and ".partial-" in os.path.basename(seen["folder"])
  assert paths == {"metadata": str(out / "metadata.json"),
                   "graph": str(out / "graph" / "model.json")}
  assert all(os.path.isfile(p) for p in paths.values())
  assert sorted(os.listdir(tmp_path)) == ["exported"]  # no staging folder left
  umask = os.umask(0)
  os.umask(umask)
  assert stat.S_IMODE(os.stat(out).st_mode) == 0o777 & ~umask  # not mkdtemp's 0700


@pytest.mark.parametrize("error", [RuntimeError("converter failed"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_export_leaves_nothing(tmp_path, monkeypatch, error):
  out = tmp_path / "exported"
  export, seen = _fake_export(fail=error)
  monkeypatch.setattr(export_lib, "_export", export)
  with pytest.raises(type(error)):
    export_lib.export_workdir("run", "saved_model", str(out))
  assert os.path.isdir(tmp_path) and os.listdir(tmp_path) == []
  assert not os.path.exists(seen["folder"])


def test_a_complete_export_that_cannot_take_its_place_is_kept_and_named(tmp_path, monkeypatch):
  out = tmp_path / "exported"
  export, seen = _fake_export()

  def export_then_fill_out(*args):
    paths = export(*args)
    out.mkdir()
    (out / "someone_elses.txt").write_text("x")  # written into --out during the export
    return paths
  monkeypatch.setattr(export_lib, "_export", export_then_fill_out)
  with pytest.raises(RuntimeError, match="export is complete in .*partial.* move it there"):
    export_lib.export_workdir("run", "tflite", str(out))
  assert os.path.isfile(os.path.join(seen["folder"], "graph", "model.json"))
  assert os.listdir(out) == ["someone_elses.txt"]


def test_a_symlinked_out_is_written_in_place(tmp_path, monkeypatch):
  target = tmp_path / "target"
  target.mkdir()
  link = tmp_path / "link"
  link.symlink_to(target)
  export, seen = _fake_export()
  monkeypatch.setattr(export_lib, "_export", export)
  paths = export_lib.export_workdir("run", "tfjs", str(link))
  assert seen["folder"] == str(link) and os.path.isfile(paths["graph"])
  assert sorted(os.listdir(tmp_path)) == ["link", "target"] and link.is_symlink()
