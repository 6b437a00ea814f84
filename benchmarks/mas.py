"""Times monotonic alignment search: tfspeech (graph, XLA) vs NumPy vs the Cython users run today.

    python -m benchmarks.mas --repeats 20

Cases are (batch, text, mel) = (16, 150, 800) and (1, 50, 200), standard-normal
log-likelihoods, every item at full length. Implementations run round-robin, one call each per
repeat, so load from other processes hits them alike; medians are reported. The Cython
timing is the compiled glow-tts `maximum_path_c` (package `monotonic-alignment-search`) plus
the copy and allocation it needs (it writes into its input), without torch. Its batch loop is a
Cython `prange`, but the 0.2.1 wheel is built without OpenMP (no libgomp, no GOMP symbols), so
items run one after another on one core: a single-threaded baseline.

TF rows take NumPy in and call `.numpy()`, as a data pipeline would; each conversion copies
the [batch, text, mel] array (about 0.5-1 ms each at 16 x 150 x 800). "tensors in/out" rows
pass `tf.Tensor`s and skip `.numpy()`, as inside a model; "XLA call floor" is a jit-compiled
function that only reads one length, the fixed cost of any XLA call.

`run(repeats)` returns the rows for a harness; this module is not imported by tests.
"""

import argparse
import glob
import importlib.util
import os
import statistics
import time

import numpy as np
import tensorflow as tf

from tfspeech.ops import alignment

CASES = ((16, 150, 800), (1, 50, 200))


def numpy_maximum_path(value, text_lengths, mel_lengths):
  """glow-tts MAS in NumPy, one vectorized step per mel frame; same float32 results as Cython."""
  batch, text, mel = value.shape
  tokens = np.arange(text)[None, :]
  mask = ((tokens[:, :, None] < text_lengths[:, None, None])
          & (np.arange(mel)[None, None, :] < mel_lengths[:, None, None]))
  value = np.where(mask, value, 0).astype(np.float32)
  neg = np.float32(-1e9)
  scores = np.zeros([batch, text], np.float32)
  moves = np.zeros([mel, batch, text], bool)
  lowest = (text_lengths - mel_lengths)[:, None]
  for y in range(mel):
    stay = np.where(tokens < y, scores, neg)
    advance = np.concatenate([np.full([batch, 1], 0 if y == 0 else neg, np.float32),
                              scores[:, :-1]], axis=1)
    updated = np.maximum(stay, advance) + value[:, :, y]
    in_band = (tokens >= lowest + y) & (tokens <= y) & (tokens < text_lengths[:, None])
    scores = np.where(in_band, updated, value[:, :, y])
    moves[y, :, 1:] = scores[:, 1:] < scores[:, :-1]
  path = np.zeros(value.shape, np.float32)
  rows = np.arange(batch)
  token = text_lengths - 1
  for y in range(mel - 1, -1, -1):
    active = y < mel_lengths
    path[rows[active], token[active], y] = 1
    if y > 0:
      step_back = active & (token != 0) & ((token == y) | moves[y - 1, rows, token])
      token = token - step_back
  return path


def _load_cython():
  """The compiled core of `monotonic-alignment-search`, imported without its torch wrapper."""
  spec = importlib.util.find_spec("monotonic_alignment_search")
  if spec is None:
    return None
  paths = glob.glob(os.path.join(spec.submodule_search_locations[0], "core*.so"))
  if not paths:
    return None
  core_spec = importlib.util.spec_from_file_location("monotonic_alignment_search.core", paths[0])
  core = importlib.util.module_from_spec(core_spec)
  core_spec.loader.exec_module(core)

  def maximum_path(value, text_lengths, mel_lengths):
    value = value.astype(np.float32)  # a copy: maximum_path_c overwrites it
    path = np.zeros(value.shape, np.int32)
    core.maximum_path_c(path, value, text_lengths, mel_lengths)
    return path

  return maximum_path


