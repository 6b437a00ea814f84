"""Throughput of tfspeech.ops.pitch.yin_pitch against librosa.yin and librosa.pyin.

Run `python -m benchmarks.pitch [--repeats N] [--seconds S]` from the repository
root; it prints a Markdown table of seconds of audio processed per second of
wall time and the speed-up over pYIN. All four run on the same audio
(espeak-ng speech at 22050 Hz, or harmonic tones with a gliding f0 when
espeak-ng is missing) with FastPitch's pitch settings: 1024-sample frames, hop
256, f0 between C2 and C7. `run()` returns the rows for other harnesses.
"""
import argparse
import os
import shutil
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfspeech.ops.pitch import yin_pitch  # noqa: E402

SAMPLE_RATE = 22050
FRAME_LENGTH = 1024
HOP_LENGTH = 256
FMIN = 65.40639132514966   # C2, as FastPitch's pitch extraction
FMAX = 2093.004522404789   # C7

_SENTENCES = [
    "Printing, in the only sense with which we are at present concerned, differs from most "
    "if not from all the arts and crafts represented in the Exhibition.",
    "The quick brown fox jumps over the lazy dog while seven wise owls hum a low tune.",
    "Speech synthesis turns written text into audio that sounds like a human voice.",
]


def benchmark_audio(seconds=20.0):
  """About `seconds` of mono float32 audio at 22050 Hz, and a word saying what it is."""
  espeak = shutil.which("espeak-ng")
  if espeak is not None:
    pieces = []
    with tempfile.TemporaryDirectory() as tmp:
      for index, sentence in enumerate(_SENTENCES):
        path = os.path.join(tmp, f"{index}.wav")
        subprocess.run([espeak, "-w", path, sentence], check=True, capture_output=True)
        pieces.append(_read_wav(path))
    speech = np.concatenate(pieces)
    repeats = int(np.ceil(seconds * SAMPLE_RATE / len(speech)))
    return np.tile(speech, repeats)[:int(seconds * SAMPLE_RATE)], "espeak-ng speech"
  t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
  f0 = 150.0 + 60.0 * np.sin(2 * np.pi * 0.5 * t)
  phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
  tone = sum(np.sin(k * phase) / k for k in range(1, 6))
  return (0.4 * tone / np.abs(tone).max()).astype(np.float32), "harmonic tones"


def _read_wav(path):
  data = tf.io.read_file(path)
  audio, rate = tf.audio.decode_wav(data, desired_channels=1)
  if int(rate) != SAMPLE_RATE:
    raise RuntimeError(f"{path}: espeak-ng wrote {int(rate)} Hz, expected {SAMPLE_RATE}")
  return audio[:, 0].numpy()  # graph-ok: offline benchmark input


def _time(fn, repeats, warmup=True):
  if warmup:
    fn()  # tracing, XLA compilation, numba JIT
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def run(repeats=3, seconds=20.0, pyin_warmup=True):
  """Times every method on the same audio.

  Args:
    repeats: timed calls per method after one warm-up call (median reported).
    seconds: length of the benchmark audio.
    pyin_warmup: False skips pyin's warm-up call (~10 s on 20 s of audio), for a repeated
      run in a process whose numba functions are already compiled.

  Returns:
    One dict per method: `method`, `seconds_per_call`, `audio_seconds`,
    `audio_seconds_per_second`, `speedup_vs_pyin`, `audio` (what was analysed),
    `device`.
  """
  import librosa  # a test/benchmark-only dependency

  audio, source = benchmark_audio(seconds)
  audio_seconds = len(audio) / SAMPLE_RATE
  batch = tf.constant(audio[np.newaxis])
  signature = [tf.TensorSpec([None, None], tf.float32)]

  def pitch_fn(jit):
    fn = tf.function(lambda a: yin_pitch(a, SAMPLE_RATE, FRAME_LENGTH, HOP_LENGTH, FMIN, FMAX),
                     input_signature=signature, jit_compile=jit)
    return lambda: fn(batch)[0].numpy()  # .numpy() waits for the device

  methods = {
      "tfspeech yin_pitch (tf.function)": pitch_fn(False),
      "tfspeech yin_pitch (tf.function, XLA)": pitch_fn(True),
      "librosa.yin": lambda: librosa.yin(audio, fmin=FMIN, fmax=FMAX, sr=SAMPLE_RATE,
                                         frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH),
      "librosa.pyin": lambda: librosa.pyin(audio, fmin=FMIN, fmax=FMAX, sr=SAMPLE_RATE,
                                           frame_length=FRAME_LENGTH, hop_length=HOP_LENGTH),
  }
  device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
  rows = []
  for method, fn in methods.items():
    try:
      pyin = method == "librosa.pyin"
      seconds_per_call = _time(fn, 1 if pyin else repeats, warmup=pyin_warmup or not pyin)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
      print(f"{method}: skipped ({type(error).__name__}: {str(error).splitlines()[0]})")
      continue
    rows.append(dict(method=method, seconds_per_call=seconds_per_call,
                     audio_seconds=audio_seconds,
                     audio_seconds_per_second=audio_seconds / seconds_per_call,
                     audio=source, device=device if method.startswith("tfspeech") else "CPU"))
  pyin = next((row for row in rows if row["method"] == "librosa.pyin"), None)
  for row in rows:
    row["speedup_vs_pyin"] = pyin["seconds_per_call"] / row["seconds_per_call"] if pyin else None
  return rows


def markdown_table(rows):
  lines = ["| method | device | s per call | audio s / s | × pYIN |",
           "|---|---|---:|---:|---:|"]
  for row in rows:
    speedup = f"{row['speedup_vs_pyin']:.0f}×" if row["speedup_vs_pyin"] else "n/a"
    lines.append(f"| {row['method']} | {row['device']} | {row['seconds_per_call']:.4f} | "
                 f"{row['audio_seconds_per_second']:.0f} | {speedup} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per method")
  parser.add_argument("--seconds", type=float, default=20.0, help="length of the audio")
  args = parser.parse_args()
  rows = run(args.repeats, args.seconds)
  print(f"{rows[0]['audio_seconds']:.1f} s of {rows[0]['audio']} at {SAMPLE_RATE} Hz, "
        f"frame {FRAME_LENGTH}, hop {HOP_LENGTH}, f0 {FMIN:.1f}-{FMAX:.1f} Hz\n")
  print(markdown_table(rows))


if __name__ == "__main__":
  main()
