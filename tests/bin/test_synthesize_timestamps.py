"""tfspeech-synthesize --timestamps on the session's tiny Grad-TTS run: NAME.json beside NAME.wav.

The binary's `main` runs in this process on the session fixture's run (its `load_run` is
that run), so the synthesis graphs traced for tests/inference are reused: a subprocess would
import TensorFlow, restore and trace again (~30 s on the shared CI host).
"""

import json
import os

import pytest
import scipy.io.wavfile
from absl import flags

from tfspeech import training
from tfspeech.training import checkpoints as checkpoints_lib


def test_timestamps_json_times_every_word_of_each_text(tiny_grad_tts_run, tmp_path,
                                                       monkeypatch, capsys):
  from tfspeech.bin import synthesize  # pylint: disable=import-outside-toplevel
  checkpoint_dir = os.path.dirname(tiny_grad_tts_run.checkpoint)
  assert os.path.basename(checkpoint_dir) == checkpoints_lib.CHECKPOINT_DIR
  workdir = os.path.dirname(checkpoint_dir)
  loaded = []

  def load_run(path, checkpoint=None, **kwargs):
    loaded.append((path, checkpoint, kwargs.get("precision"), sorted(kwargs)))
    return tiny_grad_tts_run
  monkeypatch.setattr(training, "load_run", load_run)
  lines = tmp_path / "lines.txt"
  texts = {"greeting": "Hi there!", "money": "Dr. Smith paid $3.50 — café 😀 ok."}
  lines.write_text("".join(f"{name}|{text}\n" for name, text in texts.items()),
                   encoding="utf-8")
  out = tmp_path / "out"
  argv = flags.FLAGS(["tfspeech-synthesize", f"--workdir={workdir}", f"--text_file={lines}",
                      f"--out={out}", "--timestamps", "--n_timesteps=2"])
  try:
    synthesize.main(argv)
  finally:
    flags.FLAGS.unparse_flags()
  assert loaded == [(workdir, None, "float32", ["precision", "tasks"])]
  stdout = capsys.readouterr().out
  assert sorted(os.listdir(out)) == ["greeting.json", "greeting.npy", "greeting.wav",
                                     "money.json", "money.npy", "money.wav"]
  assert f"{out / 'money.json'}  (6 words timed)" in stdout
  expected = {"greeting": ["Hi", "there"],
              "money": ["Dr.", "Smith", "paid", "$3.50", "café", "ok"]}
  for name, text in texts.items():
    stamps = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
    rate, wav = scipy.io.wavfile.read(out / f"{name}.wav")
    assert stamps["name"] == name and stamps["text"] == text
    words = stamps["words"]
    assert [w["word"] for w in words] == expected[name]
    assert all(text[w["char_start"]:w["char_end"]] == w["word"] for w in words)
    assert set(words[0]) == {"word", "start", "end", "char_start", "char_end"}
    assert words[0]["start"] >= 0 and all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    # The ids' times tile the WAV exactly: frames x hop / sample rate.
    tokens = stamps["tokens"]
    assert tokens[0]["start"] == 0 and abs(tokens[-1]["end"] - len(wav) / rate) < 1e-5
    assert all(a["end"] == b["start"] for a, b in zip(tokens, tokens[1:]))
    assert stamps["seconds_per_frame"] == 256 / rate


def test_timestamps_with_gta_is_one_error_line(tmp_path, capsys):
  from tfspeech.bin import synthesize  # pylint: disable=import-outside-toplevel
  argv = flags.FLAGS(["tfspeech-synthesize", f"--workdir={tmp_path}", "--gta",
                      f"--data={tmp_path}", f"--out={tmp_path / 'out'}", "--timestamps"])
  try:
    with pytest.raises(SystemExit) as exit_info:
      synthesize.main(argv)
  finally:
    flags.FLAGS.unparse_flags()
  assert exit_info.value.code == 2
  errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "--timestamps" in errors[0] and "--gta" in errors[0], errors


def test_precision_flag_builds_the_run_in_bfloat16(tiny_grad_tts_run, tmp_path, capsys):
  """--precision=bfloat16 restores the session's run with its U-Net in bfloat16 (a real
  load_run of the fixture's workdir) and writes the same words as float32 would."""
  from tfspeech.bin import synthesize  # pylint: disable=import-outside-toplevel
  workdir = os.path.dirname(os.path.dirname(tiny_grad_tts_run.checkpoint))
  out = tmp_path / "out"
  argv = flags.FLAGS(["tfspeech-synthesize", f"--workdir={workdir}", "--text=Hi there!",
                      f"--out={out}", "--timestamps", "--n_timesteps=2",
                      "--precision=bfloat16"])
  try:
    synthesize.main(argv)
  finally:
    flags.FLAGS.unparse_flags()
  stamps = json.loads((out / "0000.json").read_text(encoding="utf-8"))
  assert [w["word"] for w in stamps["words"]] == ["Hi", "there"]
  rate, wav = scipy.io.wavfile.read(out / "0000.wav")
  assert rate == 22050 and len(wav) > 0 and "real-time factor" in capsys.readouterr().out
