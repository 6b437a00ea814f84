"""Models defined only here run through every binary and export format.

A tiny acoustic model (embedding → per-token frames → dense, with its own controls and noise
channels), a tiny vocoder (one dense layer per frame) and a tiny noisy vocoder (that dense
layer plus `noise_scale` x noise, with a static control of the same name as one of the
acoustic model's) implement the two serving interfaces of `tfspeech.models.serving` and are
registered by this file alone: nothing in tfspeech/inference, export/ or the binaries
knows them. The binaries run in subprocesses
that import this file first (that registers the models), then run the binary's entry point.
"""

import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import scipy.io.wavfile
import tensorflow as tf

from tfspeech import audio, testing, text
from tfspeech.export import inference_graphs, tflite, tfjs
from tfspeech.inference import synthesize_lib, vocode_lib
from tfspeech.models import registry, serving
from tfspeech.ops import alignment
from tfspeech.ops.sequence import sequence_mask

ACOUSTIC = "test_tiny_tts"
VOCODER = "test_tiny_vocoder"
NOISY = "test_noisy_vocoder"
HOP = 256
N_MELS = 80
NOISE_CHANNELS = 3  # not n_mels: the exporters must take the model's word for it
TOL = 1e-4  # float32 TF vs TFLite / TFJS, relative to the largest reference value


@dataclasses.dataclass(frozen=True)
class TinyTTSConfig:
  n_vocab: int = 65  # english_characters + blank
  hidden: int = 8


@dataclasses.dataclass(frozen=True)
class TinyVocoderConfig:
  hop_length: int = HOP


def _frames_per_token(pace):
  """Frames each real token gets: ceil(2 * pace) (so pace=1.5 gives 3)."""
  return tf.cast(tf.math.ceil(2.0 * tf.cast(pace, tf.float32)), tf.int32)


