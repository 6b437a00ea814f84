"""The row and input helpers that the model benchmarks (Grad-TTS, HiFi-GAN, FastPitch, Tacotron 2,
DiffWave) share: a fake torch reference stands in, so no model or torch is needed."""
import importlib
import pathlib
import sys
import types

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
  sys.path.append(str(REPO_ROOT))  # at the end: the installed tfspeech wins (see test_harness)
models = importlib.import_module("benchmarks.models")

_REFERENCE = types.SimpleNamespace(label="CPU", note="torch 9.9, 2 threads",
                                   threads={"torch_num_threads": 2, "omp_wait_policy": "PASSIVE"})


def test_tf_row_says_why_there_is_no_ratio_without_torch():
  row = models.tf_row("tfspeech tiny", [1.0], None, group="g", work=3.0, work_unit="audio s",
                      note="throughput = RTF", extra={"rtf": 3.0})
  assert (row.name, row.group, row.work, row.work_unit, row.baseline) == (
      "tfspeech tiny", "g", 3.0, "audio s", False)
  assert row.note == f"throughput = RTF; {models.NO_TORCH}"
  assert list(row.extra) == ["rtf", "tf_intra_op_threads", "tf_inter_op_threads"]
  with_torch = models.tf_row("tfspeech tiny", [1.0], _REFERENCE, note="n", extra={"rtf": 3.0})
  assert with_torch.note == "n"
  assert with_torch.extra == {"rtf": 3.0, **_REFERENCE.threads}


def test_torch_row_is_the_baseline_on_the_reference_device():
  row = models.torch_row("pytorch reference tiny", [2.0], _REFERENCE, group="g", work=3.0,
                         work_unit="audio s", note="same mels; ", extra={"rtf": 1.5})
  assert (row.baseline, row.device, row.group, row.work) == (True, "CPU", "g", 3.0)
  assert row.note == "same mels; torch 9.9, 2 threads"
  assert row.extra == {"rtf": 1.5, "torch_num_threads": 2, "omp_wait_policy": "PASSIVE"}


def test_text_mel_batch_is_padded_and_seeded():
  batch = models.text_mel_batch(np.random.default_rng(3), 4, n_vocab=10, n_mels=5,
                                frames_per_token=2)
  lengths, mel_lengths = batch["text_lengths"].numpy(), batch["mel_lengths"].numpy()
  assert ((lengths >= models.MIN_TOKENS) & (lengths <= models.MAX_TOKENS)).all()
  np.testing.assert_array_equal(mel_lengths, 2 * lengths)
  ids, mel = batch["text_ids"].numpy(), batch["mel"].numpy()
  assert ids.shape == (4, lengths.max()) and mel.shape == (4, mel_lengths.max(), 5)
  for i in range(4):
    assert (ids[i, :lengths[i]] >= 1).all() and (ids[i, :lengths[i]] < 10).all()
    assert (ids[i, lengths[i]:] == 0).all()
    np.testing.assert_allclose(mel[i, mel_lengths[i]:], np.log(1e-5))
  again = models.text_mel_batch(np.random.default_rng(3), 4, n_vocab=10, n_mels=5,
                                frames_per_token=2)
  np.testing.assert_array_equal(again["mel"].numpy(), mel)


def _fake_clock(monkeypatch, call_seconds):
  """A `time.perf_counter` that advances by `call_seconds` per call of the returned function."""
  now = [0.0]
  # The `time` module itself: models._timed and harness.time_calls both read it.
  monkeypatch.setattr(models.time, "perf_counter", lambda: now[0])
  calls = []

  def fn():
    calls.append(now[0])
    now[0] += call_seconds

  return fn, calls


def _context(quick=False, repeats=None):
  return types.SimpleNamespace(
      quick=quick, repeats_override=repeats,
      repeats=lambda default, quick_repeats=2: quick_repeats if quick else default)


def test_timed_takes_at_least_three_samples_of_a_call_longer_than_the_budget(monkeypatch):
  # A 4 s batch-16 step: the 5 s budget alone stopped after one timed call.
  fn, calls = _fake_clock(monkeypatch, 4.0)
  samples, warmup = models._timed(_context(), fn, 5)  # pylint: disable=protected-access
  assert warmup == 4.0 and samples == [4.0] * models.MIN_TIMED_CALLS == [4.0] * 3
  assert len(calls) == 4  # the warm-up, then three timed


def test_timed_stops_at_the_budget_after_the_minimum_and_at_the_default(monkeypatch):
  fn, _ = _fake_clock(monkeypatch, 1.5)  # 3 × 1.5 + 1.5 > 5: no fourth
  assert models._timed(_context(), fn, 5)[0] == [1.5] * 3  # pylint: disable=protected-access
  fn, _ = _fake_clock(monkeypatch, 0.5)  # the budget allows 9: the case's default wins
  assert models._timed(_context(), fn, 5)[0] == [0.5] * 5  # pylint: disable=protected-access
  fn, _ = _fake_clock(monkeypatch, 4.0)  # a default below the minimum wins too
  assert models._timed(_context(), fn, 2)[0] == [4.0] * 2  # pylint: disable=protected-access


def test_timed_quick_and_repeats(monkeypatch):
  fn, _ = _fake_clock(monkeypatch, 4.0)
  assert models._timed(_context(quick=True), fn, 5)[0] == [4.0]  # pylint: disable=protected-access
  fn, calls = _fake_clock(monkeypatch, 4.0)
  assert models._timed(_context(repeats=4), fn, 5)[0] == [4.0] * 4  # pylint: disable=protected-access
  assert len(calls) == 5


def test_timed_together_alternates_the_calls_and_skips_warm_ones(monkeypatch):
  now = [0.0]
  monkeypatch.setattr(models.time, "perf_counter", lambda: now[0])
  order = []

  def timed(name, seconds):
    def fn():
      order.append(name)
      now[0] += seconds
    return fn

  timings = models._timed_together(  # pylint: disable=protected-access
      _context(), [timed("a", 1.0), timed("b", 2.0)], 5, warm={1})
  # a's warm-up only, then rounds a, b: 3 rounds (9 s) + the medians' 3 s > 2 budgets of 5 s.
  assert order == ["a"] + ["a", "b"] * 3
  assert timings == [([1.0] * 3, 1.0), ([2.0] * 3, 0.0)]
  order.clear()
  timings = models._timed_together(  # pylint: disable=protected-access
      _context(repeats=2), [timed("a", 1.0), timed("b", 2.0)], 5)
  assert order == ["a", "b"] + ["a", "b"] * 2 and [len(t[0]) for t in timings] == [2, 2]
