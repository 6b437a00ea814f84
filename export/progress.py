"""Progress lines of an export's long steps (tracing, freezing, converting each graph).

  from tfspeech.export import progress
  with progress.reporting(lambda line: print(line, file=sys.stderr)):
    export_lib.export_workdir(...)

`tfspeech-export` prints them as `export: <graph>: <step> in <seconds> s`; library calls
report nothing unless a callback is set (a context variable, so threads and nested exports
keep their own).
"""

import contextlib
import contextvars
import time
from typing import Callable, Iterator, Optional

_CALLBACK: contextvars.ContextVar = contextvars.ContextVar("tfspeech_export_progress",
                                                           default=None)


def report(line: str):
  """Passes `line` to the active callback, if any."""
  callback = _CALLBACK.get()
  if callback is not None:
    callback(line)


@contextlib.contextmanager
def reporting(callback: Optional[Callable[[str], None]]) -> Iterator[None]:
  """Sends the progress lines of the export steps inside the block to `callback`."""
  token = _CALLBACK.set(callback)
  try:
    yield
  finally:
    _CALLBACK.reset(token)


@contextlib.contextmanager
def step(what: str) -> Iterator[dict]:
  """Reports `what in N.N s` when the block ends; the block may add a suffix
  (`with step(...) as s: s["suffix"] = "(3.1 MB)"`)."""
  start, details = time.perf_counter(), {"suffix": ""}
  yield details
  suffix = f" {details['suffix']}" if details["suffix"] else ""
  report(f"{what} in {time.perf_counter() - start:.1f} s{suffix}")
