r"""Exports trained runs for serving: SavedModel, TFLite or TensorFlow.js.

  tfspeech-export --workdir=runs/tts --vocoder=runs/vocoder --format=saved_model \
      --out=exported/saved_model
  tfspeech-export --workdir=runs/tts --vocoder=runs/vocoder --format=tflite \
      --out=exported/tflite --precision=float16 --control=n_timesteps=10
  tfspeech-export --workdir=runs/tts --vocoder=runs/vocoder --format=tfjs \
      --out=exported/tfjs
  tfspeech-export --workdir=runs/vocoder --format=tflite --out=exported/vocoder
  tfspeech-export --workdir=runs/tts --vocoder=runs/vocoder --format=tfjs --stream \
      --out=exported/tfjs_stream
  tfspeech-export --workdir=runs/diffwave --format=tflite --control=steps=runtime \
      --out=exported/diffwave_schedule

--workdir is a run of any acoustic model (text_to_mel; with --vocoder also mel_to_audio and
the end-to-end text_to_audio) or of any vocoder (mel_to_audio), for every format, with the
same graph names, inputs and outputs in each. The static controls of --workdir's model
(see `tfspeech-info --model=M`) are fixed in the graphs with --control=NAME=VALUE, those of
--vocoder's model with --vocoder_control=NAME=VALUE; the other controls are graph inputs
(a vocoder's named vocoder_NAME, beside its vocoder_noise input when it draws noise), and
values given for them are recorded in metadata.json as the recommended ones. A static
control that allows it may be given as `runtime` (DiffWave: --control=steps=runtime, or
--vocoder_control=steps=runtime for a --vocoder): the graph then takes it as an input
instead, for DiffWave the reverse schedule vocoder_betas float32 [n_betas] (any number of
steps, one per beta; one loop: a TFLite WHILE, TFJS executeAsync) in place of the unrolled
fixed-step graph; --control=betas=B1,B2,... records the recommended schedule (default: the
fast 6-step one). Such graphs cannot be streamed or given --fixed_shapes. The work is done
by tfspeech.export.export_lib.export_workdir. A SavedModel is one folder; TFLite writes
NAME.tflite per graph, TFJS a graph-model folder NAME/ per graph; --stream adds
mel_chunk_to_audio (streaming vocoding: the browser demo then plays the audio chunk by chunk
as it is made); every format writes metadata.json of one layout (symbols, cleaners, sample
rate, controls, inputs and outputs) so an app can drive the files without tfspeech.
--format=tflite --fixed_shapes=tokens=T,frames=F writes graphs with static shapes at batch 1
for LiteRT.js (the demo then offers it). The browser demo serves a TFJS export: `node
export/js/serve_demo.js --model=OUT` (after `npm ci` in export/).

Each step is printed to stderr as it ends (`export: text_to_mel: traced and frozen in 2.4 s`,
`export: text_to_mel: converted to TFLite float32 in 19.8 s (2.9 MB)`); TFJS converts the
graphs in parallel processes, one per core.

--format=tfjs creates the converter's own virtualenv on first use (~3 GB, minutes; see
tfspeech.export.tfjs), or uses $TFSPEECH_TFJS_CONVERTER.
"""

import sys

from absl import flags

from tfspeech.bin import common
from tfspeech.export import export_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run folder of a trained acoustic model or vocoder.")
flags.DEFINE_enum("format", None, export_lib.FORMATS, "Export format.")
flags.DEFINE_string("out", None, "Output folder (must be empty or absent).")
flags.DEFINE_string("vocoder", None, "Run folder of a trained vocoder for --workdir's acoustic "
                    "model: adds mel_to_audio and the end-to-end text_to_audio.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix of --workdir, or 'best' "
                    "(default: the newest).")
flags.DEFINE_multi_string("control", [], "A control of --workdir's model (acoustic model or "
                          "vocoder) as NAME=VALUE (repeatable): static ones are fixed in the "
                          "graphs, the others recorded as recommended inputs (tfspeech-info "
                          "--model=M lists them). NAME=runtime makes a static control that "
                          "allows it an input: --control=steps=runtime exports DiffWave with "
                          "its betas (any step count) a vocoder_betas input instead of "
                          "unrolled steps; --control=betas=B1,B2,... then records the "
                          "recommended betas.")
flags.DEFINE_multi_string("vocoder_control", [], "A control of --vocoder's model as "
                          "NAME=VALUE (repeatable), as --control.")
