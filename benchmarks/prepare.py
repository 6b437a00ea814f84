"""Corpus preparation throughput: `tfspeech.data.prepare.prepare_corpus` vs per-file scripts.

Throughput is seconds of audio prepared per wall-clock second. Every variant
reads the same wavs:

  baseline   per-file `librosa.load` + the HiFi-GAN / Grad-TTS mel formula in
             NumPy/librosa (reflect pad (n_fft - hop) / 2, uncentred periodic-Hann
             STFT, sqrt(|X|^2 + 1e-9), Slaney mel filters, log(clamp(x, 1e-5)))
             + `np.save` of each mel: what users run today, in this process.
  torch      jik876/hifi-gan meldataset.py as written (scipy wav read, torch.stft)
             + `torch.save`, when torch is installed.
  tfspeech   `prepare_corpus` with all cores (spawned workers) and with
             workers=1 (in this process, a thread per core: the default on
             2 cores); it also stores PCM, text ids and
             mel statistics in TFRecords, here with pitch by YIN and energy per
             mel frame (`pitch=True`, as for FastPitch); workers=1 also without
             (the default), which gives what pitch costs.
  pitch      FastPitch's own pitch extraction, `librosa.pyin` per file (C2-C7,
             1024-sample frames), beside `tfspeech.ops.pitch.yin_pitch` per file
             as prepare runs it, on the same first clips (pYIN runs at ~3 audio
             s per s, so only ~20 s of them; its own group).

Cases: the bundled tiny corpus (tests/data/ljspeech_tiny, ~55 s; worker
start-up dominates), and a synthetic ~10 min corpus made by copying its wavs
into a temporary directory, from which the LJSpeech-scale time (13,100 clips,
24 h of audio) is estimated.
"""

import os
import pathlib
import shutil
import wave

import numpy as np

from benchmarks import harness

TINY_CORPUS = harness.REPO_ROOT / "tests" / "data" / "ljspeech_tiny"
LJSPEECH_AUDIO_SECONDS = 24 * 3600.0
LJSPEECH_CLIPS = 13100


def wav_seconds(path) -> float:
  """Duration of a PCM wav file in seconds (header only)."""
  with wave.open(str(path), "rb") as f:
    return f.getnframes() / f.getframerate()


def corpus_wavs(corpus_dir):
  """The wav paths listed in an LJSpeech-layout corpus, in listing order."""
  lines = (pathlib.Path(corpus_dir) / "metadata.csv").read_text(encoding="utf-8").splitlines()
  return [pathlib.Path(corpus_dir) / "wavs" / f"{line.split('|', 1)[0]}.wav"
          for line in lines if line.strip()]


def make_synthetic_corpus(source_dir, target_dir, min_seconds):
  """Copies `source_dir`'s LJSpeech corpus under new ids until it holds >= `min_seconds` of audio.

  Returns:
    The total audio seconds of the new corpus in `target_dir`.
  """
  source_dir, target_dir = pathlib.Path(source_dir), pathlib.Path(target_dir)
  lines = [l for l in (source_dir / "metadata.csv").read_text(encoding="utf-8").splitlines()
           if l.strip()]
  if not lines:
    raise ValueError(f"{source_dir / 'metadata.csv'} lists no utterances to copy")
  (target_dir / "wavs").mkdir(parents=True, exist_ok=True)
  listing, total, copy = [], 0.0, 0
  while total < min_seconds:
    for line in lines:
      utterance_id, rest = line.split("|", 1)
      new_id = f"{utterance_id}-C{copy:03d}"
      source = source_dir / "wavs" / f"{utterance_id}.wav"
      shutil.copyfile(source, target_dir / "wavs" / f"{new_id}.wav")
      listing.append(f"{new_id}|{rest}")
      total += wav_seconds(source)
    copy += 1
  (target_dir / "metadata.csv").write_text("\n".join(listing) + "\n", encoding="utf-8")
  return total


def _mel_config():
  from tfspeech.audio import MelConfig  # pylint: disable=import-outside-toplevel
  return MelConfig.hifigan()


def numpy_reference(wavs, out_dir):
  """Baseline: per-file librosa load + HiFi-GAN mel in NumPy/librosa + np.save. Returns a callable."""
  import librosa  # pylint: disable=import-outside-toplevel

  config = _mel_config()
  mel_basis = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                  fmin=config.fmin, fmax=config.fmax)
  pad = (config.n_fft - config.hop_length) // 2

  def prepare():
    os.makedirs(out_dir, exist_ok=True)
    for path in wavs:
      audio, _ = librosa.load(path, sr=config.sample_rate)
      audio = np.pad(audio, (pad, pad), mode="reflect")
      spectrum = librosa.stft(audio, n_fft=config.n_fft, hop_length=config.hop_length,
                              win_length=config.win_length, window="hann", center=False)
      magnitude = np.sqrt(spectrum.real ** 2 + spectrum.imag ** 2 + 1e-9)
      mel = np.log(np.maximum(mel_basis @ magnitude, 1e-5))
      np.save(os.path.join(out_dir, path.stem + ".npy"), mel)
  return prepare