class TinyTTSNet(keras.Model):
  """ids → embedding; [hidden + noise] → mel through `layers` dense steps."""

  def __init__(self, config, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.embedding = keras.layers.Embedding(config.n_vocab, config.hidden, name="embedding")
    self.mix = keras.layers.Dense(config.hidden, activation="tanh", name="mix")
    self.out = keras.layers.Dense(N_MELS, name="out")
    self.embedding.build((None, None))
    self.mix.build((None, None, config.hidden + NOISE_CHANNELS))
    self.out.build((None, None, config.hidden))
    self.built = True


class TinyTTSServing(serving.AcousticModel):
  controls = (
      serving.Control("pace", "float32", 1.0, "frames per token / 2", exclusive_minimum=0.0),
      serving.Control("layers", "int32", 1, "mixing steps, fixed at export", static=True,
                      minimum=1),
  )
  n_mels = N_MELS
  noise_channels = NOISE_CHANNELS

  def __init__(self, net):
    self.net = net

  @property
  def weights(self):
    return list(self.net.weights)

  def _durations(self, text_ids, text_lengths, pace):
    mask = tf.cast(sequence_mask(text_lengths, tf.shape(text_ids)[1]), tf.int32)
    return mask * _frames_per_token(pace)

  def frames_bound(self, text_ids, text_lengths, speaker=None, pace=1.0, layers=1):
    del speaker, layers
    return tf.reduce_max(tf.reduce_sum(self._durations(text_ids, text_lengths, pace), axis=1))

  def synthesize(self, text_ids, text_lengths, noise, speaker=None, pace=1.0, layers=1):
    del speaker
    durations = self._durations(text_ids, text_lengths, pace)
    mel_lengths = tf.reduce_sum(durations, axis=1)
    frames = tf.reduce_max(mel_lengths)
    path = alignment.durations_to_path(durations, frames)  # [batch, tokens, frames]
    hidden = tf.linalg.matmul(path, self.net.embedding(text_ids), transpose_a=True)
    noise = serving.cyclic_frames(noise, frames)
    for _ in range(int(layers)):  # static: unrolled
      hidden = self.net.mix(tf.concat([hidden, noise], axis=-1))
    mask = tf.sequence_mask(mel_lengths, frames, tf.float32)[:, :, None]
    return {"mel": self.net.out(hidden) * mask, "mel_lengths": mel_lengths,
            "durations": durations}


class TinyVocoderServing(serving.Vocoder):
  n_mels = N_MELS
  hop_length = HOP
  receptive_field = 0

  def __init__(self, net, data_info):
    self.net = net
    self.sample_rate = int(data_info["sample_rate"])
    self.mel_config = audio.MelConfig(**data_info["mel_config"])
    self.mel_pad_value = float(audio.log_compress(tf.zeros([]), self.mel_config))

  @property
  def weights(self):
    return list(self.net.weights)

  def vocode(self, mel, mel_lengths):
    frames = self.net(mel)  # [batch, frames, hop]
    audio_out = tf.reshape(frames, [tf.shape(mel)[0], -1])
    audio_lengths = mel_lengths * HOP
    valid = tf.sequence_mask(audio_lengths, tf.shape(audio_out)[1], tf.float32)
    return {"audio": audio_out * valid, "audio_lengths": audio_lengths}


class NoisyVocoderServing(TinyVocoderServing):
  """audio = layers x tanh(dense(mel)) + noise_scale x noise (one noise channel per sample)."""
  controls = (
      serving.Control("noise_scale", "float32", 0.5, "noise added per sample", minimum=0.0),
      # The acoustic model has a `layers` too: the two must not share one namespace.
      serving.Control("layers", "int32", 1, "gain, fixed at export", static=True, minimum=1),
  )
  noise_channels = 1

  def vocode(self, mel, mel_lengths, noise=None, noise_scale=0.5, layers=1):
    clean = super().vocode(mel, mel_lengths)
    steps = self.noise_length(tf.shape(mel)[1])
    audio_out = clean["audio"] * float(layers) + noise_scale * serving.cyclic_frames(
        noise, steps)[:, :, 0]
    valid = tf.sequence_mask(clean["audio_lengths"], steps, tf.float32)
    return {"audio": audio_out * valid, "audio_lengths": clean["audio_lengths"]}


@registry.register(ACOUSTIC, overwrite=True)
class TinyTTSTask(registry.Task):
  config_class = TinyTTSConfig
  presets = {"tiny": TinyTTSConfig()}
  serving_role = "acoustic"
  serving_controls = TinyTTSServing.controls

  def build(self):
    return {"net": TinyTTSNet(self.config, name="net")}

  def serving(self, modules, data_info):
    del data_info
    return TinyTTSServing(modules["net"])


@registry.register(VOCODER, overwrite=True)
class TinyVocoderTask(registry.Task):
  config_class = TinyVocoderConfig
  presets = {"tiny": TinyVocoderConfig()}
  serving_role = "vocoder"

  def build(self):
    net = keras.layers.Dense(self.config.hop_length, activation="tanh", name="net")
    net.build((None, None, N_MELS))
    return {"net": net}

  def serving(self, modules, data_info):
    return TinyVocoderServing(modules["net"], data_info)


@registry.register(NOISY, overwrite=True)
class NoisyVocoderTask(TinyVocoderTask):
  serving_controls = NoisyVocoderServing.controls

  def serving(self, modules, data_info):
    return NoisyVocoderServing(modules["net"], data_info)


def data_info() -> dict:
  return {"sample_rate": 22050, "hop_length": HOP, "n_mels": N_MELS,
          "mel_config": dataclasses.asdict(audio.MelConfig.hifigan()),
          "mel_pad_value": float(np.log(1e-5)), "symbols": text.english_characters().to_dict(),
          "cleaners": ["english_cleaners"], "arpabet": False, "add_blank": True,
          "blank_id": 64}


def make_run(model, seed):
  tf.keras.utils.set_random_seed(seed)
  task = registry.get(model)(registry.get(model).presets["tiny"])
  modules = task.build_modules()
  rng = np.random.default_rng(seed)
  for variable in (v for module in modules.values() for v in module.variables):
    variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))  # biases too
  return inference_graphs.in_memory_run(model, "tiny", modules, data_info())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, run_saver):
  """In-memory runs and their saved workdirs."""
  root = tmp_path_factory.mktemp("custom_runs")
  acoustic, vocoder, noisy = make_run(ACOUSTIC, 1), make_run(VOCODER, 2), make_run(NOISY, 3)
  return {"acoustic": acoustic, "vocoder": vocoder, "noisy": noisy,
          "acoustic_dir": run_saver(acoustic, str(root / "tts")),
          "vocoder_dir": run_saver(vocoder, str(root / "voc")),
          "noisy_dir": run_saver(noisy, str(root / "noisy"))}


