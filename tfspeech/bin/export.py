r"""Exports trained runs for serving: SavedModel, TFLite or TensorFlow.js.

  tfspeech-export --workdir=runs/gradtts --format=saved_model --out=exported/saved_model
  tfspeech-export --workdir=runs/gradtts --vocoder=runs/hifigan --format=tflite \
      --out=exported/tflite --precision=float16
  tfspeech-export --workdir=runs/gradtts --vocoder=runs/hifigan --format=tfjs \
      --out=exported/tfjs
  tfspeech-export --workdir=runs/hifigan --format=tflite --out=exported/vocoder

--workdir is a Grad-TTS run (text_to_mel; with --vocoder also mel_to_audio and the end-to-end
text_to_audio) or a HiFi-GAN run (mel_to_audio). TFLite writes NAME.tflite per graph, TFJS a
graph-model folder NAME/ per graph; both write metadata.json (symbols, cleaners, sample
rate, inputs and outputs) so an app can drive the files without tfspeech. The browser demo
serves a TFJS export: `node export/js/serve_demo.js --model=OUT` (after `npm ci` in export/).

--format=tfjs creates the converter's own virtualenv on first use (~3 GB, minutes; see
tfspeech.export.tfjs), or uses $TFSPEECH_TFJS_CONVERTER.
"""

from absl import app
from absl import flags

from tfspeech.bin import common

FORMATS = ("saved_model", "tflite", "tfjs")
PRECISIONS = ("float32", "float16", "dynamic_range")

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run folder of a trained Grad-TTS or HiFi-GAN model.")
flags.DEFINE_enum("format", None, FORMATS, "Export format.")
flags.DEFINE_string("out", None, "Output folder (must be empty or absent).")
flags.DEFINE_string("vocoder", None, "Run folder of a trained HiFi-GAN for --workdir's Grad-TTS "
                    "(tflite/tfjs): adds mel_to_audio and text_to_audio.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix of --workdir, or 'best' "
                    "(default: the newest).")
flags.DEFINE_integer("n_timesteps", 10, "Grad-TTS reverse-diffusion steps fixed in the graph.")
flags.DEFINE_enum("precision", "float32", PRECISIONS, "Weight precision (tflite/tfjs). "
                  "float16: half-size weights; dynamic_range: 8-bit weights (TFLite: dynamic-"
                  "range quantized kernels; TFJS: uint8 weight quantization).")
flags.DEFINE_bool("select_tf_ops", False, "TFLite: allow TF (Flex) ops for ops without a "
                  "builtin (none of tfspeech's graphs needs them; apps then need the Flex "
                  "delegate).")
flags.mark_flags_as_required(["workdir", "format", "out"])


def _check_flags():
  import os  # pylint: disable=import-outside-toplevel
  if FLAGS.n_timesteps < 1:
    raise ValueError("--n_timesteps must be >= 1")
  if os.path.isdir(FLAGS.out) and os.listdir(FLAGS.out):
    raise ValueError(f"--out={FLAGS.out} is not empty; choose a new folder")
  if FLAGS.format == "saved_model":
    if FLAGS.vocoder:
      raise ValueError("--vocoder is for --format=tflite/tfjs; the SavedModel holds the "
                       "acoustic model only")
    if FLAGS.precision != "float32" or FLAGS.select_tf_ops:
      raise ValueError("--precision and --select_tf_ops apply to --format=tflite/tfjs")
  if FLAGS.format == "tfjs" and FLAGS.select_tf_ops:
    raise ValueError("--select_tf_ops applies to --format=tflite")


def export(workdir, fmt, out, vocoder=None, checkpoint=None, n_timesteps=10,
           precision="float32", select_tf_ops=False) -> dict:
  """The binary's work as a function: returns {name: written path}."""
  from tfspeech import training  # pylint: disable=import-outside-toplevel
  # Register the tasks load_run needs.
  import tfspeech.models.grad_tts  # pylint: disable=import-outside-toplevel,unused-import
  import tfspeech.models.hifigan  # pylint: disable=import-outside-toplevel,unused-import
  from tfspeech.inference import synthesize_lib  # pylint: disable=import-outside-toplevel
  run = training.load_run(workdir, checkpoint)
  if fmt == "saved_model":
    from tfspeech.export import saved_model  # pylint: disable=import-outside-toplevel
    return {"saved_model": saved_model.export_acoustic_saved_model(run, out, n_timesteps)}
  if synthesize_lib.ACOUSTIC_MODULE in run.modules:
    acoustic_run = run
    vocoder_run = training.load_run(vocoder) if vocoder else None
  elif synthesize_lib.VOCODER_MODULE in run.modules:
    if vocoder:
      raise ValueError(f"--workdir={workdir} is already a vocoder run; drop --vocoder")
    acoustic_run, vocoder_run = None, run
  else:
    raise ValueError(f"--workdir={workdir}: run of model {run.config.model!r} has neither a "
                     f"Grad-TTS nor a HiFi-GAN generator module (it has {sorted(run.modules)})")
  if fmt == "tflite":
    from tfspeech.export import tflite  # pylint: disable=import-outside-toplevel
    return tflite.export_run(acoustic_run, vocoder_run, out, n_timesteps, precision,
                             select_tf_ops)
  from tfspeech.export import tfjs  # pylint: disable=import-outside-toplevel
  return tfjs.export_run(acoustic_run, vocoder_run, out, n_timesteps, precision)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from tfspeech import config as cfg  # pylint: disable=import-outside-toplevel
  try:
    _check_flags()
    paths = export(FLAGS.workdir, FLAGS.format, FLAGS.out, FLAGS.vocoder, FLAGS.checkpoint,
                   FLAGS.n_timesteps, FLAGS.precision, FLAGS.select_tf_ops)
  except (KeyError, ValueError, FileNotFoundError, RuntimeError, cfg.ConfigError) as e:
    common.fail(str(e).strip("'\""))
  for name, path in paths.items():
    print(f"{name}: {path}")


def run():
  app.run(main)


if __name__ == "__main__":
  run()