def torch_reference(wavs, out_dir):
  """jik876/hifi-gan meldataset.py (scipy read, torch.stft) + torch.save; None without torch."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  import librosa  # pylint: disable=import-outside-toplevel
  from scipy.io import wavfile  # pylint: disable=import-outside-toplevel

  config = _mel_config()
  mel_basis = torch.from_numpy(librosa.filters.mel(
      sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.fmin,
      fmax=config.fmax)).float()
  window = torch.hann_window(config.win_length)
  pad = (config.n_fft - config.hop_length) // 2

  def prepare():
    os.makedirs(out_dir, exist_ok=True)
    threads = torch.get_num_threads()
    # One thread, as in a DataLoader worker: per-file STFTs are too small to gain from
    # OpenMP, and on a busy machine its spinning threads made this up to 50x slower.
    torch.set_num_threads(1)
    try:
      with torch.no_grad():
        for path in wavs:
          _, audio = wavfile.read(path)
          y = torch.from_numpy(audio.astype(np.float32) / 32768.0).unsqueeze(0)
          y = torch.nn.functional.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
          spec = torch.stft(y, config.n_fft, hop_length=config.hop_length,
                            win_length=config.win_length, window=window, center=False,
                            normalized=False, onesided=True, return_complex=True)
          magnitude = torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
          mel = torch.log(torch.clamp(torch.matmul(mel_basis, magnitude), min=1e-5))
          torch.save(mel, os.path.join(out_dir, path.stem + ".pt"))
    finally:
      torch.set_num_threads(threads)
  return prepare


def _tfspeech_prepare(corpus_dir, out_dir, workers, reports, pitch=True):
  from tfspeech.data.prepare import prepare_corpus  # pylint: disable=import-outside-toplevel

  def prepare():
    shutil.rmtree(out_dir, ignore_errors=True)
    reports.append(prepare_corpus(corpus_dir, out_dir, workers=workers, mel_config="hifigan",
                                  on_unknown="drop", resume=False, progress=False, pitch=pitch))
  return prepare


def pitch_only_variants(wavs):
  """(name, callable, is_baseline) of librosa.pyin and yin_pitch per file, as FastPitch and
  prepare extract pitch (C2-C7, frame 1024, hop 256); None without librosa."""
  try:
    import librosa  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  import soundfile  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfspeech.audio import MelSpectrogram  # pylint: disable=import-outside-toplevel
  from tfspeech.data import prepare_worker  # pylint: disable=import-outside-toplevel

  config = _mel_config()
  settings = prepare_worker.PitchSettings()
  audios = [soundfile.read(path, dtype="float32")[0] for path in wavs]
  features = tf.function(
      lambda audio: prepare_worker.frame_features(audio, MelSpectrogram(config), settings),
      input_signature=[tf.TensorSpec([None], tf.float32)])

  def pyin():
    for audio in audios:
      librosa.pyin(audio, fmin=settings.fmin, fmax=settings.fmax, sr=config.sample_rate,
                   frame_length=settings.frame_length, hop_length=config.hop_length)

  def yin():
    for audio in audios:
      [t.numpy() for t in features(tf.constant(audio))]  # graph-ok: benchmark
  return [("librosa.pyin per file (FastPitch's extraction)", pyin, True),
          ("tfspeech mel + energy + yin_pitch per file (prepare's worker)", yin, False)]


def measure_corpus(ctx, corpus_dir, repeats, estimate_ljspeech, spawn_workers=True):
  """Times every variant on `corpus_dir`; one group, baseline = the NumPy/librosa script.

  Every variant gets one untimed warm-up call except prepare_corpus with spawned
  workers: each call starts fresh workers, so there is nothing to warm up.
  """
  wavs = corpus_wavs(corpus_dir)
  audio_seconds = sum(wav_seconds(p) for p in wavs)
  cores = os.cpu_count() or 1
  variants = [("librosa + NumPy mel, per file",
               numpy_reference(wavs, ctx.tmp_dir / "numpy"), True, "")]
  torch_fn = torch_reference(wavs, ctx.tmp_dir / "torch")
  if torch_fn is not None:
    variants.append(("hifi-gan meldataset.py (torch), per file",
                     torch_fn, False, ""))
  reports_by_variant = {}
  runs = [(cores, True)] if spawn_workers and cores > 1 else []
  runs += [(1, True), (1, False)]
  for workers, pitch in runs:
    reports = reports_by_variant.setdefault((workers, pitch), [])
    label = (f"in this process, {cores} threads" if workers == 1 else "spawned processes")
    label += ", pitch + energy" if pitch else ", no pitch"
    variants.append((f"tfspeech prepare_corpus (workers={workers}, {label})",
                     _tfspeech_prepare(corpus_dir, ctx.tmp_dir / f"tfspeech-{workers}-{pitch}",
                                       workers, reports, pitch), False, (workers, pitch)))
  measurements = []
  for name, fn, is_baseline, key in variants:
    workers = key[0] if key else 0
    ctx.log(f"  {name}: {len(wavs)} files, {audio_seconds:.0f} s of audio, {repeats} repeats")
    samples = ctx.time(fn, repeats=repeats, warmup=0 if workers and workers > 1 else 1)
    median = float(np.median(samples))
    notes, extra = [], {"files": len(wavs), "audio_seconds": audio_seconds}
    startup = 0.0
    if workers:
      reports = reports_by_variant[key]
      startup = float(np.median([r.first_result_seconds for r in reports]))
      skipped = max(r.num_skipped for r in reports)
      processed = reports[-1].processed_audio_seconds
      extra.update(first_result_seconds=startup, skipped=skipped, processed_audio_seconds=processed)
      notes.append(f"first result after {startup:.1f} s")
      if skipped or abs(processed - audio_seconds) > 0.5:
        notes.append(f"{skipped} skipped, {processed:.0f} s processed")
    if estimate_ljspeech:
      # Spawned workers' start-up (importing TensorFlow) is paid once, not per audio second.
      fixed = startup if workers and workers > 1 else 0.0
      minutes = (fixed + LJSPEECH_AUDIO_SECONDS * (median - fixed) / audio_seconds) / 60.0
      extra["ljspeech_estimate_minutes"] = minutes
      notes.append(f"LJSpeech ({LJSPEECH_CLIPS} clips, 24 h) ≈ {minutes:.1f} min"
                   + (" (start-up once)" if fixed else ""))
    measurements.append(harness.Measurement(
        name, samples, baseline=is_baseline, group=f"{audio_seconds:.0f} s audio",
        device=ctx.device_label if workers else "CPU", work=audio_seconds, work_unit="audio s",
        note="; ".join(notes), extra=extra))
  measurements += measure_pitch(ctx, wavs, 5.0 if ctx.quick else 20.0)
  return measurements


def measure_pitch(ctx, wavs, min_seconds):
  """pYIN beside prepare's per-utterance features on the first clips holding >= min_seconds."""
  subset, seconds = [], 0.0
  for path in wavs:
    if seconds >= min_seconds:
      break
    subset.append(path)
    seconds += wav_seconds(path)
  variants = pitch_only_variants(subset)
  if variants is None:
    ctx.log("  pitch: librosa missing (pip install -e '.[bench]'); pYIN not measured")
    return []
  measurements = []
  for name, fn, is_baseline in variants:
    ctx.log(f"  {name}: {len(subset)} files, {seconds:.0f} s of audio")
    samples = ctx.time(fn, repeats=1 if is_baseline else ctx.repeats(3), warmup=1)
    minutes = LJSPEECH_AUDIO_SECONDS * float(np.median(samples)) / seconds / 60.0
    measurements.append(harness.Measurement(
        name, samples, baseline=is_baseline, group=f"pitch, {seconds:.0f} s of the same audio",
        device="CPU" if is_baseline else ctx.device_label, work=seconds, work_unit="audio s",
        note=f"LJSpeech on one core ≈ {minutes:.1f} min",
        extra={"files": len(subset), "audio_seconds": seconds,
               "ljspeech_estimate_minutes": minutes}))
  return measurements


