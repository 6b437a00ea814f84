r"""Converts a speech corpus once into sharded TFRecords for training.

  tfspeech-prepare --corpus=LJSpeech-1.1 --out=data/ljspeech
  tfspeech-prepare --corpus=filelists/train.txt --format=filelist --out=data/mine

Writes train/validation shards, dataset.json (conventions: sample rate, mel
config, symbol table, cleaners, pitch settings), stats.json (mel, pitch and energy
normalization statistics) and report.json, which lists every skipped entry with
its reason. With --pitch (FastPitch) records also carry pitch (YIN f0 per mel
frame, 0 = unvoiced) and energy. Bad entries never abort the run; re-running after an
interruption finishes only what is missing; re-running with other pitch settings
(or --pitch on a corpus prepared with --nopitch) re-extracts every shard.
"""

import os

from absl import flags

from tfspeech.bin import common

FLAGS = flags.FLAGS
flags.DEFINE_string("corpus", None, "Corpus: an LJSpeech-layout folder (metadata.csv + wavs/) "
                    "or, with --format=filelist, a 'path|text' or 'path|speaker|text' file.")
flags.DEFINE_string("out", None, "Output folder for the TFRecord shards and reports.")
flags.DEFINE_enum("format", "ljspeech", ["ljspeech", "filelist"], "Corpus layout.")
flags.DEFINE_string("audio_root", None, "filelist only: folder that relative audio paths are "
                    "resolved against (default: the filelist's folder).")
flags.DEFINE_integer("sample_rate", None, "Target sample rate in Hz (default: the mel preset's, "
                     "22050 for hifigan/tacotron2).")
flags.DEFINE_string("mel", "hifigan", "Mel convention preset: hifigan (HiFi-GAN/Grad-TTS), "
                    "tacotron2 (Tacotron 2/FastPitch) or librosa.")
flags.DEFINE_string("symbols", "english_characters", "Symbol table: english_characters or "
                    "english_arpabet.")
flags.DEFINE_list("cleaners", ["english_cleaners"], "Text cleaners, applied in order.")
flags.DEFINE_enum("on_unknown", "drop", ["error", "warn", "drop"], "What to do with characters "
                  "outside the symbol table: skip the entry (error), keep it and report (warn), "
                  "or drop the characters and report the count (drop).")
flags.DEFINE_float("validation_fraction", 0.05, "Fraction of utterances held out for validation.")
flags.DEFINE_integer("validation_count", None, "Exact number held out (overrides the fraction).")
flags.DEFINE_integer("num_shards", 4, "Number of training shards.")
flags.DEFINE_integer("seed", 0, "Seed of the train/validation split.")
flags.DEFINE_integer("workers", None, "Worker processes; 1 = in this process, one utterance per "
                     "core on threads. Default: 1 for corpora under 256 entries (worker "
                     "start-up costs more) and on up to 2 cores (the threads were faster), "
                     "else one process per core.")
flags.DEFINE_bool("allow_resample", True, "Resample audio at another rate (else skip it).")
flags.DEFINE_bool("allow_downmix", True, "Average multi-channel audio to mono (else skip it).")
flags.DEFINE_float("trim_silence_db", None, "Trim leading/trailing silence quieter than this many "
                   "dB below the peak (e.g. 60); default: no trimming.")
flags.DEFINE_bool("pitch", False, "Store pitch (YIN f0 in Hz per mel frame, 0 = unvoiced) and "
                  "energy (L2 norm of the linear STFT magnitude per mel frame) in the records, "
                  "with their statistics, as FastPitch needs (about doubles preparation time).")
flags.DEFINE_float("pitch_fmin", 65.40639132514966, "--pitch: lowest f0 searched, Hz (C2).")
flags.DEFINE_float("pitch_fmax", 2093.004522404789, "--pitch: highest f0 searched, Hz (C7).")
flags.DEFINE_integer("pitch_frame_length", 1024, "--pitch: samples per pitch analysis frame; "
                     "frames are centred on the mel frames, one per mel frame.")
flags.DEFINE_float("pitch_voicing_threshold", 0.35, "--pitch: frames whose YIN CMNDF at the "
                   "chosen period is at or above this are unvoiced (higher: more frames voiced).")