def run_binary(binary, *args):
  """`tfspeech-BINARY ARGS` in a subprocess that registers this file's models first."""
  here = os.path.dirname(os.path.abspath(__file__))
  module = os.path.splitext(os.path.basename(__file__))[0]
  code = (f"import sys; sys.path.insert(0, {here!r}); import {module}; "
          f"from tfspeech.bin import {binary} as b; b.run()")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                        timeout=600, env=env)


def run_binaries(*calls):
  """`run_binary(*call)` for each call, all at once: [result] in order. Each is mostly a
  single-threaded Python + TF start-up, and the suite's host has 2 cores."""
  with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
    return list(pool.map(lambda call: run_binary(*call), calls))


def encoded(run, texts):
  front_end = synthesize_lib.text_front_end(run)
  return synthesize_lib.pad_batch([front_end.encode(t) for t in texts],
                                  front_end.symbols.pad_id)


def reference(runs, ids, lengths, noise, pace, layers, vocoder_noise=None, noise_scale=0.5,
              vocoder_layers=1):
  """The serving objects themselves (eager), on the same inputs: mel, lengths, audio.

  With `vocoder_noise`, the noisy vocoder (its controls `noise_scale`, `vocoder_layers`).
  """
  acoustic = synthesize_lib.acoustic_serving(runs["acoustic"])
  out = acoustic.synthesize(tf.constant(ids), tf.constant(lengths), tf.constant(noise),
                            pace=pace, layers=layers)
  if vocoder_noise is None:
    vocoder = runs["vocoder"].task.serving(runs["vocoder"].modules, data_info())
    sound = vocoder.vocode(out["mel"], out["mel_lengths"])
  else:
    vocoder = runs["noisy"].task.serving(runs["noisy"].modules, data_info())
    sound = vocoder.vocode(out["mel"], out["mel_lengths"], tf.constant(vocoder_noise),
                           noise_scale=noise_scale, layers=vocoder_layers)
  return {key: value.numpy() for key, value in dict(out, **sound).items()}


def relative_error(actual, expected):
  return float(np.max(np.abs(np.asarray(actual) - expected)) / max(np.max(np.abs(expected)),
                                                                   1e-12))


def test_serving_objects_follow_the_interface(runs):
  acoustic = synthesize_lib.acoustic_serving(runs["acoustic"])
  assert isinstance(acoustic, serving.AcousticModel) and not acoustic.has_ground_truth_aligned
  ids, lengths = encoded(runs["acoustic"], ["Hi.", "Longer text."])
  noise = np.random.default_rng(0).standard_normal([2, 5, NOISE_CHANNELS]).astype(np.float32)
  out = reference(runs, ids, lengths, noise, pace=1.5, layers=2)
  np.testing.assert_array_equal(out["mel_lengths"], 3 * lengths)
  np.testing.assert_array_equal(out["durations"].sum(axis=1), out["mel_lengths"])
  assert not np.any(out["mel"][0, 3 * lengths[0]:])
  assert not np.any(out["audio"][0, 3 * lengths[0] * HOP:]) and np.abs(out["audio"]).max() > 0


