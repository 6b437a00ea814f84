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
    # The grace period is for the step in flight and the save. Once the run returns, its
    # traced graphs become cyclic garbage that one collection took 30 s to free on a busy
    # 2-core host. Exempt everything alive now from collection: the process is about to
    # exit (tfspeech-train exits from inside `train`, see its `on_signal_stop`); an
    # interactive caller keeps working, holding that memory until exit or `gc.unfreeze()`.
    gc.freeze()

  def __enter__(self):
    if self.enabled and threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()
    return False
