"""Console progress bar (tqdm): step, steps/s, loss, ETA. Silent when not a TTY."""

import sys

import tqdm


class Progress:
  """A tqdm bar over global steps; a no-op when disabled or stderr is not a TTY."""

  def __init__(self, start: int, total: int, enabled: bool = True, stream=None):
    stream = stream or sys.stderr
    self.enabled = bool(enabled) and hasattr(stream, "isatty") and stream.isatty()
    self._bar = None
    if self.enabled:
      self._bar = tqdm.tqdm(total=total, initial=start, file=stream, unit="step",
                            dynamic_ncols=True, smoothing=0.05)

  def update(self, steps: int = 1):
    if self._bar is not None:
      self._bar.update(steps)

  def set_metrics(self, metrics: dict):
    """Shows a few metrics (e.g. {"loss": 0.12}) after the bar."""
    if self._bar is not None:
      self._bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)

  def write(self, line: str):
    if self._bar is not None:
      self._bar.write(line)

  def close(self):
    if self._bar is not None:
      self._bar.close()
      self._bar = None
