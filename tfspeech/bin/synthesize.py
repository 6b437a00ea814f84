r"""Synthesizes speech with a trained acoustic model, or ground-truth-aligned mels for vocoders.

  tfspeech-synthesize --workdir=runs/tts --text="Hello there." --out=out/
  tfspeech-synthesize --workdir=runs/tts --text_file=lines.txt --out=out/ \
      --vocoder=runs/vocoder --control=n_timesteps=50 --control=temperature=1.3 \
      --vocoder_control=NAME=VALUE
  tfspeech-synthesize --workdir=runs/tts --gta --data=data/ljspeech --out=data/ljspeech_gta

--workdir is a run of any acoustic model, --vocoder a run of any vocoder. A model's knobs
are its declared controls (`tfspeech-info --model=M` lists them with their defaults): the
acoustic model's as repeated --control=NAME=VALUE, the vocoder's as repeated
--vocoder_control=NAME=VALUE (two flags, because both models may declare a control of the
same name, e.g. diffusion steps); --n_timesteps, --temperature and --length_scale are
kept as short forms of --control for the acoustic controls of those names. --seed seeds
both models' noise: chunk j of text k draws from (seed + j, k), so a text's audio does not
depend on the other texts of the call.

Text mode writes NAME.npy (float32 [frames, n_mels] log-mel) and NAME.wav per text and
prints the real-time factor. A --text_file has one text per line, optionally "NAME|text";
blank lines are skipped. Without --vocoder, audio comes from Griffin-Lim (a preview: a
trained vocoder sounds far better). A text longer than --max_tokens ids is split at
sentence (then clause, word) boundaries and its chunks joined into one WAV. A text that
fails (nothing to say, a model or vocoder error) is named on an "error:" line and the
others are still written (exit status 1); dropped emoji or transliterated text is listed
on "note:" lines. --timestamps also writes NAME.json beside each NAME.wav: when each word
of the text is spoken ({"word", "start", "end", "char_start", "char_end"}, seconds into the
WAV, character offsets into the text) and each id the model read (see
`tfspeech.text.timestamps` for how spaces, punctuation and blanks are attributed).

--stream writes each NAME.wav as its audio is made (the header is valid after every chunk,
so a player can open the file while it grows) and prints each text's time to first audio:
the mel of each text chunk is vocoded --stream_chunk_frames frames at a time (the first
--stream_first_frames), each with the vocoder's receptive field of context, so the WAV
equals the one written without --stream. No NAME.npy or --timestamps in this mode.

--gta rewrites the prepared corpus --data into --out with teacher-forced mels (the model's
ground-truth-aligned mode, e.g. its decoder on the prior aligned to the true mel), same
schema and shard names, audio kept: the data for fine-tuning a vocoder on this acoustic
model's outputs.
"""

import sys

from absl import flags
from absl import logging

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
flags.DEFINE_string("vocoder", None, "Run folder of a trained vocoder (any vocoder model); "
                    "default: Griffin-Lim.")
flags.DEFINE_multi_string("control", [], "A control the acoustic model (--workdir) "
                          "declares, as NAME=VALUE (repeat for several; tfspeech-info "
                          "--model=M lists them); unset controls take the model's defaults.")
flags.DEFINE_multi_string("vocoder_control", [], "A control the --vocoder declares, as "
                          "NAME=VALUE (repeatable; tfspeech-info --model=M lists them; "
                          "separate from --control since both models may use one name).")
# Short forms of --control=NAME=VALUE for controls of these names (default: the model's).
flags.DEFINE_integer("n_timesteps", None, "Short for --control=n_timesteps=N (e.g. "
                     "reverse-diffusion steps).")
flags.DEFINE_float("temperature", None, "Short for --control=temperature=T (e.g. divides "
                   "the starting noise).")
flags.DEFINE_float("length_scale", None, "Short for --control=length_scale=S (multiplies "
                   "durations: > 1 speaks slower).")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision of the "
                  "acoustic model: bfloat16 (models that support it; tfspeech-info lists "
                  "them) is ~2x faster on CPUs with AVX512-BF16 or AMX and on Ampere+ GPUs, "
                  "emulated and slower elsewhere.")
flags.DEFINE_enum("vocoder_precision", "float32", ["float32", "bfloat16"], "Compute precision "
                  "of the --vocoder, as --precision.")
flags.DEFINE_integer("seed", 0, "Noise seed of the acoustic model and the vocoder; text k "
                     "of a call uses (seed, k).")
flags.DEFINE_integer("batch_size", 16, "Texts (or --gta utterances) per model call.")
flags.DEFINE_integer("speaker", 0, "Speaker id (multi-speaker models).")
flags.DEFINE_integer("max_tokens", 400, "Longer texts are split at sentence (then clause, "
                     "word) boundaries into chunks of at most this many ids, synthesized in "
                     "batches and joined: peak memory follows batch_size x max_tokens, not "
                     "the text length.")
