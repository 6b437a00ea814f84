r"""Synthesizes speech with a trained acoustic model, or ground-truth-aligned mels for vocoders.

  tfspeech-synthesize --workdir=runs/gradtts --text="Hello there." --out=out/
  tfspeech-synthesize --workdir=runs/gradtts --text_file=lines.txt --out=out/ \
      --vocoder=runs/hifigan --n_timesteps=50
  tfspeech-synthesize --workdir=runs/gradtts --gta --data=data/ljspeech --out=data/ljspeech_gta

Text mode writes NAME.npy (float32 [frames, n_mels] log-mel) and NAME.wav per text and
prints the real-time factor. A --text_file has one text per line, optionally "NAME|text";
blank lines are skipped. Without --vocoder, audio comes from Griffin-Lim (a preview: a
trained vocoder sounds far better). A text longer than --max_tokens ids is split at
sentence (then clause, word) boundaries and its chunks joined into one WAV. A text that
fails (nothing to say, a model or vocoder error) is named on an "error:" line and the
others are still written (exit status 1); dropped emoji or transliterated text is listed
on "note:" lines.

--gta rewrites the prepared corpus --data into --out with teacher-forced mels (the model's
decoder run on the prior aligned to the true mel), same schema and shard names, audio kept:
the data for fine-tuning a vocoder on this acoustic model's outputs.
"""

import sys

from absl import flags

from tfspeech.bin import common

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run folder of a trained acoustic model (tfspeech-train "
                    "--workdir).")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix to restore, or 'best' "
                    "(default: the newest in --workdir).")
flags.DEFINE_string("text", None, "One text to synthesize.")
flags.DEFINE_string("text_file", None, "UTF-8 file with one text per line, optionally "
                    "'NAME|text'.")
flags.DEFINE_string("out", None, "Output folder (NAME.wav + NAME.npy; with --gta, the "
                    "rewritten prepared corpus).")
flags.DEFINE_string("vocoder", None, "Run folder of a trained vocoder (e.g. hifigan); "
                    "default: Griffin-Lim.")
flags.DEFINE_integer("n_timesteps", 10, "Reverse-diffusion steps (more: cleaner, slower).")
flags.DEFINE_float("temperature", 1.5, "Divides the starting noise (higher: smoother).")
flags.DEFINE_float("length_scale", 1.0, "Multiplies durations (> 1 speaks slower).")
flags.DEFINE_integer("seed", 0, "Noise seed; text k of a call uses (seed, k).")
flags.DEFINE_integer("batch_size", 16, "Texts (or --gta utterances) per model call.")
flags.DEFINE_integer("speaker", 0, "Speaker id (multi-speaker models).")
flags.DEFINE_integer("max_tokens", 400, "Longer texts are split at sentence (then clause, "
                     "word) boundaries into chunks of at most this many ids, synthesized in "
                     "batches and joined: peak memory follows batch_size x max_tokens, not "
                     "the text length.")
flags.DEFINE_bool("gta", False, "Write ground-truth-aligned mels of the prepared corpus "
                  "--data instead of synthesizing texts.")
flags.DEFINE_string("data", None, "Prepared corpus (tfspeech-prepare --out) for --gta.")
flags.mark_flags_as_required(["workdir", "out"])


def _check_flags():
  if FLAGS.gta:
    if not FLAGS.data:
      raise ValueError("--gta needs --data=PREPARED_DIR (the corpus to align)")
    if FLAGS.text or FLAGS.text_file:
      raise ValueError("--gta reads --data; drop --text/--text_file")
  elif bool(FLAGS.text) == bool(FLAGS.text_file):
    raise ValueError("pass exactly one of --text or --text_file (or --gta --data=DIR)")
  if FLAGS.n_timesteps < 1 or FLAGS.batch_size < 1:
    raise ValueError("--n_timesteps and --batch_size must be >= 1")
  if FLAGS.temperature <= 0 or FLAGS.length_scale <= 0:
    raise ValueError("--temperature and --length_scale must be > 0")


def main(argv):
  common.check_no_arguments(argv)
  if FLAGS.text is not None and not FLAGS.text.strip():
    common.fail("--text is empty; pass the sentence to speak, e.g. --text='Hello there.'")
  common.check_or_fail(_check_flags)
  common.check_run_dir("workdir", FLAGS.workdir)
  common.check_checkpoint("checkpoint", FLAGS.workdir, FLAGS.checkpoint)
  if FLAGS.vocoder is not None:
    common.check_run_dir("vocoder", FLAGS.vocoder, models=("hifigan",))
  if FLAGS.text_file is not None:
    common.check_text_file("text_file", FLAGS.text_file)
  if FLAGS.gta:
    common.check_prepared_dir("data", FLAGS.data)
  common.check_out_dir("out", FLAGS.out)
  from tfspeech import config as cfg  # pylint: disable=import-outside-toplevel
  from tfspeech import inference  # pylint: disable=import-outside-toplevel
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  # Registers "grad_tts" until the registry imports it on demand.
  import tfspeech.models.grad_tts  # pylint: disable=import-outside-toplevel,unused-import
  try:
    run = training.load_run(FLAGS.workdir, FLAGS.checkpoint)
    if FLAGS.gta:
      result = inference.generate_gta(run, FLAGS.data, FLAGS.out,
                                      n_timesteps=FLAGS.n_timesteps,
                                      temperature=FLAGS.temperature, seed=FLAGS.seed,
                                      batch_size=FLAGS.batch_size)
      print(f"wrote ground-truth-aligned mels of {result.counts} utterances to "
            f"{result.out_dir} in {result.wall_seconds:.1f} s")
      return
    if FLAGS.text_file:
      names, texts = inference.read_text_file(FLAGS.text_file)
    else:
      names, texts = ["0000"], [FLAGS.text]
    result = inference.synthesize_texts(
        run, texts, n_timesteps=FLAGS.n_timesteps, temperature=FLAGS.temperature,
        length_scale=FLAGS.length_scale, seed=FLAGS.seed, batch_size=FLAGS.batch_size,
        out_dir=FLAGS.out, vocoder=FLAGS.vocoder, names=names, speaker=FLAGS.speaker,
        max_tokens=FLAGS.max_tokens)
  except (KeyError, ValueError, FileNotFoundError, cfg.ConfigError) as e:
    common.fail(str(e).strip("'\""))
  for item in result.items:
    chunks = f", {item.num_chunks} chunks" if item.num_chunks > 1 else ""
    print(f"{item.wav_path}  ({item.num_frames} frames{chunks})  {item.text}")
    for note in item.notes():
      print(f"note: {item.name}: {note}", file=sys.stderr)
  for failure in result.failures:
    print(f"error: {failure.describe()}", file=sys.stderr)
  print(f"{result.audio_seconds:.2f} s of audio in {result.wall_seconds:.2f} s: real-time "
        f"factor {result.real_time_factor:.3f}, {result.times_real_time:.1f}x faster than real "
        f"time (vocoder: {result.vocoder}; one-off warm-up "
        f"{result.first_call_seconds:.1f} s not counted)")
  if result.failures:
    print(f"error: {len(result.failures)} of {len(texts)} texts failed (named above); the "
          "others were written", file=sys.stderr)
    sys.exit(1)


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
