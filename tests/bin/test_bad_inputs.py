"""Every user error of every binary is one `error:` line, exit code 2, and creates nothing.

Each row runs a binary as a subprocess in its own sandbox folder (its working
directory), holding small stand-ins: fake runs (a config.json), a fake prepared
corpus, a file where a folder belongs. The checks must fail before any work, so
the stand-ins never get loaded. The few rows marked `tf` import TensorFlow to check
names against the registry or the text front end, or a run's role (acoustic model or
vocoder: the registry imports the model's package). Each test asserts its row.

Every row runs, 3 at a time, in a child forked from one process that has imported
TensorFlow once (`_FORK_SERVER`): each is still `python -m tfspeech.bin.X` in its own
process, working directory and exit code, without a TensorFlow start-up of its own (5-15 s
each on the suite's 2 cores; the `tf` rows, and some others that imported it, made this
module's set-up a minute). Sharing the start-up would hide a row that imports TensorFlow,
so the child of a row not marked `tf` first forgets the pre-imported TensorFlow and Keras
and refuses to import them again (`_NoTensorFlow`): such a row exits 97 with the import's
stack on stderr, as the README promises a flag mistake costs no TensorFlow start-up.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

TINY_CORPUS = str(pathlib.Path(__file__).resolve().parents[1] / "data" / "ljspeech_tiny")
BINARIES = ["prepare", "train", "synthesize", "vocode", "export", "info", "demo"]

# (binary, argv, substring the error line must contain). Relative paths are inside the
# row's sandbox (see _make_sandbox); {corpus} is the bundled tiny corpus.
ROWS = [
    # --- prepare
    ("prepare", ["--out=out"], "--corpus is required"),
    ("prepare", ["--corpus=missing", "--out=out"], "--corpus=missing does not exist"),
    ("prepare", ["--corpus=afile", "--out=out"], "--format=filelist"),
    ("prepare", ["--corpus=notrun", "--out=out"], "no metadata.csv"),
    ("prepare", ["--corpus=notrun", "--format=filelist", "--out=out"], "is a folder"),
    ("prepare", ["--corpus={corpus}", "--out=afile"], "--out=afile is a file"),
    ("prepare", ["--corpus={corpus}", "--out=afile/sub"], "afile is a file"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--audio_root=notrun"], "--audio_root"),
    ("prepare", ["--corpus=texts.txt", "--format=filelist", "--out=out",
                 "--audio_root=missing"], "--audio_root=missing does not exist"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--format=vctk"], "--format=vctk"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--num_shards=0"], "--num_shards=0"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--validation_fraction=1.5"],
     "--validation_fraction=1.5"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--validation_count=-1"],
     "--validation_count=-1"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--workers=0"], "--workers=0"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--num_shards=two"], "--num_shards"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--bogus=1"], "bogus"),
    ("prepare", ["--corpus={corpus}", "--out=out", "extra"], "unexpected arguments 'extra'"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--mel=hifi"], "--mel=hifi", "tf"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--symbols=klingon"], "--symbols=klingon",
     "tf"),
    ("prepare", ["--corpus={corpus}", "--out=out", "--cleaners=englsh_cleaners"],
     "englsh_cleaners", "tf"),
    # --- train
    ("train", ["--model=toy"], "--workdir is required"),
    ("train", ["--model=nope", "--preset=tiny", "--workdir=new"], "--model=nope"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=afile"], "--workdir=afile is a file"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=afile/run"], "afile is a file"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=new", "--data=missing"],
     "--data=missing does not exist"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=new", "--data=notrun"],
     "not a prepared corpus"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=new", "--override=batch_size"],
     "--override=batch_size"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=new", "--override=batch_size=4",
               "--override=hidden=8,batch_size=2"], "batch_size is already set"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=new", "--max_steps=-5"],
     "--max_steps=-5"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=new", "--strategy=tpu"],
     "--strategy"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=ckptonly"], "no config.json"),
    ("train", ["--model=toy", "--preset=huge", "--workdir=new"], "huge", "tf"),
    ("train", ["--model=toy", "--workdir=new"], "preset", "tf"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=new", "--override=no_such_key=1"],
     "no_such_key", "tf"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=new", "--override=batch_size=many"],
     "batch_size", "tf"),
    ("train", ["--model=toy", "--preset=tiny", "--workdir=new", "--allow_changes=nonsense"],
     "nonsense", "tf"),
    # --- synthesize
    ("synthesize", ["--workdir=run", "--text=Hi."], "--out is required"),
    ("synthesize", ["--workdir=missing", "--text=Hi.", "--out=out"],
     "--workdir=missing does not exist"),
    ("synthesize", ["--workdir=afile", "--text=Hi.", "--out=out"], "--workdir=afile is a file"),
    ("synthesize", ["--workdir=notrun", "--text=Hi.", "--out=out"], "not a training run"),
    ("synthesize", ["--workdir=run", "--text=Hi.", "--out=afile"], "--out=afile is a file"),
    ("synthesize", ["--workdir=run", "--text=Hi.", "--out=afile/wavs"], "afile is a file"),
    ("synthesize", ["--workdir=run", "--text=", "--out=out"], "--text is empty"),
    ("synthesize", ["--workdir=run", "--text=   ", "--out=out"], "--text is empty"),
    ("synthesize", ["--workdir=run", "--out=out"], "exactly one of --text or --text_file"),
    ("synthesize", ["--workdir=run", "--text=Hi.", "--text_file=texts.txt", "--out=out"],
     "exactly one of"),
    ("synthesize", ["--workdir=run", "--text_file=missing.txt", "--out=out"],
     "--text_file=missing.txt does not exist"),
    ("synthesize", ["--workdir=run", "--text_file=blank.txt", "--out=out"], "holds no text"),
    ("synthesize", ["--workdir=run", "--text_file=latin1.txt", "--out=out"], "not UTF-8"),
    ("synthesize", ["--workdir=run", "--text=Hi.", "--out=out", "--vocoder=run"],
     "run of model 'grad_tts'", "tf"),
    ("synthesize", ["--workdir=run", "--text=Hi.", "--out=out", "--vocoder=missing"],
     "--vocoder=missing does not exist"),
    ("synthesize", ["--workdir=run", "--text=Hi.", "--out=out", "--checkpoint=run/ckpt-9"],
     "no such checkpoint"),
    ("synthesize", ["--workdir=run", "--text=Hi.", "--out=out", "--checkpoint=best"],
     "no best/ checkpoint"),
    ("synthesize", ["--workdir=run", "--text=Hi.", "--out=out", "--n_timesteps=0"],
     "--n_timesteps"),
    ("synthesize", ["--workdir=run", "--text=Hi.", "--out=out", "--temperature=0"],
     "--temperature"),
    ("synthesize", ["--workdir=run", "--gta", "--out=out"], "--gta needs --data"),
    ("synthesize", ["--workdir=run", "--gta", "--data=notrun", "--out=out"],
     "not a prepared corpus"),
    # --- vocode
    ("vocode", ["--workdir=voc", "--out=out"], "--mels is required"),
    ("vocode", ["--workdir=missing", "--mels=mels", "--out=out"],
     "--workdir=missing does not exist"),
    ("vocode", ["--workdir=run", "--mels=mels", "--out=out"], "run of model 'grad_tts'", "tf"),
    ("vocode", ["--workdir=notrun", "--mels=mels", "--out=out"], "not a training run"),
    ("vocode", ["--workdir=voc", "--mels=missing", "--out=out"], "--mels=missing does not exist"),
    ("vocode", ["--workdir=voc", "--mels=afile", "--out=out"], "--mels=afile is a file"),
    ("vocode", ["--workdir=voc", "--mels=mels", "--out=afile"], "--out=afile is a file"),
    ("vocode", ["--workdir=voc", "--mels=mels", "--out=afile/wavs"], "afile is a file"),
    ("vocode", ["--workdir=voc", "--mels=mels", "--out=out", "--batch_size=0"],
     "--batch_size=0"),
    ("vocode", ["--workdir=voc", "--mels=mels", "--out=out", "--split=dev"], "--split"),
    ("vocode", ["--workdir=voc", "--mels=mels", "--out=out", "--checkpoint=voc/nothing"],
     "no such checkpoint"),
    # --- export
    ("export", ["--workdir=run", "--out=out"], "--format is required"),
    ("export", ["--workdir=missing", "--format=tflite", "--out=out"],
     "--workdir=missing does not exist"),
    ("export", ["--workdir=notrun", "--format=tflite", "--out=out"], "not a training run"),
    ("export", ["--workdir=run", "--format=tflite", "--out=afile"], "--out=afile is a file"),
    ("export", ["--workdir=run", "--format=tflite", "--out=afile/x"], "afile is a file"),
    ("export", ["--workdir=run", "--format=tflite", "--out=full"], "--out=full is not empty"),
    ("export", ["--workdir=run", "--format=onnx", "--out=out"], "--format=onnx"),
    ("export", ["--workdir=run", "--format=tflite", "--out=out", "--precision=int4"],
     "--precision"),
    ("export", ["--workdir=run", "--format=saved_model", "--out=out", "--precision=float16"],
     "--precision"),
    ("export", ["--workdir=run", "--format=tflite", "--out=out", "--n_timesteps=0"],
     "--n_timesteps"),
    ("export", ["--workdir=run", "--format=tflite", "--out=out", "--vocoder=run"],
     "run of model 'grad_tts'", "tf"),
    ("export", ["--workdir=run", "--format=tflite", "--out=out", "--checkpoint=nothing"],
     "no such checkpoint"),
    # --- info
    ("info", [], "give --model"),
    ("info", ["--model=nope"], "--model=nope"),
    ("info", ["--workdir=missing"], "--workdir=missing does not exist"),
    ("info", ["--workdir=afile"], "--workdir=afile is a file"),
    ("info", ["--workdir=notrun"], "not a training run"),
    ("info", ["--workdir=run", "--model=toy"], "drop --model"),
    ("info", ["--model=toy", "--override=hidden"], "--override=hidden"),
    ("info", ["--model=toy", "--depth=-1"], "--depth=-1"),
    ("info", ["--workdir=badrun"], "badrun", "tf"),
    ("info", ["--model=toy", "--preset=huge"], "huge", "tf"),
    ("info", ["--model=toy", "--override=no_such_key=1"], "no_such_key", "tf"),
    # --- demo
    ("demo", [], "--corpus=tests/data/ljspeech_tiny does not exist"),
    ("demo", ["--corpus=notrun"], "no metadata.csv"),
    ("demo", ["--corpus={corpus}", "--out=afile"], "--out=afile is a file"),
    ("demo", ["--corpus={corpus}", "--out=afile/demo"], "afile is a file"),
    ("demo", ["--corpus={corpus}", "--out=out", "--max_steps=0"], "--max_steps=0"),
    ("demo", ["--corpus={corpus}", "--out=out", "--texts=Hi,,there"], "--texts"),
]


def _make_sandbox(folder: pathlib.Path):
  """The stand-ins the rows refer to, by relative path."""
  folder.mkdir(parents=True)
  (folder / "afile").write_text("not a folder\n")
  (folder / "texts.txt").write_text("Hello there.\n")
  (folder / "blank.txt").write_text("\n  \n")
  (folder / "latin1.txt").write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
  for name, model in (("run", "grad_tts"), ("voc", "hifigan")):
    (folder / name).mkdir()
    (folder / name / "config.json").write_text(json.dumps({"model": model}))
  (folder / "badrun").mkdir()
  (folder / "badrun" / "config.json").write_text("{not json")
  (folder / "ckptonly" / "checkpoints").mkdir(parents=True)
  (folder / "ckptonly" / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"')
  (folder / "notrun").mkdir()
  (folder / "mels").mkdir()
  (folder / "full").mkdir()
  (folder / "full" / "keep.txt").write_text("x")


def _tree(folder: pathlib.Path):
  return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# Reads JSON jobs, one a line, until stdin closes: [index, binary, argv, sandbox, stdout
# path, stderr path, whether the row may import TensorFlow (marked `tf`)]. Runs each as
# `python -m tfspeech.bin.<binary> *argv` would, in a child forked from this process (cwd the
# sandbox, stdout and stderr to the files), CONCURRENT at a time, and prints "index
# exit_status" as each ends. Only TensorFlow is imported here
# (tfspeech modules are cheap after it): each child imports the binary and what it uses, and
# runs its module as __main__ once, so no flag is defined twice.
_FORK_SERVER = textwrap.dedent("""
    import json
    import os
    import runpy
    import sys
    import tensorflow  # noqa: F401  (the start-up the children share)

    CONCURRENT = 3
    TF_IMPORTED = 97  # the exit status of a row not marked `tf` that imports TensorFlow
    # What a binary's TensorFlow start-up imports (Keras 3 comes with tensorflow).
    TF_PACKAGES = ("tensorflow", "keras", "tf_keras")

    class _NoTensorFlow:
      # A meta-path finder that ends the process at any import of TF_PACKAGES.

      @staticmethod
      def find_spec(fullname, path=None, target=None):
        del path, target
        if fullname.split(".")[0] in TF_PACKAGES:
          import traceback
          print(f"{fullname} imported by a row not marked `tf` (check its TF-free flags "
                "before anything imports TensorFlow, or mark the row `tf`):",
                file=sys.stderr)
          traceback.print_stack(file=sys.stderr)
          sys.stderr.flush()
          os._exit(TF_IMPORTED)
        return None

    def forbid_tensorflow():
      # Forget the shared start-up's modules so that importing any of them runs the finder
      # (an import of a cached module would not), and keep the finder ahead of the others.
      for name in list(sys.modules):
        if name.split(".")[0] in TF_PACKAGES:
          del sys.modules[name]
      sys.meta_path.insert(0, _NoTensorFlow)

    def child(binary, argv, sandbox, out, err, tf_allowed):
      code = 1
      try:
        os.chdir(sandbox)
        for fd, path in ((1, out), (2, err)):
          os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        if not tf_allowed:
          forbid_tensorflow()
        sys.argv = [binary, *argv]
        sys.path[0] = sandbox  # as under `python -m` run from the sandbox
        try:
          runpy.run_module(f"tfspeech.bin.{binary}", run_name="__main__", alter_sys=True)
          code = 0
        except SystemExit as exit_:
          code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        except BaseException:  # pylint: disable=broad-except
          import traceback
          traceback.print_exc()  # the traceback an unforked run would print
      finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    jobs = [json.loads(line) for line in sys.stdin]
    running = {}
    while jobs or running:
      while jobs and len(running) < CONCURRENT:
        index, *job = jobs.pop(0)
        pid = os.fork()
        if pid == 0:
          child(*job)
        running[pid] = index
      pid, status = os.wait()
      print(running.pop(pid), os.waitstatus_to_exitcode(status), flush=True)
