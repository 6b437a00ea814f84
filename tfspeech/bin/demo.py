r"""The main job, end to end: prepare the bundled corpus, train a tiny TTS model, synthesize, export.

  tfspeech-demo --out=demo_out
  tfspeech-demo --out=demo_out --model=M --control=NAME=VALUE

--model is any acoustic model (default in --help); its controls are set as in
tfspeech-synthesize.

Runs from a checkout of the repository (the corpus is tests/data/ljspeech_tiny).
Each stage resumes: running it again continues training where it stopped and
redoes synthesis and export. Ctrl-C (or SIGTERM) while training saves a checkpoint and
ends the demo there. Equivalent to:

  tfspeech-prepare --corpus=tests/data/ljspeech_tiny --out=OUT/data --workers=1
  tfspeech-train --model=M --preset=tiny --data=OUT/data --workdir=OUT/run --max_steps=N
  tfspeech-synthesize --workdir=OUT/run --text_file=... --out=OUT/wavs
  tfspeech-export --workdir=OUT/run --format=saved_model --out=OUT/saved_model
"""

import os
import shutil
import time

from absl import flags
from absl import logging

from tfspeech.bin import common

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "demo_out", "Folder for everything the demo writes.")
flags.DEFINE_string("corpus", os.path.join("tests", "data", "ljspeech_tiny"),
                    "LJSpeech-layout corpus to train on (default: the bundled tiny corpus).")
flags.DEFINE_string("model", "grad_tts", "Acoustic model to train (its tiny preset).")
flags.DEFINE_integer("max_steps", 400, "Training steps of the tiny acoustic model.")
flags.DEFINE_list("texts", ["The quick brown fox jumps over the lazy dog.",
                            "Dr. Smith paid $3.50 on the 2nd of May.",
                            "Speech synthesis runs entirely in TensorFlow graphs."],
                  "Sentences to synthesize (comma-separated).")
flags.DEFINE_multi_string("control", [], "A control of the model as NAME=VALUE (repeatable; "
                          "tfspeech-info --model=M lists them), for synthesis and export.")
flags.DEFINE_integer("n_timesteps", None, "Short for --control=n_timesteps=N (e.g. "
                     "reverse-diffusion steps at synthesis).")
flags.DEFINE_bool("progress", True, "Show progress bars.")


def _stage(name):
  print(f"\n=== {name}", flush=True)
  return time.time()


def _exit_stopped_training(result):
  """A signal stopped training: its checkpoint is written; end the demo without the later
  stages (and without tearing down the traced graphs, see tfspeech-train)."""
  print(f"stopped by {result.stopped_by_signal} at step {result.final_step} of "
        f"{FLAGS.max_steps} (checkpoint: {result.checkpoint}); run the same command again to "
        "continue training, then synthesize and export", flush=True)
  common.exit_now(0)


def main(argv):
  common.check_no_arguments(argv)
  common.check_dir("corpus", FLAGS.corpus, "an LJSpeech-layout corpus (run from the "
                   "repository root for the bundled one)")
  if not os.path.isfile(os.path.join(FLAGS.corpus, "metadata.csv")):
    common.fail(f"--corpus={FLAGS.corpus} has no metadata.csv; run from the repository root "
                "or pass --corpus=DIR of an LJSpeech-layout corpus")
  common.check_out_dir("out", FLAGS.out)
  common.check_positive(max_steps=FLAGS.max_steps)
  if not FLAGS.texts or not all(text.strip() for text in FLAGS.texts):
    common.fail(f"--texts={','.join(FLAGS.texts)}: every sentence must hold text (they are "
                "separated by commas)")
  common.check_model_name(FLAGS.model)
  from tfspeech.inference import serving_runs  # pylint: disable=import-outside-toplevel
  controls, sources = common.check_or_fail(serving_runs.resolve_flag_controls, FLAGS.model,
                                           FLAGS.control, {"n_timesteps": FLAGS.n_timesteps})
  logging.set_verbosity(logging.WARNING)  # Stage lines and progress bars say enough.
  # pylint: disable=import-outside-toplevel
  from tfspeech import training
  from tfspeech.data import prepare
  from tfspeech.export import saved_model
  from tfspeech.inference import synthesize_lib
  from tfspeech.models import registry
  # pylint: enable=import-outside-toplevel
  data_dir = os.path.join(FLAGS.out, "data")
  workdir = os.path.join(FLAGS.out, "run")
  wav_dir = os.path.join(FLAGS.out, "wavs")
  export_dir = os.path.join(FLAGS.out, "saved_model")
  timings = {}

  start = _stage(f"1/4 prepare {FLAGS.corpus} -> {data_dir}")
  report = prepare.prepare_corpus(FLAGS.corpus, data_dir, workers=1, on_unknown="drop",
                                  progress=FLAGS.progress)
  print(f"{report.num_train} train / {report.num_validation} validation utterances, "
        f"{report.num_skipped} skipped")
  timings["prepare"] = time.time() - start

  start = _stage(f"2/4 train {FLAGS.model} (tiny) for {FLAGS.max_steps} steps -> {workdir}")
  try:
    result = training.train(FLAGS.model, "tiny", data_dir=data_dir, workdir=workdir,
                            overrides={"max_steps": FLAGS.max_steps},
                            allow_changes=("max_steps",), progress=FLAGS.progress,
                            tasks=registry.get, on_signal_stop=_exit_stopped_training)
  except training.WorkdirLockedError as e:
    common.fail(f"{e}; wait for it or pass another --out")
  print(f"step {result.final_step}: " + ", ".join(
      f"{k}={float(v):.3f}" for k, v in sorted(result.losses.items())))
  timings["train"] = time.time() - start

  start = _stage(f"3/4 synthesize {len(FLAGS.texts)} sentences -> {wav_dir}")
  loaded = training.load_run(workdir, tasks=registry.get)
  synthesis = synthesize_lib.synthesize_texts(loaded, FLAGS.texts, out_dir=wav_dir,
                                              control_sources=sources, **controls)
  print(f"real-time factor {synthesis.real_time_factor:.3f}, {synthesis.times_real_time:.1f}x "
        "faster than real time (Griffin-Lim vocoder)")
  timings["synthesize"] = time.time() - start

  start = _stage(f"4/4 export SavedModel -> {export_dir}")
  if os.path.isdir(export_dir):
    shutil.rmtree(export_dir)
  saved_model.export_saved_model(export_dir, loaded, controls=controls)
  timings["export"] = time.time() - start

  print("\n=== done in " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
  print(f"prepared data:   {data_dir} (report: {os.path.join(data_dir, 'report.json')})")
  print(f"training run:    {workdir} (tensorboard --logdir={workdir})")
  for item in synthesis.items:
    print(f"wav:             {item.wav_path}  ({item.text!r})")
  print(f"SavedModel:      {export_dir} (metadata.json beside it)")


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
