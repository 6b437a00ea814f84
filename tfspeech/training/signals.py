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
    self._froze = False  # this object called gc.freeze() with nothing frozen before

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
    # The grace period is for the step in flight and the save; a collection of cyclic
    # garbage (old traced graphs) took 30 s on a busy 2-core host. Exempt everything alive
    # now from collection until `thaw`: a binary exits before it (tfspeech-train exits from
    # inside `train`, see its `on_signal_stop`); an interactive caller gets collection back
    # when the run returns.
    if not gc.get_freeze_count():  # nothing frozen yet: this freeze is ours to undo
      self._froze = True
    gc.freeze()

  def thaw(self):
    """Undoes the stop's `gc.freeze()` (not one the process made before it)."""
    if self._froze:
      self._froze = False
      gc.unfreeze()

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
