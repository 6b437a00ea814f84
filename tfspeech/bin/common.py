"""Flags and helpers shared by the tfspeech binaries (one flag vocabulary, one error style).

Every user error is one `error: ...` line on stderr naming the flag or file and what to
do, exit code 2, found before any work starts and before anything is created. The
`check_*` helpers here look only at the file system and the flag values, without
importing TensorFlow, so a wrong path costs a fraction of a second, not a TF start-up.
"""

import json
import os
import re
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS

# Files that mark a folder as the output of another binary.
RUN_CONFIG = "config.json"          # tfspeech-train --workdir
DATASET_JSON = "dataset.json"       # tfspeech-prepare --out


def define_model_flags():
  """--model, --preset, --override: the vocabulary of train and info."""
  flags.DEFINE_string("model", None, "Registered model name (see `tfspeech-info --list`).")
  flags.DEFINE_string("preset", None, "Model preset, e.g. tiny or the paper's (ljspeech, v1). "
                      "Required for a new run; on resume defaults to the stored one.")
  flags.DEFINE_multi_string(
      "override", [], "Comma-separated config overrides, e.g. "
      "'batch_size=8,learning_rate=1e-4,model.n_feats=80'; may be repeated (a key given "
      "twice is an error). Bare names resolve to the model or train config; "
      "`tfspeech-info --model=M --list_keys` lists every key.")


def fail(message: str, code: int = 2):
  """Prints a readable error (no traceback) and exits."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def exit_now(code: int = 0):
  """Flushes output and ends the process without Python's interpreter teardown.

  For a run stopped by SIGTERM: its checkpoint is on disk, and tearing down TensorFlow's
  traced graphs (each node frees its recorded stack trace) took 2 s on a quiet 2-core host
  and 19 s on a busy one, past a container's ~10 s grace period before SIGKILL.
  """
  from absl import logging  # pylint: disable=import-outside-toplevel
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


# --- the entry point -----------------------------------------------------------------------


def _parse_flags(argv):
  """absl's flag parsing, with a bad or missing flag reported as one `error:` line (exit 2)."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    missing = re.match(r"flag --(\w+)=None: Flag --\w+ must have a value other than None",
                       str(e))
    fail(f"--{missing.group(1)} is required (see --help)" if missing else f"{e} (see --help)")


def run(main, module_name: str, skip_teardown: bool = False):
  """`app.run(main)` for the binary defined in module `module_name`.

  A console script's `__main__` is setuptools' wrapper, so absl's `--help` (which shows
  `__main__`'s docstring and key flags) would show neither usage nor flags: adopt the
  binary's key flags (its own and those it adopted) and docstring for `__main__`.
  Under `python -m` the binary is `__main__` already and this changes nothing.

  `skip_teardown`: once `main` has returned or exited, with TensorFlow imported, end the
  process by `exit_now` (same exit status) instead of tearing down TensorFlow's traced graphs
  (1-2 s of a fresh one-sentence synthesis on a loaded 2-core host). For console entry points
  only: tests call `main()` in their own process.
  """
  if skip_teardown:
    try:
      run(main, module_name)
    except SystemExit as e:
      if "tensorflow" not in sys.modules:
        raise
      code = e.code
      if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
      exit_now(code or 0)
    return
  module = sys.modules[module_name]
  main_module = sys.modules["__main__"]
  if module is not main_module:
    # absl files the flags of `__main__` under sys.argv[0] (see FlagValues.main_module_help).
    for flag in FLAGS.get_key_flags_for_module(module_name):
      FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    if not main_module.__doc__:
      main_module.__doc__ = module.__doc__
  app.run(main, flags_parser=_parse_flags)


def check_no_arguments(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])!r}: every setting is a --flag=value "
         "(see --help)")


# --- path checks ---------------------------------------------------------------------------


def check_dir(flag: str, path: str, what: str):
  """Fails unless `path` (given as --`flag`) is an existing folder; `what` says what it holds."""
  if not path:
    fail(f"--{flag} is empty; pass the folder of {what}")
  if not os.path.exists(path):
    fail(f"--{flag}={path} does not exist; pass the folder of {what}")
  if not os.path.isdir(path):
    fail(f"--{flag}={path} is a file, not a folder; pass the folder of {what}")


def check_file(flag: str, path: str, what: str):
  """Fails unless `path` (given as --`flag`) is an existing, readable file."""
  if not path:
    fail(f"--{flag} is empty; pass {what}")
  if not os.path.exists(path):
    fail(f"--{flag}={path} does not exist; pass {what}")
  if os.path.isdir(path):
    fail(f"--{flag}={path} is a folder; pass {what}")
  if not os.access(path, os.R_OK):
    fail(f"--{flag}={path} is not readable (permissions)")


def check_run_dir(flag: str, path: str, models=None):
  """Fails unless `path` is a training run folder (tfspeech-train --workdir, with config.json).

  Args:
    flag: the flag name, for the message.
    path: the folder.
    models: when given, the model names the run must be of (read from config.json).
  """
  what = "a training run (tfspeech-train --workdir)"
  check_dir(flag, path, what)
  config_path = os.path.join(path, RUN_CONFIG)
  if not os.path.isfile(config_path):
    fail(f"--{flag}={path} is not a training run (no {RUN_CONFIG}); pass the --workdir of "
         "a tfspeech-train run")
  if models:
    try:
      with open(config_path, encoding="utf-8") as f:
        model = json.load(f).get("model")
    except (OSError, ValueError, AttributeError) as e:
      fail(f"--{flag}={path}: {config_path} is unreadable ({e}); restore it or retrain")
    if model not in models:
      fail(f"--{flag}={path} is a run of model {model!r}; pass a run of "
           f"{' or '.join(models)}")


