"""Flags and helpers shared by the tfspeech binaries (one flag vocabulary)."""

import sys

from absl import flags


def define_model_flags():
  """--model, --preset, --override: the vocabulary of train and info."""
  flags.DEFINE_string("model", None, "Registered model name (see `tfspeech-info --list`).")
  flags.DEFINE_string("preset", None, "Model preset, e.g. tiny or the paper's (ljspeech, v1). "
                      "Required for a new run; on resume defaults to the stored one.")
  flags.DEFINE_string("override", "", "Comma-separated config overrides, e.g. "
                      "'batch_size=8,learning_rate=1e-4,model.n_feats=80'. Bare names "
                      "resolve to the model or train config; `tfspeech-info --model=M "
                      "--list_keys` lists every key.")


def fail(message: str, code: int = 2):
  """Prints a readable error (no traceback) and exits."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)
