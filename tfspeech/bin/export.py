r"""Exports trained runs for serving: SavedModel, TFLite or TensorFlow.js.

  tfspeech-export --workdir=runs/gradtts --vocoder=runs/hifigan --format=saved_model \
      --out=exported/saved_model
  tfspeech-export --workdir=runs/gradtts --vocoder=runs/hifigan --format=tflite \
      --out=exported/tflite --precision=float16
  tfspeech-export --workdir=runs/gradtts --vocoder=runs/hifigan --format=tfjs \
      --out=exported/tfjs
  tfspeech-export --workdir=runs/hifigan --format=tflite --out=exported/vocoder

--workdir is a Grad-TTS run (text_to_mel; with --vocoder also mel_to_audio and the end-to-end
text_to_audio) or a HiFi-GAN run (mel_to_audio), for every format. The work is done by
tfspeech.export.export_lib.export_workdir. TFLite writes NAME.tflite per graph, TFJS a
graph-model folder NAME/ per graph; both write metadata.json (symbols, cleaners, sample
rate, inputs and outputs) so an app can drive the files without tfspeech. The browser demo
serves a TFJS export: `node export/js/serve_demo.js --model=OUT` (after `npm ci` in export/).

--format=tfjs creates the converter's own virtualenv on first use (~3 GB, minutes; see
tfspeech.export.tfjs), or uses $TFSPEECH_TFJS_CONVERTER.
"""

from absl import flags

from tfspeech.bin import common
from tfspeech.export import export_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run folder of a trained Grad-TTS or HiFi-GAN model.")
flags.DEFINE_enum("format", None, export_lib.FORMATS, "Export format.")
flags.DEFINE_string("out", None, "Output folder (must be empty or absent).")
flags.DEFINE_string("vocoder", None, "Run folder of a trained HiFi-GAN for --workdir's Grad-TTS: "
                    "adds mel_to_audio and the end-to-end text_to_audio.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix of --workdir, or 'best' "
                    "(default: the newest).")
flags.DEFINE_integer("n_timesteps", 10, "Grad-TTS reverse-diffusion steps fixed in the graph.")
flags.DEFINE_enum("precision", "float32", export_lib.PRECISIONS, "Weight precision (tflite/tfjs). "
                  "float16: half-size weights; dynamic_range: 8-bit weights (TFLite: dynamic-"
                  "range quantized kernels; TFJS: uint8 weight quantization).")
flags.DEFINE_bool("select_tf_ops", False, "TFLite: allow TF (Flex) ops for ops without a "
                  "builtin (none of tfspeech's graphs needs them; apps then need the Flex "
                  "delegate).")
flags.mark_flags_as_required(["workdir", "format", "out"])


def main(argv):
  common.check_no_arguments(argv)
  common.check_run_dir("workdir", FLAGS.workdir)
  common.check_checkpoint("checkpoint", FLAGS.workdir, FLAGS.checkpoint)
  if FLAGS.vocoder is not None:
    common.check_run_dir("vocoder", FLAGS.vocoder, models=("hifigan",))
  common.check_out_dir("out", FLAGS.out, must_be_empty=True)
  common.check_or_fail(export_lib.check_options, FLAGS.format, FLAGS.out, FLAGS.n_timesteps,
                       FLAGS.precision, FLAGS.select_tf_ops)
  from tfspeech import config as cfg  # pylint: disable=import-outside-toplevel
  try:
    paths = export_lib.export_workdir(
        FLAGS.workdir, FLAGS.format, FLAGS.out, FLAGS.vocoder, FLAGS.checkpoint,
        FLAGS.n_timesteps, FLAGS.precision, FLAGS.select_tf_ops)
  except (KeyError, ValueError, FileNotFoundError, RuntimeError, cfg.ConfigError) as e:
    common.fail(str(e).strip("'\""))
  for name, path in paths.items():
    print(f"{name}: {path}")


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