def test_synthesize_and_vocode_binaries_run_the_test_models(runs, tmp_path):
  out = tmp_path / "out"
  # The calls that do not read `out` run beside the one that writes it.
  result, bad, info = run_binaries(
      ("synthesize", f"--workdir={runs['acoustic_dir']}", "--text=Hello there.", f"--out={out}",
       f"--vocoder={runs['vocoder_dir']}", "--control=pace=1.5", "--control=layers=2"),
      ("synthesize", f"--workdir={runs['acoustic_dir']}", "--text=Hi.",
       f"--out={tmp_path / 'bad'}", "--control=temperature=1"),
      ("info", f"--model={ACOUSTIC}"))
  assert result.returncode == 0, result.stderr
  ids, _ = encoded(runs["acoustic"], ["Hello there."])
  mel = np.load(out / "0000.npy")
  assert mel.shape == (3 * ids.shape[1], N_MELS)
  rate, wav = scipy.io.wavfile.read(out / "0000.wav")
  assert rate == 22050 and wav.shape == (mel.shape[0] * HOP,) and np.abs(wav).max() > 0

  # An unknown control is one error line that lists the model's own controls.
  assert bad.returncode == 2 and "Traceback" not in bad.stderr
  errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "unknown control temperature" in errors[0], bad.stderr
  assert "pace (float32, default 1.0)" in errors[0] and "layers" in errors[0]
  # The test vocoder is accepted as --vocoder and as a vocode --workdir; the acoustic one
  # is not a vocoder.
  wrong, vocoded = run_binaries(
      ("vocode", f"--workdir={runs['acoustic_dir']}", f"--mels={out}", f"--out={tmp_path / 'w'}"),
      ("vocode", f"--workdir={runs['vocoder_dir']}", f"--mels={out}",
       f"--out={tmp_path / 'vocoded'}"))
  assert wrong.returncode == 2 and f"run of model '{ACOUSTIC}'" in wrong.stderr
  assert VOCODER in wrong.stderr

  assert vocoded.returncode == 0, vocoded.stderr
  _, again = scipy.io.wavfile.read(tmp_path / "vocoded" / "0000.wav")
  np.testing.assert_array_equal(again, wav)

  assert info.returncode == 0, info.stderr
  assert "serves as: acoustic" in info.stdout and "pace (float32" in info.stdout
  assert "training precisions (--override=mixed_precision=...): none\n" in info.stdout


def noisy_vocoder(runs, **controls):
  return vocode_lib.Vocoder.for_serving(
      runs["noisy"].task.serving(runs["noisy"].modules, data_info()), controls)


def test_a_noisy_vocoder_in_process_is_seeded_per_item_and_follows_its_controls(runs):
  mels = np.random.default_rng(3).normal(-4.0, 1.0, [2, 7, N_MELS]).astype(np.float32)
  lengths, seeds = np.array([7, 4], np.int32), np.array([[3, 0], [3, 1]], np.int32)
  vocoder = noisy_vocoder(runs, noise_scale=0.5, layers=2)
  batch, batch_lengths = vocoder.vocode(mels, lengths, seeds)
  np.testing.assert_array_equal(batch_lengths, lengths * HOP)
  assert not np.any(batch[1, 4 * HOP:])
  # An item alone (shorter padding, shorter noise) equals the same item in a batch.
  alone, _ = vocoder.vocode(mels[1:, :4], lengths[1:], seeds[1:])
  np.testing.assert_allclose(batch[1, :4 * HOP], alone[0], atol=1e-5)
  # The seed and the dynamic control change the audio; noise_scale=0 leaves the clean part.
  reseeded, _ = vocoder.vocode(mels, lengths, seeds + 1)
  assert relative_error(reseeded.numpy(), batch.numpy()) > 0.05
  clean = noisy_vocoder(runs, noise_scale=0.0, layers=2).vocode(mels, lengths, seeds)[0]
  plain = make_vocoder_fn_free_reference(runs, mels, lengths)
  np.testing.assert_allclose(clean, 2 * plain, atol=1e-5)
  assert relative_error(batch.numpy(), clean.numpy()) > 0.05
  with pytest.raises(ValueError, match="noise_scale=-1"):
    noisy_vocoder(runs, noise_scale=-1)


def make_vocoder_fn_free_reference(runs, mels, lengths):
  """The noisy vocoder's clean part (its dense layer, masked), eager."""
  vocoder = runs["noisy"].task.serving(runs["noisy"].modules, data_info())
  return TinyVocoderServing.vocode(vocoder, tf.constant(mels), tf.constant(lengths))["audio"]