@harness.case("prepare", "tiny corpus", on_request=True)
def tiny_corpus_case(ctx):
  """prepare_corpus on tests/data/ljspeech_tiny (~55 s of audio): start-up dominated.

  On request (--cases='tiny corpus' or --extended): the LJSpeech extrapolation that issue #22
  targets is the synthetic corpus case's; this one took 37 s of --suite=all's 30 minutes.
  """
  if not (TINY_CORPUS / "metadata.csv").exists():
    raise harness.Skip(f"tiny corpus missing at {TINY_CORPUS}; run tests/data/make_tiny_corpus.sh")
  return measure_corpus(ctx, TINY_CORPUS, ctx.repeats(3), estimate_ljspeech=False)


@harness.case("prepare", "synthetic corpus")
def synthetic_corpus_case(ctx):
  """prepare_corpus on copies of the tiny corpus (~10 min of audio): steady-state throughput.

  With --quick: ~2 min of audio and no spawned workers (their start-up alone takes
  longer than the rest of the quick run).
  """
  if not (TINY_CORPUS / "metadata.csv").exists():
    raise harness.Skip(f"tiny corpus missing at {TINY_CORPUS}; run tests/data/make_tiny_corpus.sh")
  corpus = ctx.tmp_dir / "synthetic"
  make_synthetic_corpus(TINY_CORPUS, corpus, 100.0 if ctx.quick else 600.0)
  # Two samples per variant (three before 2026-12-06; --suite=all's 30 minutes).
  return measure_corpus(ctx, corpus, ctx.repeats(2), estimate_ljspeech=True,
                        spawn_workers=not ctx.quick)