flags.DEFINE_bool("timestamps", False, "Also write NAME.json beside each NAME.wav: the start "
                  "and end second and character offsets of every word of the text (and of "
                  "every id the model read), from the model's durations.")
flags.DEFINE_bool("stream", False, "Write each WAV progressively as the vocoder makes it "
                  "(header valid after every chunk) and print the time to first audio; no "
                  ".npy or timestamps.")
flags.DEFINE_integer("stream_chunk_frames", 32, "With --stream: mel frames vocoded per chunk.")
flags.DEFINE_integer("stream_first_frames", 8, "With --stream: mel frames of each text's first "
                     "chunk (smaller: audio starts sooner).")
flags.DEFINE_bool("gta", False, "Write ground-truth-aligned mels of the prepared corpus "
                  "--data instead of synthesizing texts.")
flags.DEFINE_string("data", None, "Prepared corpus (tfspeech-prepare --out) for --gta.")
flags.mark_flags_as_required(["workdir", "out"])
_CONTROL_SHORT_FORMS = ("n_timesteps", "temperature", "length_scale")


def _check_flags():
  if FLAGS.gta:
    if not FLAGS.data:
      raise ValueError("--gta needs --data=PREPARED_DIR (the corpus to align)")
    if FLAGS.text or FLAGS.text_file:
      raise ValueError("--gta reads --data; drop --text/--text_file")
    if FLAGS.timestamps:
      raise ValueError("--timestamps times the words of --text/--text_file; --gta writes "
                       "mels of a corpus: drop one of them")
  elif bool(FLAGS.text) == bool(FLAGS.text_file):
    raise ValueError("pass exactly one of --text or --text_file (or --gta --data=DIR)")
  if FLAGS.batch_size < 1:
    raise ValueError("--batch_size must be >= 1")
  if FLAGS.stream and (FLAGS.gta or FLAGS.timestamps):
    raise ValueError("--stream writes WAVs as they are made; drop --gta/--timestamps or "
                     "--stream")
  if FLAGS.stream_chunk_frames < 1 or FLAGS.stream_first_frames < 1:
    raise ValueError("--stream_chunk_frames and --stream_first_frames must be >= 1")
  if FLAGS.vocoder_control and (FLAGS.gta or FLAGS.vocoder is None):
    raise ValueError("--vocoder_control sets controls of --vocoder, which --gta and "
                     "Griffin-Lim (no --vocoder) do not use; drop it or pass --vocoder")