def check_checkpoint(flag: str, workdir: str, checkpoint):
  """Fails unless `checkpoint` (None, 'best' or a prefix) names a checkpoint of `workdir`."""
  if checkpoint is None:
    return
  if checkpoint == "best":
    if not os.path.isdir(os.path.join(workdir, "best")):
      fail(f"--{flag}=best: {workdir} has no best/ checkpoint (it is kept only when the run "
           "evaluates on validation data); omit --checkpoint for the newest")
    return
  if not os.path.isfile(checkpoint + ".index"):
    fail(f"--{flag}={checkpoint}: no such checkpoint ({checkpoint}.index missing); pass a "
         f"prefix such as {os.path.join(workdir, 'checkpoints', 'ckpt-1000')}, 'best', or omit it")


def check_prepared_dir(flag: str, path: str):
  """Fails unless `path` is a prepared corpus (tfspeech-prepare --out, with dataset.json)."""
  what = "a prepared corpus (tfspeech-prepare --out)"
  check_dir(flag, path, what)
  if not os.path.isfile(os.path.join(path, DATASET_JSON)):
    fail(f"--{flag}={path} is not a prepared corpus (no {DATASET_JSON}); run tfspeech-prepare "
         "--out=DIR first and pass DIR")


def check_out_dir(flag: str, path: str, must_be_empty: bool = False):
  """Fails unless the output folder `path` exists or can be created (without creating it).

  Args:
    flag: the flag name, for the message.
    path: the folder to write into.
    must_be_empty: also fail when it exists and holds files.
  """
  if not path:
    fail(f"--{flag} is empty; pass an output folder")
  if os.path.exists(path):
    if not os.path.isdir(path):
      fail(f"--{flag}={path} is a file; pass a folder (it is created if needed)")
    if not os.access(path, os.W_OK | os.X_OK):
      fail(f"--{flag}={path} is not writable (permissions); choose another folder")
    if must_be_empty and os.listdir(path):
      fail(f"--{flag}={path} is not empty; choose a new folder or empty it")
    return
  # The nearest existing ancestor must be a writable folder, or the folder cannot be made.
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    fail(f"--{flag}={path} cannot be created: {parent} is a file; choose another folder")
  if not os.access(parent, os.W_OK | os.X_OK):
    fail(f"--{flag}={path} cannot be created: {parent} is not writable (permissions)")


def check_text_file(flag: str, path: str):
  """Fails unless `path` is a UTF-8 text file with at least one non-blank line."""
  check_file(flag, path, "a UTF-8 text file with one text per line")
  try:
    with open(path, encoding="utf-8") as f:
      has_text = any(line.strip() for line in f)
  except UnicodeDecodeError as e:
    fail(f"--{flag}={path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8")
  if not has_text:
    fail(f"--{flag}={path} holds no text (every line is blank); write one text per line")


# --- value checks --------------------------------------------------------------------------


def check_positive(**values):
  """Fails for the first `flag=value` that is < 1."""
  for name, value in values.items():
    if value is not None and value < 1:
      fail(f"--{name}={value}: must be >= 1")


# Flags kept as short forms of --control=NAME=VALUE (tfspeech-synthesize, tfspeech-export), with
# the range their documented meaning gives them whatever the model declares: a step count, a
# divisor of the noise, a multiplier of durations. Checked with the plain flags, since the
# model's declared controls (checked later, by name) need the registry and so TensorFlow.
CONTROL_SHORT_FORMS = {
    "n_timesteps": (">=", 1, "a number of steps"),
    "temperature": (">", 0, "it divides the starting noise"),
    "length_scale": (">", 0, "it multiplies durations"),
}


def check_control_short_forms(**values):
  """Fails for the first short form of --control (`CONTROL_SHORT_FORMS`) out of its range.

  Args:
    **values: flag name → its value (None when not given).
  """
  for name, value in values.items():
    if value is None:
      continue
    op, bound, meaning = CONTROL_SHORT_FORMS[name]
    if value < bound if op == ">=" else value <= bound:
      fail(f"--{name}={value}: must be {op} {bound} ({meaning})")


def parse_overrides(texts) -> dict:
  """Every `--override` flag as one {key: raw value}, or a failure naming the flag.

  The flag may be repeated; a key given in two of them is refused rather than the
  later silently winning. Needs no TensorFlow.
  """
  from tfspeech import config as cfg  # pylint: disable=import-outside-toplevel
  if isinstance(texts, str):
    texts = [texts]
  merged, where = {}, {}
  for text in texts or ():
    try:
      parsed = cfg.parse_overrides(text)
    except cfg.ConfigError as e:
      fail(f"--override={text}: {e}; write key=value pairs separated by commas")
    for key, value in parsed.items():
      if key in merged:
        fail(f"--override={text}: {key} is already set by --override={where[key]}; "
             "give each key once")
      merged[key], where[key] = value, text
  return merged


def check_model_name(name: str):
  """Fails unless `name` is a registered model (the registry imports no model to list names)."""
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  if name not in registry.names():
    fail(f"--model={name}: unknown model; choose one of {', '.join(registry.names())} "
         "(tfspeech-info --list)")


def check_or_fail(check, *args, **kwargs):
  """Calls `check`, turning a ValueError it raises into a failure with its message."""
  try:
    return check(*args, **kwargs)
  except ValueError as e:
    fail(error_text(e))


def error_text(e: BaseException) -> str:
  """An exception's message without the quotes KeyError adds."""
  return str(e).strip("'\"")