flags.DEFINE_bool("resume", True, "Keep shards finished by an earlier, interrupted run.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.mark_flags_as_required(["corpus", "out"])


def _check_paths():
  """Corpus, audio root and output checks: file-system only, before TensorFlow loads."""
  corpus = FLAGS.corpus
  if FLAGS.format == "ljspeech":
    if os.path.isfile(corpus):
      common.fail(f"--corpus={corpus} is a file; an LJSpeech-layout corpus is the folder "
                  "holding metadata.csv and wavs/ (for a 'path|text' filelist add "
                  "--format=filelist)")
    common.check_dir("corpus", corpus, "an LJSpeech-layout corpus (metadata.csv + wavs/)")
    if not os.path.isfile(os.path.join(corpus, "metadata.csv")):
      common.fail(f"--corpus={corpus} has no metadata.csv; pass an LJSpeech-layout folder "
                  "(metadata.csv + wavs/), or a filelist with --format=filelist")
  else:
    common.check_file("corpus", corpus, "a filelist of 'path|text' lines")
  if FLAGS.audio_root is not None:
    if FLAGS.format != "filelist":
      common.fail("--audio_root applies to --format=filelist only; drop it")
    common.check_dir("audio_root", FLAGS.audio_root, "the audio the filelist's paths point into")
  common.check_out_dir("out", FLAGS.out)
  if FLAGS.format == "ljspeech" and os.path.abspath(FLAGS.out) == os.path.abspath(corpus):
    # The shards would land among the corpus files (and stale train-* files be deleted).
    common.fail(f"--out={FLAGS.out} is the corpus folder; choose a separate output folder")


def _check_values():
  common.check_positive(num_shards=FLAGS.num_shards, workers=FLAGS.workers,
                        sample_rate=FLAGS.sample_rate)
  if FLAGS.validation_count is not None and FLAGS.validation_count < 0:
    common.fail(f"--validation_count={FLAGS.validation_count}: must be >= 0")
  if not 0.0 <= FLAGS.validation_fraction < 1.0:
    common.fail(f"--validation_fraction={FLAGS.validation_fraction}: must be in [0, 1)")
  if FLAGS.trim_silence_db is not None and FLAGS.trim_silence_db <= 0:
    common.fail(f"--trim_silence_db={FLAGS.trim_silence_db}: must be > 0 (dB below the peak, "
                "e.g. 60)")
  if not FLAGS.cleaners:
    common.fail("--cleaners is empty; pass at least one cleaner, e.g. english_cleaners")
  if not FLAGS.pitch:
    changed = [f"--{name}" for name in _PITCH_FLAGS if FLAGS[name].present]
    if changed:
      common.fail(f"{', '.join(changed)} without --pitch: add --pitch or drop those flags")


_PITCH_FLAGS = ("pitch_fmin", "pitch_fmax", "pitch_frame_length", "pitch_voicing_threshold")


def _pitch_settings(prepare):
  """The PitchSettings of the --pitch* flags checked against the --mel convention, or None."""
  if not FLAGS.pitch:
    return None
  settings = prepare.PitchSettings(
      fmin=FLAGS.pitch_fmin, fmax=FLAGS.pitch_fmax, frame_length=FLAGS.pitch_frame_length,
      voicing_threshold=FLAGS.pitch_voicing_threshold)
  mel_config = prepare.prepare_plan.resolve_mel_config(FLAGS.mel, FLAGS.sample_rate)
  try:
    settings.check(mel_config)
  except ValueError as e:
    given = " ".join(f"--{name}={FLAGS[name].value}" for name in _PITCH_FLAGS)
    common.fail(f"{given} (with --mel={FLAGS.mel}): {e}")
  return settings


def _check_names(prepare):
  """--mel, --symbols, --cleaners (needs the text front end, hence TensorFlow)."""
  if FLAGS.mel not in prepare.MEL_PRESETS:
    common.fail(f"--mel={FLAGS.mel}: unknown mel convention; choose one of "
                f"{', '.join(prepare.MEL_PRESETS)}")
  text = prepare._text_lib()  # pylint: disable=protected-access
  try:
    text.get_symbol_table(FLAGS.symbols)
  except ValueError as e:
    common.fail(f"--symbols={FLAGS.symbols}: {e}")
  for name in FLAGS.cleaners:
    try:
      text.get_cleaner(name)
    except ValueError as e:
      common.fail(f"--cleaners={','.join(FLAGS.cleaners)}: {e}")


def main(argv):
  common.check_no_arguments(argv)
  _check_paths()
  _check_values()
  from tfspeech.data import prepare  # pylint: disable=import-outside-toplevel
  _check_names(prepare)
  pitch = _pitch_settings(prepare)
  from tfspeech import audio  # pylint: disable=import-outside-toplevel
  try:
    report = prepare.prepare_corpus(
        FLAGS.corpus, FLAGS.out, format=FLAGS.format, audio_root=FLAGS.audio_root,
        sample_rate=FLAGS.sample_rate, mel_config=FLAGS.mel, symbols=FLAGS.symbols,
        cleaners=tuple(FLAGS.cleaners), on_unknown=FLAGS.on_unknown,
        validation_fraction=FLAGS.validation_fraction, validation_count=FLAGS.validation_count,
        num_shards=FLAGS.num_shards, seed=FLAGS.seed, workers=FLAGS.workers,
        allow_resample=FLAGS.allow_resample, allow_downmix=FLAGS.allow_downmix,
        trim_silence=FLAGS.trim_silence_db if FLAGS.trim_silence_db is not None else False,
        resume=FLAGS.resume, progress=FLAGS.progress, pitch=pitch or False)
  except audio.AudioError as e:  # Raised only up front: this machine cannot decode the format.
    common.fail(common.error_text(e))
  _print_report(report)


def _print_report(report):
  total = sum(report.audio_seconds.values())
  print(f"prepared {report.num_train} train + {report.num_validation} validation utterances "
        f"({total / 3600:.2f} h of audio) in {report.out_dir}")
  print(f"throughput: {report.throughput:.1f} s of audio per second "
        f"({report.wall_seconds:.1f} s wall; {report.shards_written} shards written, "
        f"{report.shards_resumed} kept from an earlier run)")
  if report.converted:
    print(f"converted {len(report.converted)} entries ({report.num_resampled} resampled, "
          f"{report.num_downmixed} down-mixed to mono); they are listed in "
          f"{report.out_dir}/report.json")
  if report.skipped:
    print(f"skipped {report.num_skipped} entries ({report.skipped_by_reason}); first ones:")
    for entry in report.skipped[:10]:
      print(f"  {entry.id or '-'}: {entry.message}")
    print(f"the full list with reasons is in {report.out_dir}/report.json")
  for warning in report.warnings:
    print(f"WARNING: {warning}")


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