def main(argv):
  common.check_no_arguments(argv)
  if FLAGS.text is not None and not FLAGS.text.strip():
    common.fail("--text is empty; pass the sentence to speak, e.g. --text='Hello there.'")
  common.check_or_fail(_check_flags)
  common.check_run_dir("workdir", FLAGS.workdir)
  common.check_checkpoint("checkpoint", FLAGS.workdir, FLAGS.checkpoint)
  if FLAGS.text_file is not None:
    common.check_text_file("text_file", FLAGS.text_file)
  if FLAGS.gta:
    common.check_prepared_dir("data", FLAGS.data)
  common.check_out_dir("out", FLAGS.out)
  if FLAGS.vocoder is not None:
    common.check_run_dir("vocoder", FLAGS.vocoder)
  common.check_control_short_forms(**{name: FLAGS[name].value for name in _CONTROL_SHORT_FORMS})
  # Roles and controls come from the registry: any acoustic model, any vocoder. It imports
  # TensorFlow (5-15 s), so every check above needs none.
  from tfspeech.inference import serving_runs  # pylint: disable=import-outside-toplevel
  from tfspeech.models import serving  # pylint: disable=import-outside-toplevel
  common.check_run_dir("workdir", FLAGS.workdir,
                       models=tuple(serving_runs.models_with_role(serving.ACOUSTIC)))
  if FLAGS.vocoder is not None:
    common.check_run_dir("vocoder", FLAGS.vocoder,
                         models=tuple(serving_runs.models_with_role(serving.VOCODER)))
  controls, sources = common.check_or_fail(
      serving_runs.resolve_flag_controls, serving_runs.run_model_name(FLAGS.workdir),
      FLAGS.control, {name: FLAGS[name].value for name in _CONTROL_SHORT_FORMS})
  vocoder_controls, vocoder_sources = None, None
  if FLAGS.vocoder is not None:
    vocoder_controls, vocoder_sources = common.check_or_fail(
        serving_runs.resolve_flag_controls, serving_runs.run_model_name(FLAGS.vocoder),
        FLAGS.vocoder_control, None, "vocoder_control")
  from tfspeech import config as cfg  # pylint: disable=import-outside-toplevel
  from tfspeech import inference  # pylint: disable=import-outside-toplevel
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  # Start-up phases for --alsologtostderr readers (benchmarks/startup.py times from these).
  logging.info("start-up: TensorFlow and tfspeech imported")
  try:
    if FLAGS.vocoder is not None:  # before minutes of work, naming the right flag
      from tfspeech.training import precision  # pylint: disable=import-outside-toplevel
      precision.check_precision(registry.get(serving_runs.run_model_name(FLAGS.vocoder)),
                                FLAGS.vocoder_precision, "vocoder_precision")
    run = training.load_run(FLAGS.workdir, FLAGS.checkpoint, tasks=registry.get,
                            precision=FLAGS.precision)
    logging.info("start-up: run loaded (%s, step %d)", run.checkpoint, run.step)
    if FLAGS.gta:
      result = inference.generate_gta(run, FLAGS.data, FLAGS.out, seed=FLAGS.seed,
                                      batch_size=FLAGS.batch_size, control_sources=sources,
                                      **controls)
      print(f"wrote ground-truth-aligned mels of {result.counts} utterances to "
            f"{result.out_dir} in {result.wall_seconds:.1f} s")
      return
    if FLAGS.text_file:
      names, texts = inference.read_text_file(FLAGS.text_file)
    else:
      names, texts = ["0000"], [FLAGS.text]
    if FLAGS.stream:
      _stream(run, names, texts, controls, sources, vocoder_controls, vocoder_sources)
      return
    result = inference.synthesize_texts(
        run, texts, seed=FLAGS.seed, batch_size=FLAGS.batch_size, out_dir=FLAGS.out,
        vocoder=FLAGS.vocoder, names=names, speaker=FLAGS.speaker,
        max_tokens=FLAGS.max_tokens, control_sources=sources,
        vocoder_controls=vocoder_controls, vocoder_control_sources=vocoder_sources,
        vocoder_precision=FLAGS.vocoder_precision, **controls)
  except (KeyError, ValueError, FileNotFoundError, cfg.ConfigError) as e:
    common.fail(str(e).strip("'\""))
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  failures = list(result.failures)
  for item in result.items:
    chunks = f", {item.num_chunks} chunks" if item.num_chunks > 1 else ""
    print(f"{item.wav_path}  ({item.num_frames} frames{chunks})  {item.text}")
    for note in item.notes():
      print(f"note: {item.name}: {note}", file=sys.stderr)
    if FLAGS.timestamps:
      try:
        print(f"{synthesize_lib.write_timestamps(item)}  ({len(item.timestamps.words)} "
              "words timed)")
      except OSError as e:
        failures.append(synthesize_lib.SynthesisFailure(
            item.name, item.text, f"cannot write its timestamps: {e}"))
  for failure in failures:
    print(f"error: {failure.describe()}", file=sys.stderr)
  print(f"{result.audio_seconds:.2f} s of audio in {result.wall_seconds:.2f} s: real-time "
        f"factor {result.real_time_factor:.3f}, {result.times_real_time:.1f}x faster than real "
        f"time (vocoder: {result.vocoder}; one-off warm-up "
        f"{result.first_call_seconds:.1f} s not counted)")
  if failures:
    print(f"error: {len(failures)} of {len(texts)} texts failed (named above); the "
          "others were written", file=sys.stderr)
    sys.exit(1)


def _stream(run, names, texts, controls, sources, vocoder_controls, vocoder_sources):
  """--stream: each NAME.wav written chunk by chunk; prints the time to first audio."""
  import os  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  from tfspeech import inference  # pylint: disable=import-outside-toplevel
  os.makedirs(FLAGS.out, exist_ok=True)
  sample_rate = int(inference.synthesize_lib.run_facts(run).sample_rate)
  writer, first, start, total = None, None, time.perf_counter(), 0
  pieces = inference.stream_texts(
      run, texts, FLAGS.vocoder, seed=FLAGS.seed, names=names, speaker=FLAGS.speaker,
      max_tokens=FLAGS.max_tokens, chunk_frames=FLAGS.stream_chunk_frames,
      first_chunk_frames=FLAGS.stream_first_frames, control_sources=sources,
      vocoder_controls=vocoder_controls, vocoder_control_sources=vocoder_sources,
      vocoder_precision=FLAGS.vocoder_precision, **controls)

  def close():
    if writer is not None:
      writer.close()
      print(f"{writer.path}  ({writer.samples / sample_rate:.2f} s; first audio after "
            f"{first * 1000:.0f} ms)  {texts[index]}")

  index = -1
  for piece in pieces:
    if piece.index != index:
      if index < 0:  # The clock starts after stream_texts' warm-up (the first trace).
        start = time.perf_counter() - piece.seconds
      close()
      index, first = piece.index, piece.seconds
      writer = inference.StreamingWavWriter(os.path.join(FLAGS.out, names[index] + ".wav"),
                                            sample_rate)
    writer.write(piece.audio)
    total += piece.audio.shape[0]
  close()
  wall = time.perf_counter() - start
  print(f"{total / sample_rate:.2f} s of audio streamed in {wall:.2f} s: real-time factor "
        f"{wall / max(total / sample_rate, 1e-9):.3f} (vocoder: "
        f"{FLAGS.vocoder or 'griffin_lim'}; one-off warm-up not counted)")


def run():
  # Every file is written and closed when main ends: skip TensorFlow's teardown.
  common.run(main, __name__, skip_teardown=True)


if __name__ == "__main__":
  run()
