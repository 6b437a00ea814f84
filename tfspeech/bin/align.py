r"""Forced alignment: when each word and token of a transcript is spoken in a recording.

  tfspeech-align --run=runs/grad_tts --wav=hello.wav --text="Hello, world." --out=aligned/
  tfspeech-align --run=runs/grad_tts --corpus=data/LJSpeech-1.1 --out=aligned/
  tfspeech-align --run=runs/grad_tts --export=exported/tflite --format=tflite

Writes `<out>/<id>.json` per utterance (the layout of `tfspeech-synthesize --timestamps`):
"words" and "tokens" with "start"/"end" seconds and the characters of the transcript they
came from, plus "score" (mean log-likelihood per frame and mel bin along the alignment,
higher is a closer fit; compare scores of one run). The id is the WAV's stem, or
the corpus ID. --corpus is an LJSpeech-layout folder (metadata.csv `ID|text|normalized
text`, wavs/ID.wav); the normalized text is aligned when present.

The run is a Grad-TTS run (its text encoder and the prior its training aligned with);
the audio must be at the run's sample rate. Everything from the samples to the frames per
token (log-mel, encoder, monotonic alignment search) is one TensorFlow graph, the one
--export writes as the `align` graph (SavedModel, TFLite builtins, TFJS) for on-device use;
into a folder holding a tfspeech-export of the same run and format it adds the graph there
(the web demo then aligns recordings too).
"""

import os

from absl import flags

from tfspeech.bin import common

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "Training run (tfspeech-train --workdir) of an acoustic model "
                    "that aligns (its task declares serving_aligns).")
flags.DEFINE_string("wav", None, "One WAV file to align (with --text).")
flags.DEFINE_string("text", None, "The transcript of --wav.")
flags.DEFINE_string("corpus", None, "An LJSpeech-layout folder (metadata.csv, wavs/ID.wav) to "
                    "align instead of --wav.")
flags.DEFINE_string("out", "aligned", "Folder for the <id>.json files (created if needed).")
flags.DEFINE_integer("batch_size", 8, "Utterances aligned together (similar lengths are "
                     "batched together).")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix or 'best' (default: the newest).")
flags.DEFINE_integer("speaker", 0, "Speaker id, for multi-speaker runs.")
flags.DEFINE_string("export", None, "Instead of aligning, write the align graph into this "
                    "folder (empty, or a tfspeech-export of the same run and --format).")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite", "tfjs"],
                  "Format of --export.")
flags.DEFINE_enum("precision", "float32", ["float32", "float16", "dynamic_range"],
                  "Weight precision of a tflite/tfjs --export.")
flags.mark_flags_as_required(["run"])


def _check_inputs():
  """The items to align, from --wav/--text or --corpus; fails on a bad combination."""
  if FLAGS.export:
    if FLAGS.wav or FLAGS.corpus or FLAGS.text is not None:
      common.fail("--export writes the align graph and aligns nothing; drop --wav, --text "
                  "and --corpus")
    return None
  if bool(FLAGS.wav) == bool(FLAGS.corpus):
    common.fail("pass either --wav=FILE with --text=TRANSCRIPT, or --corpus=FOLDER (see --help)")
  if FLAGS.corpus:
    if FLAGS.text is not None:
      common.fail("--text goes with --wav; a --corpus has its transcripts in metadata.csv")
    common.check_dir("corpus", FLAGS.corpus, "an LJSpeech-layout corpus (metadata.csv, wavs/)")
  else:
    common.check_file("wav", FLAGS.wav, "the recording to align")
    if FLAGS.text is None or not FLAGS.text.strip():
      common.fail(f"--text is empty; give the words spoken in {FLAGS.wav}")
  # Only now TensorFlow (through align_lib): flag mistakes cost no start-up.
  from tfspeech.inference import align_lib  # pylint: disable=import-outside-toplevel
  if FLAGS.corpus:
    return common.check_or_fail(align_lib.corpus_items, FLAGS.corpus)
  stem = os.path.splitext(os.path.basename(FLAGS.wav))[0]
  return [align_lib.AlignItem(stem, FLAGS.wav, FLAGS.text)]


def main(argv):
  common.check_no_arguments(argv)
  common.check_positive(batch_size=FLAGS.batch_size)
  common.check_run_dir("run", FLAGS.run)
  common.check_checkpoint("checkpoint", FLAGS.run, FLAGS.checkpoint)
  items = _check_inputs()
  if items is not None:
    common.check_out_dir("out", FLAGS.out)
  # Which models align comes from the registry (importing their packages, so after the
  # cheap checks above): the binary names no model.
  from tfspeech.inference import serving_runs  # pylint: disable=import-outside-toplevel
  common.check_run_dir("run", FLAGS.run, models=tuple(serving_runs.models_that_align()))
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  run = training.load_run(FLAGS.run, FLAGS.checkpoint, tasks=registry.get)
  if items is None:
    from tfspeech.export import align_graph  # pylint: disable=import-outside-toplevel
    paths = common.check_or_fail(align_graph.add_to_export, run, FLAGS.format, FLAGS.export,
                                 FLAGS.precision)
    print(f"wrote the align graph ({FLAGS.format}) to {paths['align']} and "
          f"{paths['metadata']}")
    return
  from tfspeech.inference import align_lib  # pylint: disable=import-outside-toplevel
  aligner = common.check_or_fail(align_lib.Aligner, run, FLAGS.speaker)
  results = common.check_or_fail(
      aligner.align, items, FLAGS.batch_size,
      on_done=lambda result: align_lib.write_alignment(result, FLAGS.out),
      progress=bool(FLAGS.corpus))
  seconds = sum(r.audio_seconds for r in results)
  print(f"aligned {len(results)} utterances ({seconds:.1f} s of audio) into {FLAGS.out}/ "
        f"with {FLAGS.run} step {aligner.step}")
  if len(results) == 1:
    words = " ".join(f"{w.word}[{w.start:.2f}-{w.end:.2f}]" for w in results[0].timestamps.words)
    print(words)


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