flags.DEFINE_integer("n_timesteps", None, "Short for --control=n_timesteps=N (e.g. diffusion "
                     "steps unrolled into the graphs).")
flags.DEFINE_enum("precision", "float32", export_lib.PRECISIONS, "Weight precision (tflite/tfjs). "
                  "float16: half-size weights; dynamic_range: 8-bit weights (TFLite: dynamic-"
                  "range quantized kernels; TFJS: uint8 weight quantization).")
flags.DEFINE_bool("select_tf_ops", False, "TFLite: allow TF (Flex) ops for ops without a "
                  "builtin (none of tfspeech's graphs needs them; apps then need the Flex "
                  "delegate).")
flags.DEFINE_bool("stream", False, "Also export mel_chunk_to_audio, the streaming vocoder "
                  "graph (one window of mels with context each side → its chunk's audio; "
                  "metadata.json: vocoder.context_frames): needs --vocoder or a vocoder "
                  "--workdir.")
flags.DEFINE_string("fixed_shapes", None, "TFLite for LiteRT.js: 'tokens=T,frames=F' makes "
                    "every input and output static at batch 1: text ids padded to T, mels, "
                    "noise and audio to F frames (the *_lengths say the real lengths; output "
                    "'clipped' is 1 when an utterance needed more than F frames).")
flags.mark_flags_as_required(["workdir", "format", "out"])


def main(argv):
  common.check_no_arguments(argv)
  common.check_run_dir("workdir", FLAGS.workdir)
  common.check_checkpoint("checkpoint", FLAGS.workdir, FLAGS.checkpoint)
  common.check_out_dir("out", FLAGS.out, must_be_empty=True)
  common.check_or_fail(export_lib.check_options, FLAGS.format, FLAGS.out, FLAGS.precision,
                       FLAGS.select_tf_ops, FLAGS.fixed_shapes)
  if FLAGS.vocoder is not None:
    common.check_run_dir("vocoder", FLAGS.vocoder)
  elif FLAGS.vocoder_control:
    common.fail("--vocoder_control sets controls of --vocoder; pass --vocoder (for a "
                "vocoder --workdir, use --control)")
  common.check_control_short_forms(n_timesteps=FLAGS.n_timesteps)
  # Roles and controls come from the registry: any acoustic model, any vocoder. It imports
  # TensorFlow (5-15 s), so every check above needs none.
  from tfspeech.inference import serving_runs  # pylint: disable=import-outside-toplevel
  from tfspeech.models import serving  # pylint: disable=import-outside-toplevel
  if FLAGS.vocoder is not None:
    common.check_run_dir("vocoder", FLAGS.vocoder,
                         models=tuple(serving_runs.models_with_role(serving.VOCODER)))
  controls = vocoder_controls = None
  model = serving_runs.run_model_name(FLAGS.workdir)
  if (FLAGS.stream and FLAGS.vocoder is None
      and model not in serving_runs.models_with_role(serving.VOCODER)):
    common.fail("--stream adds mel_chunk_to_audio, the streaming vocoder graph: pass "
                "--vocoder=VOCODER_RUN (or export a vocoder --workdir)")
  if FLAGS.control or FLAGS.n_timesteps is not None:
    controls, _ = common.check_or_fail(serving_runs.resolve_flag_controls, model,
                                       FLAGS.control, {"n_timesteps": FLAGS.n_timesteps})
  if FLAGS.vocoder_control:
    vocoder_controls, _ = common.check_or_fail(
        serving_runs.resolve_flag_controls, serving_runs.run_model_name(FLAGS.vocoder),
        FLAGS.vocoder_control, None, "vocoder_control")
  from tfspeech import config as cfg  # pylint: disable=import-outside-toplevel
  from tfspeech.export import progress  # pylint: disable=import-outside-toplevel
  try:
    with progress.reporting(lambda line: print(f"export: {line}", file=sys.stderr,
                                               flush=True)):
      paths = export_lib.export_workdir(
          FLAGS.workdir, FLAGS.format, FLAGS.out, FLAGS.vocoder, FLAGS.checkpoint,
          controls, FLAGS.precision, FLAGS.select_tf_ops, vocoder_controls, FLAGS.stream,
          fixed_shapes=FLAGS.fixed_shapes)
  except (KeyError, ValueError, FileNotFoundError, RuntimeError, cfg.ConfigError) as e:
    common.fail(str(e).strip("'\""))
  for name, path in paths.items():
    print(f"{name}: {path}")


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