def test_synthesize_and_vocode_binaries_drive_a_vocoder_with_controls_and_noise(runs, tmp_path):
  texts = tmp_path / "texts.txt"
  texts.write_text("a|Hello there.\nb|A second, longer sentence.\n", encoding="utf-8")
  out = tmp_path / "out"
  # The call that does not read `out` runs beside the one that writes it.
  result, bad = run_binaries(
      ("synthesize", f"--workdir={runs['acoustic_dir']}", f"--text_file={texts}",
       f"--out={out}", f"--vocoder={runs['noisy_dir']}", "--control=pace=1.5",
       "--control=layers=2", "--vocoder_control=noise_scale=0.3", "--vocoder_control=layers=2",
       "--seed=4"),
      ("synthesize", f"--workdir={runs['acoustic_dir']}", "--text=Hi.",
       f"--out={tmp_path / 'bad'}", f"--vocoder={runs['noisy_dir']}",
       "--vocoder_control=pace=1"))
  assert result.returncode == 0, result.stderr
  wavs = {name: scipy.io.wavfile.read(out / f"{name}.wav")[1] for name in "ab"}

  vocode_flags = {"same": ("--control=noise_scale=0.3", "--control=layers=2", "--seed=4"),
                  "reseeded": ("--control=noise_scale=0.3", "--control=layers=2", "--seed=5"),
                  "quiet": ("--control=noise_scale=0", "--control=layers=2", "--seed=4"),
                  "negative": ("--control=noise_scale=-2",)}
  done = dict(zip(vocode_flags, run_binaries(*[
      ("vocode", f"--workdir={runs['noisy_dir']}", f"--mels={out}",
       f"--out={tmp_path / ('vocoded_' + name)}", *flags)
      for name, flags in vocode_flags.items()])))

  def vocoded(name):
    assert done[name].returncode == 0, done[name].stderr
    return {n: scipy.io.wavfile.read(tmp_path / f"vocoded_{name}" / f"{n}.wav")[1] for n in "ab"}

  def lsb_apart(x, y):
    return int(np.abs(x.astype(np.int32) - y).max())

  # tfspeech-vocode batches both mels; synthesize vocoded each alone: same audio for the
  # same controls and seed (up to 16-bit rounding of float rounding).
  same = vocoded("same")
  assert all(lsb_apart(same[n], wavs[n]) <= 1 for n in "ab")
  reseeded, quiet = vocoded("reseeded"), vocoded("quiet")
  assert all(lsb_apart(reseeded[n], wavs[n]) > 100 for n in "ab")
  assert all(lsb_apart(quiet[n], wavs[n]) > 100 for n in "ab")

  # Vocoder controls are --vocoder_control's: checked against the vocoder's own list.
  errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
  assert bad.returncode == 2 and len(errors) == 1, bad.stderr
  assert "unknown control pace" in errors[0] and "noise_scale (float32" in errors[0]
  negative = done["negative"]
  assert negative.returncode == 2 and "--control=noise_scale=-2: must be >= 0.0" in \
      negative.stderr, negative.stderr


def test_export_fixes_a_vocoder_runs_static_controls_with_control(runs, tmp_path):
  out = tmp_path / "vocoder_only"
  result = run_binary("export", f"--workdir={runs['noisy_dir']}", "--format=saved_model",
                      f"--out={out}", "--control=layers=3")
  assert result.returncode == 0, result.stderr
  # Each step is printed as it ends (an export of a big model takes minutes).
  steps = [line for line in result.stderr.splitlines() if line.startswith("export: ")]
  assert [line.split(" in ")[0] for line in steps] == [
      "export: mel_to_audio: traced", "export: mel_to_audio_seeded: traced",
      "export: SavedModel written"], result.stderr
  assert all(line.endswith(" s") for line in steps), steps
  metadata = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
  assert sorted(metadata["graphs"]) == ["mel_to_audio"] and metadata["controls"] == {}
  assert metadata["vocoder_controls"]["layers"]["value"] == 3
  assert metadata["signatures"]["mel_to_audio_seeded"]["inputs"]["noise_seeds"]["shape"] == [
      None, 2]
  loaded = tf.saved_model.load(str(out))
  mels = np.random.default_rng(4).normal(-4.0, 1.0, [1, 5, N_MELS]).astype(np.float32)
  noise = np.zeros([1, 1, 1], np.float32)
  got = loaded.signatures["mel_to_audio"](mel=tf.constant(mels), mel_lengths=tf.constant([5]),
                                          vocoder_noise=tf.constant(noise),
                                          vocoder_noise_scale=tf.constant(0.5))["audio"]
  plain = make_vocoder_fn_free_reference(runs, mels, np.array([5], np.int32))
  np.testing.assert_allclose(got, 3 * plain, atol=1e-5)


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
  """The test models (noisy vocoder) exported by tfspeech-export to every format.

  Acoustic layers=2 and vocoder layers=3 fixed; pace and noise_scale are inputs.
  """
  return testing.export_every_format(
      run_binary, tmp_path_factory.mktemp("custom_exports"),
      f"--workdir={runs['acoustic_dir']}", f"--vocoder={runs['noisy_dir']}",
      "--control=layers=2", "--control=pace=1.5", "--vocoder_control=layers=3",
      "--vocoder_control=noise_scale=0.7")


