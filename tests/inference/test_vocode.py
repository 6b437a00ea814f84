"""Vocoding a trained HiFi-GAN run: the traced batch function, padding, WAVs, the CLI."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io.wavfile
import tensorflow as tf

from tfspeech import audio as audio_lib
from tfspeech.inference import vocode_lib
from tfspeech.models import hifigan
from tfspeech.models.hifigan.hifigan_serving import HifiGanServing, receptive_field_samples
from tfspeech.models.hifigan.hifigan_task import HifiGanTask
from tfspeech.testing import assert_no_python_ops, op_dtypes
from tfspeech.training import Trainer
from tfspeech.training.checkpoints import Checkpoints
from tfspeech.training.config import RunConfig, write_run_config

HOP = 256


def random_generator(config, seed=0):
  """A generator with O(1) random weights, so its output is far from the tiny initial one."""
  generator = hifigan.HifiGanGenerator(config)
  rng = np.random.default_rng(seed)
  for variable in generator.weights:
    variable.assign(rng.normal(size=variable.shape).astype(np.float32) * 0.3)
  return generator


def random_mels(lengths, seed=0, pad_value=0.0):
  rng = np.random.default_rng(seed)
  longest = max(lengths)
  mels = np.full([len(lengths), longest, 80], pad_value, np.float32)
  for row, length in enumerate(lengths):
    mels[row, :length] = rng.normal(-4.0, 2.0, size=[length, 80])
  return mels


@pytest.fixture(scope="module")
def vocoder_run(tmp_path_factory):
  """A hifigan run directory with one checkpoint of random weights (no training needed)."""
  workdir = str(tmp_path_factory.mktemp("vocoder_run"))
  task = HifiGanTask(HifiGanTask.preset("tiny"))
  config = HifiGanTask.default_train_config("tiny")
  trainer = Trainer(task, config)
  rng = np.random.default_rng(1)
  for variable in trainer.modules["generator"].weights:
    variable.assign(rng.normal(size=variable.shape).astype(np.float32) * 0.3)
  mel_config = audio_lib.MelConfig.hifigan()
  write_run_config(workdir, RunConfig(
      model="hifigan", preset="tiny", model_config=task.config, train=config,
      data_info={"sample_rate": 22050, "hop_length": HOP, "n_mels": 80,
                 "mel_config": dataclasses.asdict(mel_config)}))
  Checkpoints(trainer, workdir).save(5)
  return workdir, trainer.modules["generator"]


def test_receptive_field_bounds_the_influence_of_one_frame():
  for config in (hifigan.tiny(),
                 hifigan.tiny().replace(resblock="1", resblock_kernel_sizes=(3, 5),
                                        resblock_dilation_sizes=((1, 3), (1, 2)))):
    vocoder = vocode_lib.Vocoder.for_serving(HifiGanServing(random_generator(config)))
    radius = receptive_field_samples(config)
    frames, changed_frame = 40, 20
    mels = random_mels([frames])
    bumped = mels.copy()
    bumped[0, changed_frame] += 3.0
    lengths = tf.constant([frames])
    a, _ = vocoder.vocode(tf.constant(mels), lengths)
    b, _ = vocoder.vocode(tf.constant(bumped), lengths)
    changed = np.nonzero(a.numpy()[0] != b.numpy()[0])[0]
    first, last = changed_frame * HOP - radius, (changed_frame + 1) * HOP - 1 + radius
    assert first <= changed.min() and changed.max() <= last, (changed.min(), changed.max(),
                                                               radius)
    # The bound is tight: the change reaches within one frame of it on both sides.
    assert changed.min() < first + HOP and changed.max() > last - HOP, radius


def test_padding_changes_an_item_only_near_its_end():
  config = hifigan.tiny()
  vocoder = vocode_lib.Vocoder.for_serving(HifiGanServing(random_generator(config)))
  radius = receptive_field_samples(config)
  lengths = [20, 33]
  # Junk padding (not silence) so that any leak of the padding shows.
  batch = random_mels(lengths, seed=3)
  batch[0, lengths[0]:] = np.random.default_rng(9).normal(0.0, 5.0, [13, 80])
  audio, audio_lengths = vocoder.vocode(tf.constant(batch), tf.constant(lengths))
  alone, alone_lengths = vocoder.vocode(tf.constant(batch[:1, :lengths[0]]),
                                        tf.constant(lengths[:1]))
  audio, alone = audio.numpy(), alone.numpy()
  np.testing.assert_array_equal(audio_lengths.numpy(), [20 * HOP, 33 * HOP])
  assert alone.shape == (1, 20 * HOP) and int(alone_lengths[0]) == 20 * HOP
  edge = 20 * HOP - radius
  assert edge > 10 * HOP  # The compared region is most of the item.
  scale = np.abs(alone).max()
  assert scale > 1e-3
  np.testing.assert_allclose(audio[0, :edge], alone[0, :edge], atol=1e-5 * scale)
  # Within the receptive field of the padding the junk does leak (the test can tell)...
  assert np.abs(audio[0, edge:20 * HOP] - alone[0, edge:]).max() > 1e-3 * scale
  # ...and past its length the item is silent.
  assert not audio[0, 20 * HOP:].any()
  # The longer item is unaffected by being batched.
  full, _ = vocoder.vocode(tf.constant(batch[1:]), tf.constant(lengths[1:]))
  np.testing.assert_allclose(audio[1], full.numpy()[0], atol=1e-5 * scale)


def test_one_two_and_three_frame_mels_and_empty_items():
  config = hifigan.tiny()
  vocoder = vocode_lib.Vocoder.for_serving(HifiGanServing(random_generator(config)))
  for frames in (1, 2, 3):
    audio, lengths = vocoder.vocode(tf.constant(random_mels([frames], seed=frames)),
                                    tf.constant([frames]))
    assert audio.shape == (1, frames * HOP) and int(lengths[0]) == frames * HOP
    assert np.isfinite(audio.numpy()).all() and np.abs(audio.numpy()).max() > 1e-4
  # Zero-length items in a padded batch are silent; a batch of only empty items (0
  # frames: the transposed convolutions would get an empty input) gives empty audio.
  audio, lengths = vocoder.vocode(tf.constant(random_mels([0, 2, 1])), tf.constant([0, 2, 1]))
  np.testing.assert_array_equal(lengths.numpy(), [0, 2 * HOP, HOP])
  assert not audio.numpy()[0].any() and not audio.numpy()[2, HOP:].any()
  audio, lengths = vocoder.vocode(tf.zeros([2, 0, 80]), tf.constant([0, 0]))
  assert audio.shape == (2, 0) and not lengths.numpy().any()
  assert vocoder.fn.traced.experimental_get_tracing_count() == 1


def test_read_npy_mels_names_each_bad_file(tmp_path):
  good = random_mels([7])[0]
  np.save(tmp_path / "good.npy", good)
  whole = (tmp_path / "good.npy").read_bytes()
  (tmp_path / "truncated.npy").write_bytes(whole[:-100])
  (tmp_path / "empty.npy").write_bytes(b"")
  np.save(tmp_path / "nan.npy", np.full([3, 80], np.nan, np.float32))
  np.save(tmp_path / "zero_frames.npy", np.zeros([0, 80], np.float32))
  items, failures = vocode_lib.read_npy_mels(str(tmp_path), 80)
  assert [name for name, _ in items] == ["good"]
  np.testing.assert_array_equal(items[0][1], good)
  errors = {f.name: f.error for f in failures}
  assert sorted(errors) == ["empty", "nan", "truncated", "zero_frames"]
  for name, error in errors.items():
    assert error.startswith(str(tmp_path / f"{name}.npy") + ": "), error
  assert "not a readable .npy file" in errors["truncated"]
  assert "contains NaN or Inf" in errors["nan"]
  assert "shape (0, 80)" in errors["zero_frames"]


def test_vocode_items_retries_a_failing_batch_item_by_item(tmp_path):
  vocoder = vocode_lib.Vocoder.for_serving(HifiGanServing(random_generator(hifigan.tiny())))
  real = vocoder.vocode

  def vocode(mels, lengths, item_seeds=None):
    if int(tf.reduce_max(lengths)) == 9:  # The batch holding "bad", and "bad" alone.
      raise tf.errors.InvalidArgumentError(None, None, "boom\ntrace")
    return real(mels, lengths, item_seeds)

  vocoder.vocode = vocode
  items = [(name, random_mels([frames])[0]) for name, frames in
           (("a", 2), ("bad", 9), ("b", 1), ("c", 5))]
  result = vocode_lib.vocode_items(vocoder, items, str(tmp_path / "out"), batch_size=2)
  assert [(f.name, f.error) for f in result.failures] == [
      ("bad", "bad: the vocoder failed: InvalidArgumentError: boom")]
  assert sorted(os.path.basename(p) for p in result.paths) == ["a.wav", "b.wav", "c.wav"]
  assert result.audio_seconds == pytest.approx(8 * HOP / 22050)


def test_vocode_is_one_pure_graph_with_unknown_dims():
  vocoder = vocode_lib.Vocoder.for_serving(
      HifiGanServing(hifigan.HifiGanGenerator(hifigan.tiny())))
  assert not vocoder.serving.generator.weight_norm
  concrete = vocoder.fn.traced.get_concrete_function()
  assert_no_python_ops(concrete)
  mels_spec, lengths_spec, seeds_spec = concrete.structured_input_signature[0]
  assert mels_spec.shape.as_list() == [None, None, 80] and lengths_spec.shape.as_list() == [None]
  assert seeds_spec.shape.as_list() == [None, 2]
  for lengths in ([5], [7, 3], [2, 9, 4]):
    vocoder.vocode(tf.constant(random_mels(lengths)), tf.constant(lengths))
  assert vocoder.fn.traced.experimental_get_tracing_count() == 1


def test_load_vocoder_folds_weight_norm_of_the_restored_run(vocoder_run):
  workdir, trained_generator = vocoder_run
  vocoder = vocode_lib.load_vocoder(workdir)
  assert vocoder.step == 0 and vocoder.checkpoint.endswith("ckpt-5")
  assert vocoder.sample_rate == 22050 and vocoder.hop_length == HOP
  assert not vocoder.serving.generator.weight_norm
  mels = random_mels([12])
  want = trained_generator(tf.constant(mels)).numpy()
  got, _ = vocoder.vocode(tf.constant(mels), tf.constant([12]))
  assert np.abs(want).max() > 1e-3  # The restored random weights, not a fresh init.
  np.testing.assert_allclose(got.numpy(), want, atol=1e-5 * np.abs(want).max())
  vocoder.check_mel_config(audio_lib.MelConfig.hifigan())
  with pytest.raises(ValueError, match=r"mel_config.fmax: None in the mels, 8000.0 in vocoder"):
    vocoder.check_mel_config(audio_lib.MelConfig.hifigan(fmax=None))


def test_load_vocoder_in_bfloat16_returns_float32_audio_close_to_float32(vocoder_run):
  workdir, _ = vocoder_run
  exact = vocode_lib.load_vocoder(workdir)
  fast = vocode_lib.load_vocoder(workdir, precision="bfloat16")
  generator = fast.serving.generator
  assert generator.compute_dtype == "bfloat16"
  assert {v.dtype for v in generator.variables} == {"float32"}  # any float32 checkpoint loads
  concrete = fast.fn.traced.get_concrete_function()
  assert_no_python_ops(concrete)
  assert op_dtypes(concrete, ("Conv2D",)) == {"bfloat16"}
  assert op_dtypes(exact.fn.traced.get_concrete_function(), ("Conv2D",)) == {"float32"}
  mels = tf.constant(random_mels([40, 25], seed=3))
  want, want_lengths = exact.vocode(mels, tf.constant([40, 25]))
  got, got_lengths = fast.vocode(mels, tf.constant([40, 25]))
  assert got.dtype == tf.float32 and got_lengths.numpy().tolist() == want_lengths.numpy().tolist()
  error = np.abs(got.numpy() - want.numpy())
  peak = np.abs(want.numpy()).max()
  # bfloat16 keeps 8 significant bits (relative rounding 2^-9 per value): through the tiny
  # generator's 20 convolutions the audio stays within ~1% of its peak (float32: 1e-6).
  assert 0 < error.max() < 0.02 * peak, (error.max(), peak)
  assert np.corrcoef(got.numpy().ravel(), want.numpy().ravel())[0, 1] > 0.999
  assert np.all(got.numpy()[1, 25 * HOP:] == 0)  # zero past the shorter item's length


def test_precisions_are_checked_per_model():
  from tfspeech.models import registry  # pylint: disable=import-outside-toplevel
  from tfspeech.training import precision  # pylint: disable=import-outside-toplevel
  import tfspeech.models.tacotron2  # pylint: disable=import-outside-toplevel,unused-import
  assert precision.task_precisions(HifiGanTask) == ("float32", "bfloat16")
  precision.check_precision(HifiGanTask, "bfloat16")
  with pytest.raises(ValueError, match=r"--precision=bfloat16: model 'tacotron2' runs in "
                                       r"float32 only"):
    precision.check_precision(registry.get("tacotron2"), "bfloat16")
  with pytest.raises(ValueError, match=r"--vocoder_precision=float16: must be one of "
                                       r"float32, bfloat16"):
    precision.check_precision(HifiGanTask, "float16", flag="vocoder_precision")


def test_load_vocoder_rejects_other_runs(tmp_path):
  with pytest.raises(FileNotFoundError, match="not a tfspeech run directory"):
    vocode_lib.load_vocoder(str(tmp_path))


def test_write_wavs_reads_back(tmp_path):
  audio = np.stack([np.linspace(-0.5, 0.5, 1000), np.linspace(0.2, -0.2, 1000)]).astype(
      np.float32)
  paths = vocode_lib.write_wavs(str(tmp_path), ["a", "b"], tf.constant(audio),
                                tf.constant([1000, 600]), 22050)
  assert [os.path.basename(p) for p in paths] == ["a.wav", "b.wav"]
  rate, pcm = scipy.io.wavfile.read(paths[1])
  assert rate == 22050 and pcm.dtype == np.int16 and pcm.shape == (600,)
  np.testing.assert_allclose(pcm / 32768.0, audio[1, :600], atol=1.0 / 32768)


def test_real_time_factor_reports_batch_audio():
  vocoder = vocode_lib.Vocoder.for_serving(
      HifiGanServing(hifigan.HifiGanGenerator(hifigan.tiny())))
  result = vocode_lib.real_time_factor(vocoder, seconds=0.5, batch_size=2, repeats=1)
  assert result["audio_seconds"] == pytest.approx(2 * 43 * HOP / 22050)
  assert result["rtf"] == pytest.approx(result["seconds_per_call"] / result["audio_seconds"])


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "tfspeech.bin.vocode", *args],
                        capture_output=True, text=True, timeout=300,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_cli_help():
  result = run_cli("--help")
  assert result.returncode in (0, 1), result.stderr  # absl exits 1 after printing help.
  for flag in ("--workdir", "--mels", "--out", "--batch_size", "--checkpoint", "--split",
               "--precision"):
    assert f"  {flag}: " in result.stdout, flag


def test_cli_vocodes_npy_files_and_rejects_bad_ones(vocoder_run, tmp_path):
  workdir, _ = vocoder_run
  mels_dir = tmp_path / "mels"
  mels_dir.mkdir()
  for name, frames in (("short", 6), ("long", 11)):
    np.save(mels_dir / f"{name}.npy", random_mels([frames], seed=frames)[0])
  out = tmp_path / "wavs"
  result = run_cli(f"--workdir={workdir}", f"--mels={mels_dir}", f"--out={out}",
                   "--batch_size=2")
  assert result.returncode == 0, result.stderr
  assert "wrote 2 WAV files" in result.stdout
  for name, frames in (("short", 6), ("long", 11)):
    rate, pcm = scipy.io.wavfile.read(out / f"{name}.wav")
    assert rate == 22050 and pcm.shape == (frames * HOP,)

  # Bad files are named and fail alone: the good ones are still written.
  np.save(mels_dir / "transposed.npy", random_mels([9])[0].T)
  whole = (mels_dir / "long.npy").read_bytes()
  (mels_dir / "truncated.npy").write_bytes(whole[:len(whole) // 2])
  (mels_dir / "garbage.npy").write_bytes(b"not numpy at all")
  out = tmp_path / "wavs2"
  result = run_cli(f"--workdir={workdir}", f"--mels={mels_dir}", f"--out={out}")
  assert result.returncode == 1, result.stderr
  assert "wrote 2 WAV files" in result.stdout
  assert "transposed.npy: shape (80, 9), expected [frames, 80]" in result.stderr
  assert "channels-first" in result.stderr
  assert "truncated.npy: not a readable .npy file" in result.stderr
  assert "garbage.npy: not a readable .npy file" in result.stderr
  assert "3 of 5 inputs failed" in result.stderr
  assert sorted(os.listdir(out)) == ["long.wav", "short.wav"]


def test_cli_vocodes_in_bfloat16(vocoder_run, tmp_path):
  workdir, _ = vocoder_run
  mels_dir = tmp_path / "mels"
  mels_dir.mkdir()
  np.save(mels_dir / "a.npy", random_mels([9], seed=9)[0])
  exact, fast = tmp_path / "f32", tmp_path / "bf16"
  for out, precision in ((exact, "float32"), (fast, "bfloat16")):
    result = run_cli(f"--workdir={workdir}", f"--mels={mels_dir}", f"--out={out}",
                     f"--precision={precision}")
    assert result.returncode == 0, result.stderr
  want, got = (scipy.io.wavfile.read(d / "a.wav")[1].astype(np.float64) for d in (exact, fast))
  assert got.shape == want.shape == (9 * HOP,)
  assert 0 < np.abs(got - want).max() < 0.02 * np.abs(want).max()


def test_cli_vocodes_a_prepared_corpus(vocoder_run, tiny_corpus, tmp_path):
  from tfspeech.data.prepare import prepare_corpus
  corpus = tmp_path / "corpus"
  (corpus / "wavs").mkdir(parents=True)
  lines = (tiny_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()[:3]
  (corpus / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
  for line in lines:
    name = line.split("|")[0] + ".wav"
    (corpus / "wavs" / name).write_bytes((tiny_corpus / "wavs" / name).read_bytes())
  prepared = tmp_path / "prepared"
  report = prepare_corpus(corpus, prepared, workers=1, progress=False, num_shards=1,
                          validation_count=1)
  workdir, _ = vocoder_run
  out = tmp_path / "wavs"
  result = run_cli(f"--workdir={workdir}", f"--mels={prepared}", f"--out={out}", "--split=all")
  assert result.returncode == 0, result.stderr
  assert f"wrote {report.num_train + report.num_validation} WAV files" in result.stdout
  info = json.loads((prepared / "dataset.json").read_text(encoding="utf-8"))
  assert info["counts"]["train"] + info["counts"]["validation"] == 3
  for line in lines:
    name = line.split("|")[0] + ".wav"
    source_rate, source = scipy.io.wavfile.read(corpus / "wavs" / name)
    rate, pcm = scipy.io.wavfile.read(out / name)
    # One hop of audio per prepared mel frame (HiFi-GAN framing: samples // hop frames).
    assert rate == source_rate == 22050 and pcm.shape == (source.shape[0] // HOP * HOP,)
