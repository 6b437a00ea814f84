"""tfspeech.export.progress: step lines reach the active callback only."""

import contextvars
import re
import threading

from tfspeech.export import progress


def test_steps_report_to_the_active_callback_only():
  lines, other = [], []
  progress.report("nobody listens")
  with progress.reporting(lines.append):
    with progress.step("text_to_mel: converted") as step:
      step["suffix"] = "(2.9 MB)"
    with progress.reporting(other.append):  # nested: the inner callback wins
      progress.report("inner")
    progress.report("outer")
  progress.report("after")
  assert re.fullmatch(r"text_to_mel: converted in \d+\.\d s \(2\.9 MB\)", lines[0]), lines
  assert lines[1:] == ["outer"] and other == ["inner"]


def test_a_new_thread_reports_nothing_unless_given_the_context():
  lines = []
  with progress.reporting(lines.append):
    thread = threading.Thread(target=progress.report, args=("bare thread",))
    thread.start()
    thread.join()
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(progress.report, "copied context"))
    thread.start()
    thread.join()
  assert lines == ["copied context"]