def feed(runs, noise_scale=0.7):
  """text_to_audio inputs; the vocoder noise is shorter than needed (the graphs repeat it)."""
  ids, lengths = encoded(runs["acoustic"], ["Hi.", "A longer text here."])
  rng = np.random.default_rng(5)
  noise = rng.standard_normal([2, 4, NOISE_CHANNELS]).astype(np.float32)
  vocoder_noise = rng.standard_normal([2, 3 * HOP + 17, 1]).astype(np.float32)
  return {"text_ids": ids, "text_lengths": lengths, "noise": noise, "pace": np.float32(1.5),
          "vocoder_noise": vocoder_noise, "vocoder_noise_scale": np.float32(noise_scale)}


def expected_for(runs, inputs):
  return reference(runs, inputs["text_ids"], inputs["text_lengths"], inputs["noise"], 1.5, 2,
                   inputs["vocoder_noise"], float(inputs["vocoder_noise_scale"]), 3)


def check_control_matters(out, quieter, where):
  """Output of `feed(noise_scale=0.7)` vs `feed(noise_scale=0.1)`: same mel, other audio."""
  np.testing.assert_array_equal(out["mel_lengths"], quieter["mel_lengths"])
  assert relative_error(quieter["mel"], out["mel"]) <= TOL, where
  assert relative_error(quieter["audio"], out["audio"]) > 0.05, where


def check(out, expected, where):
  for key in ("mel_lengths", "durations", "audio_lengths"):
    np.testing.assert_array_equal(out[key], expected[key], err_msg=f"{where}: {key}")
  for key in ("mel", "audio"):
    assert relative_error(out[key], expected[key]) <= TOL, f"{where}: {key}"


def test_every_export_has_one_metadata_layout(exports):
  layouts = {}
  for fmt, path in exports.items():
    if isinstance(path, Exception):
      continue
    with open(path / "metadata.json", encoding="utf-8") as f:
      metadata = json.load(f)
    assert metadata["model"] == ACOUSTIC
    assert metadata["controls"]["layers"]["value"] == 2
    assert metadata["controls"]["pace"]["recommended"] == 1.5
    assert metadata["noise"]["channels"] == NOISE_CHANNELS
    assert metadata["vocoder"]["model"] == NOISY
    vocoder_controls = metadata["vocoder_controls"]
    assert vocoder_controls["layers"]["value"] == 3 and "input" not in vocoder_controls["layers"]
    assert vocoder_controls["noise_scale"]["recommended"] == 0.7
    assert vocoder_controls["noise_scale"]["input"] == "vocoder_noise_scale"
    assert metadata["vocoder_noise"]["input"] == "vocoder_noise"
    assert metadata["vocoder_noise"]["channels"] == 1
    assert metadata["vocoder_noise"]["length_per_frame"] == HOP
    graphs = metadata["graphs"]
    assert sorted(graphs) == ["mel_to_audio", "text_to_audio", "text_to_mel"]
    assert sorted(graphs["text_to_audio"]["inputs"]) == [
        "noise", "pace", "text_ids", "text_lengths", "vocoder_noise", "vocoder_noise_scale"]
    assert sorted(graphs["mel_to_audio"]["inputs"]) == [
        "mel", "mel_lengths", "vocoder_noise", "vocoder_noise_scale"]
    assert graphs["mel_to_audio"]["inputs"]["vocoder_noise"]["shape"] == [
        "batch", "noise_length", 1]
    layouts[fmt] = ({key for key in metadata if key not in ("runtime", "precision",
                                                            "signatures", "select_tf_ops")},
                    {name: (g["inputs"], g["outputs"]) for name, g in graphs.items()})
  first = next(iter(layouts.values()))
  assert all(layout == first for layout in layouts.values()), layouts


def run_signature(loaded, name, inputs):
  out = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
  return {k: v.numpy() for k, v in out.items()}