def _tf_implementations():
  signature = [tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([None], tf.int32),
               tf.TensorSpec([None], tf.int32)]
  impls = {}
  for tflite_compatible in (False, True):
    suffix = ", tflite_compatible" if tflite_compatible else ""
    fn = lambda v, t, m, c=tflite_compatible: alignment.maximum_path(v, t, m, tflite_compatible=c)
    impls["tfspeech graph" + suffix] = tf.function(fn, input_signature=signature)
    impls["tfspeech XLA" + suffix] = tf.function(fn, jit_compile=True)
  return impls


def _as_tensors(fn):
  """Runs `fn` on `tf.Tensor` copies of the arguments made once, without `.numpy()`."""
  cache = {}

  def run(*args):
    key = tuple(id(a) for a in args)
    if key not in cache:
      cache.clear()
      cache[key] = tuple(tf.constant(a) for a in args)
    return fn(*cache[key])

  return run


def run(repeats=20):
  """Times every implementation on every case.

  Returns:
    A list of dicts: `case` ("BxTxM"), `implementation`, `median_ms`, `min_ms`, `vs_cython`
    (median over Cython's median; None when Cython is unavailable), `matches_cython`.
  """
  tf_impls = _tf_implementations()
  impls = {name: (lambda v, t, m, f=fn: f(v, t, m).numpy()) for name, fn in tf_impls.items()}
  impls["tfspeech XLA, tensors in/out"] = _as_tensors(tf_impls["tfspeech XLA"])
  floor = tf.function(lambda v, t, m: t[0] + 1, jit_compile=True)
  impls["XLA call floor (no MAS), tensors in/out"] = _as_tensors(floor)
  impls["numpy (per-frame vectorized)"] = numpy_maximum_path
  cython = _load_cython()
  if cython is not None:
    impls["cython (monotonic-alignment-search)"] = cython
  rows = []
  rng = np.random.default_rng(0)
  for batch, text, mel in CASES:
    value = rng.normal(size=(batch, text, mel)).astype(np.float32)
    text_lengths = np.full([batch], text, np.int32)
    mel_lengths = np.full([batch], mel, np.int32)
    args = (value, text_lengths, mel_lengths)
    expected = cython(*args) if cython is not None else numpy_maximum_path(*args)
    matches = {name: None if "floor" in name else bool(np.array_equal(fn(*args), expected))
               for name, fn in impls.items()}
    times = {name: [] for name in impls}
    for _ in range(repeats):
      for name, fn in impls.items():
        if name.startswith("numpy") and len(times[name]) >= 3:
          continue  # seconds per call; a few repeats are plenty
        start = time.perf_counter()
        fn(*args)
        times[name].append(time.perf_counter() - start)
    cython_ms = (statistics.median(times["cython (monotonic-alignment-search)"]) * 1e3
                 if cython is not None else None)
    for name, samples in times.items():
      median_ms = statistics.median(samples) * 1e3
      rows.append({"case": f"{batch}x{text}x{mel}", "implementation": name,
                   "median_ms": median_ms, "min_ms": min(samples) * 1e3,
                   "vs_cython": median_ms / cython_ms if cython_ms else None,
                   "matches_cython": matches[name] if cython is not None else None})
  return rows


def to_markdown(rows):
  lines = ["| case (B x T_text x T_mel) | implementation | median ms | min ms | x Cython | "
           "same path as Cython |", "|---|---|---:|---:|---:|---|"]
  for row in rows:
    ratio = "n/a" if row["vs_cython"] is None else f"{row['vs_cython']:.2f}"
    lines.append(f"| {row['case']} | {row['implementation']} | {row['median_ms']:.2f} | "
                 f"{row['min_ms']:.2f} | {ratio} | {row['matches_cython']} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=20, help="timed calls per implementation")
  args = parser.parse_args()
  rows = run(args.repeats)
  if not any(row["implementation"].startswith("cython") for row in rows):
    print("Cython MAS unavailable: `pip install monotonic-alignment-search` to compare.")
  print(to_markdown(rows))


if __name__ == "__main__":
  main()
