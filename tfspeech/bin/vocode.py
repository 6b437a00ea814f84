r"""Turns log-mel spectrograms into WAV files with a trained vocoder run (any vocoder model).

  tfspeech-vocode --workdir=runs/vocoder --mels=mels/ --out=wavs/
  tfspeech-vocode --workdir=runs/vocoder --mels=data/ljspeech --split=validation --out=wavs/
  tfspeech-vocode --workdir=runs/vocoder --mels=mels/ --out=wavs/ --control=NAME=VALUE --seed=3

--mels is either a folder of `.npy` files, each `[frames, n_mels]` float32 log-mels
in the vocoder's mel convention (written `<name>.wav`), or a prepared corpus
(tfspeech-prepare, or tfspeech-synthesize --gta output; written `<id>.wav`),
whose dataset.json must name the mel convention the vocoder was trained on.
Prints the number of files, the seconds of audio and the real-time factor.

The vocoder's declared controls (`tfspeech-info --model=M` lists them) are set with
repeated --control=NAME=VALUE. A vocoder that draws noise draws the k-th input's (in file
name, or record, order) from the seed pair (--seed, k), whatever its batch: the same mel
and seed give the audio tfspeech-synthesize --vocoder=... --seed=... writes for text k.
"""

import os
import sys

from absl import flags

from tfspeech.bin import common

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Vocoder training run (tfspeech-train --model=M of any "
                    "vocoder model).")
flags.DEFINE_string("mels", None, "Folder of [frames, n_mels] .npy log-mels, or a prepared "
                    "corpus folder (with dataset.json).")
flags.DEFINE_string("out", None, "Folder for the WAV files (created if needed).")
flags.DEFINE_integer("batch_size", 8, "Spectrograms vocoded together (similar lengths are "
                     "batched together).")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix or 'best' (default: the newest).")
flags.DEFINE_enum("split", "validation", ["train", "validation", "all"],
                  "Which split of a prepared corpus to vocode.")
flags.DEFINE_multi_string("control", [], "A control the vocoder declares, as NAME=VALUE "
                          "(repeatable; tfspeech-info --model=M lists them); unset controls "
                          "take the model's defaults.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision: "
                  "bfloat16 (vocoders that support it; tfspeech-info lists them) is ~2x faster "
                  "on CPUs with AVX512-BF16 or AMX and on Ampere+ GPUs, emulated and slower "
                  "elsewhere; the WAVs are 16-bit either way.")
flags.DEFINE_integer("seed", 0, "Noise seed (vocoders that draw noise): input k uses "
                     "(seed, k).")
flags.mark_flags_as_required(["workdir", "mels", "out"])


def _prepared_items(folder, split, vocoder):
  """(id, mel) for every record of `split` of a prepared corpus, after a convention check."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfspeech.data import dataset, records  # pylint: disable=import-outside-toplevel
  from tfspeech.data.corpus_info import CorpusInfo  # pylint: disable=import-outside-toplevel
  info = CorpusInfo.load(folder, require=("mel_config",))
  vocoder.check_mel_config(info, f"the mels in {folder}")
  splits = dataset.SPLITS if split == "all" else (split,)
  items = []
  for name in splits:
    if not info.count(name):
      continue
    for serialized in tf.data.TFRecordDataset(dataset.shard_files(folder, name)):
      example = records.parse_example(serialized, ("id", "mel"), n_mels=info.n_mels)
      items.append((example["id"].numpy().decode("utf-8"),  # graph-ok: offline tool.
                    example["mel"]))
  if not items:
    raise ValueError(f"--mels={folder}: the {split} split holds no utterances")
  return items


def main(argv):
  common.check_no_arguments(argv)
  common.check_positive(batch_size=FLAGS.batch_size)
  common.check_run_dir("workdir", FLAGS.workdir)
  common.check_checkpoint("checkpoint", FLAGS.workdir, FLAGS.checkpoint)
  common.check_dir("mels", FLAGS.mels, "[frames, n_mels] .npy log-mels or a prepared corpus")
  common.check_out_dir("out", FLAGS.out)
  # The roles come from the registry: any model whose task serves as a vocoder. It imports
  # TensorFlow (5-15 s), so every check above needs none.
  from tfspeech.inference import vocode_lib  # pylint: disable=import-outside-toplevel
  common.check_run_dir("workdir", FLAGS.workdir, models=tuple(vocode_lib.vocoder_models()))
  from tfspeech.inference import serving_runs  # pylint: disable=import-outside-toplevel
  controls, sources = common.check_or_fail(
      serving_runs.resolve_flag_controls, serving_runs.run_model_name(FLAGS.workdir),
      FLAGS.control)

  try:
    vocoder = vocode_lib.load_vocoder(FLAGS.workdir, FLAGS.checkpoint, controls, sources,
                                      FLAGS.precision)
    if os.path.isfile(os.path.join(FLAGS.mels, "dataset.json")):
      items, unreadable = _prepared_items(FLAGS.mels, FLAGS.split, vocoder), []
    else:
      # A corrupt or mis-shaped file fails alone (named below); the good ones are vocoded.
      items, unreadable = vocode_lib.read_npy_mels(FLAGS.mels, vocoder.num_mels)
  except (ValueError, FileNotFoundError) as e:
    common.fail(str(e))

  result = vocode_lib.vocode_items(vocoder, items, FLAGS.out, FLAGS.batch_size, FLAGS.seed)
  seconds, wall = result.audio_seconds, result.wall_seconds
  print(f"wrote {len(result.paths)} WAV files ({seconds:.1f} s of audio at "
        f"{vocoder.sample_rate} Hz) to {FLAGS.out} in {wall:.1f} s (real-time factor "
        f"{wall / max(seconds, 1e-9):.3f}, first batch includes tracing)")
  print(f"vocoder: {FLAGS.workdir} step {vocoder.step}")
  failures = unreadable + result.failures
  for failure in failures:
    print(f"error: {failure.error}", file=sys.stderr)
  if failures:
    print(f"error: {len(failures)} of {len(items) + len(unreadable)} inputs failed (named "
          "above); the others were written", file=sys.stderr)
    sys.exit(1)


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
