"""SIGINT/SIGTERM → finish the current step, save a checkpoint, exit cleanly."""

import gc
import signal
import threading

from absl import logging


class StopRequested:
  """Context manager that turns SIGINT/SIGTERM into a flag the training loop polls.

  A second SIGINT while a stop is pending raises KeyboardInterrupt at once
  (for a user who does not want to wait for the checkpoint). Outside the main
  thread signal handlers cannot be installed; the flag then only changes via
  `request()`.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self, enabled: bool = True):
    self.enabled = enabled
    self.signum = None
    self._previous = {}
    self._gc_was_enabled = None

  @property
  def requested(self) -> bool:
    return self.signum is not None

  def request(self, signum=signal.SIGTERM):
    self.signum = signum

  def _handle(self, signum, frame):
    del frame
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    logging.warning("received %s: saving a checkpoint after the current step, then "
                    "stopping (send SIGINT again to abort without saving)",
                    signal.Signals(signum).name)
    self.signum = signum
    # A full collection walks every traced graph (seconds under load); the grace period
    # is for the step in flight and the save. Collection resumes when the loop exits.
    if self._gc_was_enabled is None:
      self._gc_was_enabled = gc.isenabled()
      gc.disable()

  def __enter__(self):
    if self.enabled and threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()
    if self._gc_was_enabled:
      gc.enable()
    self._gc_was_enabled = None
    return False
