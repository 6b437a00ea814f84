r"""Converts a speech corpus once into sharded TFRecords for training.

  tfspeech-prepare --corpus=LJSpeech-1.1 --out=data/ljspeech
  tfspeech-prepare --corpus=filelists/train.txt --format=filelist --out=data/mine

Writes train/validation shards, dataset.json (conventions: sample rate, mel
config, symbol table, cleaners), stats.json (mel normalization statistics) and
report.json, which lists every skipped entry with its reason. Bad entries never
abort the run; re-running after an interruption finishes only what is missing.
"""

from absl import app
from absl import flags

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
flags.DEFINE_integer("workers", None, "Worker processes (default: all cores, or 1 = in-process "
                     "for corpora under 256 entries, where worker start-up costs more).")
flags.DEFINE_bool("allow_resample", True, "Resample audio at another rate (else skip it).")
flags.DEFINE_bool("allow_downmix", True, "Average multi-channel audio to mono (else skip it).")
flags.DEFINE_float("trim_silence_db", None, "Trim leading/trailing silence quieter than this many "
                   "dB below the peak (e.g. 60); default: no trimming.")
flags.DEFINE_bool("resume", True, "Keep shards finished by an earlier, interrupted run.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.mark_flags_as_required(["corpus", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from tfspeech.data import prepare  # pylint: disable=import-outside-toplevel
  report = prepare.prepare_corpus(
      FLAGS.corpus, FLAGS.out, format=FLAGS.format, audio_root=FLAGS.audio_root,
      sample_rate=FLAGS.sample_rate, mel_config=FLAGS.mel, symbols=FLAGS.symbols,
      cleaners=tuple(FLAGS.cleaners), on_unknown=FLAGS.on_unknown,
      validation_fraction=FLAGS.validation_fraction, validation_count=FLAGS.validation_count,
      num_shards=FLAGS.num_shards, seed=FLAGS.seed, workers=FLAGS.workers,
      allow_resample=FLAGS.allow_resample, allow_downmix=FLAGS.allow_downmix,
      trim_silence=FLAGS.trim_silence_db if FLAGS.trim_silence_db is not None else False,
      resume=FLAGS.resume, progress=FLAGS.progress)
  _print_report(report)


def _print_report(report):
  total = sum(report.audio_seconds.values())
  print(f"prepared {report.num_train} train + {report.num_validation} validation utterances "
        f"({total / 3600:.2f} h of audio) in {report.out_dir}")
  print(f"throughput: {report.throughput:.1f} s of audio per second "
        f"({report.wall_seconds:.1f} s wall; {report.shards_written} shards written, "
        f"{report.shards_resumed} kept from an earlier run)")
  if report.skipped:
    print(f"skipped {report.num_skipped} entries ({report.skipped_by_reason}); first ones:")
    for entry in report.skipped[:10]:
      print(f"  {entry.id or '-'}: {entry.message}")
    print(f"the full list with reasons is in {report.out_dir}/report.json")


def run():
  app.run(main)


if __name__ == "__main__":
  run()