""")


def _run_rows(root: pathlib.Path):
  """Runs every row in a child of one `_FORK_SERVER`: [(result, tree before, tree after)]."""
  jobs, trees = [], []
  for index, row in enumerate(ROWS):
    binary, argv = row[0], [a.format(corpus=TINY_CORPUS) for a in row[1]]
    sandbox = root / f"row{index:03d}"
    _make_sandbox(sandbox)
    trees.append(_tree(sandbox))
    # Outside the sandbox, so that its tree holds only what the binary made.
    out, err = (str(root / f"row{index:03d}.{name}") for name in ("stdout", "stderr"))
    jobs.append([index, binary, argv, str(sandbox), out, err, len(row) == 4])
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  server = subprocess.run([sys.executable, "-c", _FORK_SERVER], capture_output=True, text=True,
                          env=env, timeout=600,
                          input="".join(json.dumps(job) + "\n" for job in jobs))
  assert server.returncode == 0, server.stderr[-3000:]
  codes = dict(tuple(map(int, line.split())) for line in server.stdout.splitlines())
  assert sorted(codes) == list(range(len(ROWS))), server.stdout
  results = []
  for index, (_, binary, argv, sandbox, out, err, _) in enumerate(jobs):
    result = subprocess.CompletedProcess([binary, *argv], codes[index],
                                         pathlib.Path(out).read_text(encoding="utf-8"),
                                         pathlib.Path(err).read_text(encoding="utf-8"))
    results.append((result, trees[index], _tree(pathlib.Path(sandbox))))
  return results


@pytest.fixture(scope="module")
def row_results(tmp_path_factory):
  """Runs every row once (see `_run_rows`)."""
  return _run_rows(tmp_path_factory.mktemp("bad_inputs"))


def _row_id(row):
  return f"{row[0]}:{' '.join(row[1]) or '(no flags)'}"


@pytest.mark.parametrize("index", range(len(ROWS)), ids=[_row_id(r) for r in ROWS])
def test_bad_input_is_one_error_line(row_results, index):
  expected = ROWS[index][2]
  result, before, after = row_results[index]
  assert "Traceback" not in result.stderr, result.stderr
  assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, result.stderr
  assert expected in errors[0], errors[0]
  assert after == before, f"created {sorted(set(after) - set(before))}"


def test_table_covers_every_binary_and_its_tensorflow_free_rows_are_most():
  assert {row[0] for row in ROWS} == set(BINARIES)
  assert sum(len(row) == 4 for row in ROWS) <= len(ROWS) // 5


def _console_script(binary):
  path = os.path.join(os.path.dirname(sys.executable), f"tfspeech-{binary}")
  assert os.path.isfile(path), f"{path} missing: install the package (pip install -e .)"
  return path


def _defined_flags(binary):
  """Flag names the binary's module defines (read from its source, since the modules'
  flags clash when imported together)."""
  source = (pathlib.Path(__file__).resolve().parents[2] / "tfspeech" / "bin" /
            f"{binary}.py").read_text(encoding="utf-8")
  names = set(re.findall(r"flags\.DEFINE_\w+\(\s*\"(\w+)\"", source))
  if "define_model_flags()" in source:
    names |= {"model", "preset", "override"}
  return names


@pytest.mark.parametrize("binary", BINARIES)
def test_console_script_help_lists_every_flag(binary):
  result = subprocess.run([_console_script(binary), "--help"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode in (0, 1), result.stderr  # absl exits 1 after printing help.
  names = _defined_flags(binary)
  assert len(names) >= 3, names
  listed = set(re.findall(r"^  --(?:\[no\])?(\w+): \S", result.stdout, re.MULTILINE))
  assert names <= listed, f"missing from --help: {sorted(names - listed)}\n{result.stdout}"
  # The usage text is the binary's docstring, not the entry-point wrapper's nothing.
  assert f"tfspeech-{binary} --" in result.stdout
  if binary == "train":
    assert "--workdir: Run folder" in result.stdout