def test_saved_model_runs_the_test_models(runs, exports):
  inputs = feed(runs)
  expected = expected_for(runs, inputs)
  loaded = tf.saved_model.load(str(exports["saved_model"]))
  out = run_signature(loaded, "text_to_audio", inputs)
  check(out, expected, "saved_model")
  check_control_matters(out, run_signature(loaded, "text_to_audio", feed(runs, 0.1)),
                        "saved_model")
  mel_only = run_signature(loaded, "mel_to_audio", {
      "mel": expected["mel"], "mel_lengths": expected["mel_lengths"],
      "vocoder_noise": inputs["vocoder_noise"], "vocoder_noise_scale": np.float32(0.7)})
  assert relative_error(mel_only["audio"], expected["audio"]) <= TOL


def test_saved_model_seeded_signatures_reproduce_in_process_synthesis(runs, exports):
  # text_to_audio_seeded draws both models' noise from noise_seeds exactly as
  # tfspeech-synthesize / tfspeech-vocode do for the same seed pairs.
  loaded = tf.saved_model.load(str(exports["saved_model"]))
  inputs = feed(runs)
  seeds = np.array([[4, 0], [4, 1]], np.int32)
  seeded = run_signature(loaded, "text_to_audio_seeded", {
      "text_ids": inputs["text_ids"], "text_lengths": inputs["text_lengths"],
      "noise_seeds": seeds, "pace": np.float32(1.5), "vocoder_noise_scale": np.float32(0.7)})
  acoustic = synthesize_lib.acoustic_serving(runs["acoustic"])
  mels = synthesize_lib.make_synthesis_fn(acoustic, {"layers": 2})(
      tf.constant(inputs["text_ids"]), tf.constant(inputs["text_lengths"]), tf.constant(seeds),
      tf.zeros([2], tf.int32), tf.constant(1.5))
  np.testing.assert_allclose(seeded["mel"], mels["mel"].numpy(), atol=1e-5)
  vocoder = vocode_lib.Vocoder.for_serving(
      runs["noisy"].task.serving(runs["noisy"].modules, data_info()),
      {"noise_scale": 0.7, "layers": 3})
  audio, _ = vocoder.vocode(mels["mel"], mels["mel_lengths"], seeds)
  assert relative_error(seeded["audio"], audio.numpy()) <= TOL
  mel_seeded = run_signature(loaded, "mel_to_audio_seeded", {
      "mel": seeded["mel"], "mel_lengths": seeded["mel_lengths"], "noise_seeds": seeds,
      "vocoder_noise_scale": np.float32(0.7)})
  assert relative_error(mel_seeded["audio"], audio.numpy()) <= TOL
  other = run_signature(loaded, "mel_to_audio_seeded", {
      "mel": seeded["mel"], "mel_lengths": seeded["mel_lengths"], "noise_seeds": seeds + 1,
      "vocoder_noise_scale": np.float32(0.7)})
  assert relative_error(other["audio"], audio.numpy()) > 0.05


def test_tflite_runs_the_test_models_in_litert(runs, exports):
  inputs = feed(runs)
  expected = expected_for(runs, inputs)
  runner = tflite.TFLiteGraph(str(exports["tflite"] / "text_to_audio.tflite"))
  out = runner(**inputs)
  check(out, expected, "tflite")
  check_control_matters(out, runner(**feed(runs, 0.1)), "tflite")
  vocoder = tflite.TFLiteGraph(str(exports["tflite"] / "mel_to_audio.tflite"))
  mel_only = vocoder(mel=expected["mel"], mel_lengths=expected["mel_lengths"],
                     vocoder_noise=inputs["vocoder_noise"], vocoder_noise_scale=np.float32(0.7))
  assert relative_error(mel_only["audio"], expected["audio"]) <= TOL


def test_tfjs_runs_the_test_models_in_node(runs, exports, node):
  if isinstance(exports["tfjs"], Exception):
    pytest.skip(f"TFJS converter unavailable: {exports['tfjs']}")
  inputs = feed(runs)
  expected = expected_for(runs, inputs)
  run = tfjs.run_graph_model(str(exports["tfjs"] / "text_to_audio"), inputs, backend="cpu")
  check(run.outputs, expected, "tfjs")
  quieter = tfjs.run_graph_model(str(exports["tfjs"] / "text_to_audio"), feed(runs, 0.1),
                                 backend="cpu")
  check_control_matters(run.outputs, quieter.outputs, "tfjs")
