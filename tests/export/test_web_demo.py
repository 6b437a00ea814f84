"""The browser demo (export/web) driven in headless Chromium as a person would use it.

A tiny TFJS text_to_audio export (randomized weights, as a trained model's) is served on
127.0.0.1; puppeteer-core types a sentence, clicks Synthesize and reads back what the page
made, the WAV behind its download link and the backend it ran on (WebAssembly when
@tensorflow/tfjs-backend-wasm is installed, else the pure-JS cpu backend). check_web_demo.js
exits non-zero when the page failed or made no audio. Skips when Chromium, node/npm or the
TFJS converter are unavailable.
"""

import dataclasses
import json
import os
import shutil
import subprocess

import pytest

from tfspeech import text as text_lib
from tfspeech.export import tfjs
from tfspeech.inference import synthesize_lib

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKENIZER_JS = os.path.join(tfjs.EXPORT_DIR, "web", "tokenizer.js")
CHECK_JS = os.path.join(tfjs.EXPORT_DIR, "js", "check_web_demo.js")
HOP_LENGTH = 256


@pytest.fixture(scope="module")
def chromium():
  if not os.path.isfile(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install chromium); skipping the browser "
                "demo test")
  return CHROMIUM


def js_encode(node, metadata_path, texts):
  script = (f"const {{Tokenizer}} = require({json.dumps(TOKENIZER_JS)});"
            f"const m = require({json.dumps(metadata_path)});"
            "const t = new Tokenizer(m);"
            f"console.log(JSON.stringify({json.dumps(texts)}.map("
            "(s) => ({...t.encode(s), alignment: t.align(s)}))));")
  result = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True)
  return json.loads(result.stdout)


def test_js_tokenizer_matches_python_front_end(tfjs_text_to_audio, node, acoustic_run):
  out_dir, _ = tfjs_text_to_audio
  texts = ["Hello, World!", "Dr. Smith's   café — fine?", "Mrs. O'Neil (the capt.) said: no;",
           "{HH AH0 L OW1} there"]
  front_end = synthesize_lib.text_front_end(acoustic_run)
  encoded = js_encode(node, os.path.join(out_dir, "metadata.json"), texts)
  for text, js in zip(texts, encoded):
    assert js["ids"] == front_end.encode(text), text
    # tokenizer.js maps ids to words and characters as tfspeech.text.align_text does.
    python = front_end.alignment(text)
    alignment = js["alignment"]
    assert alignment["ids"] == list(python.ids) and alignment["exact"], text
    assert alignment["tokenWords"] == list(python.token_words), text
    assert alignment["chars"] == [list(c) for c in python.chars], text
    assert alignment["words"] == [dataclasses.asdict(w) for w in python.words], text
  # english_characters has no phones: both drop the ARPAbet group's 4 phones.
  assert sum(encoded[-1]["unknown"].values()) == 4


def drive_page(node, chromium, out_dir, text, *flags, screenshot=None, succeeds=True):
  """Runs check_web_demo.js; returns its JSON outcome (result, status, backend, canvas, wav,
  problems, ...), after checking that it exited 0 (succeeds) or 1 (not succeeds)."""
  command = [node, CHECK_JS, f"--model={out_dir}", f"--text={text}", f"--chromium={chromium}",
             "--timeout_s=100", *flags]
  if screenshot:
    command.append(f"--screenshot={screenshot}")
  result = subprocess.run(command, capture_output=True, text=True, check=False,
                          cwd=tfjs.EXPORT_DIR, timeout=150)
  assert result.returncode == (0 if succeeds else 1), result.stderr[-3000:]
  outcome = json.loads(result.stdout.strip().splitlines()[-1])
  if succeeds:
    assert outcome["error"] is None and outcome["problems"] == [], outcome
  return outcome


def check_audio(outcome, expected_ids):
  """Non-silent audio of the length the mel frames give, from the expected token ids, and
  the same audio as a 16-bit WAV behind the download link."""
  page = outcome["result"]
  assert page is not None, outcome
  assert page["ids"] == expected_ids
  assert page["unknown"] == {}
  assert page["melFrames"] >= 1
  assert page["samples"] == page["melFrames"] * HOP_LENGTH
  assert page["sampleRate"] == 22050
  assert page["played"]
  # Non-silent, in range: the fixture's vocoder has an audible output gain.
  assert page["rms"] > 1e-3 and 0 < page["peak"] <= 1.0
  wav = outcome["wav"]
  assert wav["valid"] and wav["file"] == "tfspeech.wav"
  assert (wav["samples"], wav["sampleRate"], wav["bitsPerSample"]) == (page["samples"], 22050,
                                                                      16)
  assert wav["bytes"] == 44 + 2 * page["samples"]
  assert wav["peak"] == pytest.approx(page["peak"], abs=1e-4)
  # One real-time-factor convention (tfspeech-synthesize's): wall seconds / audio seconds.
  assert page["realTimeFactor"] == pytest.approx(
      page["seconds"] / (page["samples"] / page["sampleRate"]))


def test_page_synthesizes_plays_and_draws(tfjs_text_to_audio, node, chromium, acoustic_run,
                                          tmp_path):
  out_dir, _ = tfjs_text_to_audio
  text = "Hello world, this is a test."
  screenshot = str(tmp_path / "demo.png")
  outcome = drive_page(node, chromium, out_dir, text, screenshot=screenshot)
  page = outcome["result"]
  check_audio(outcome, synthesize_lib.text_front_end(acoustic_run).encode(text))
  canvas = outcome["canvas"]
  assert (canvas["width"], canvas["height"]) == (page["melFrames"], 80)
  assert canvas["litPixels"] > 0.5 * canvas["width"] * canvas["height"]
  assert "s of audio in" in outcome["status"]
  assert f"real-time factor {page['realTimeFactor']:.3f}" in outcome["status"]
  assert os.path.getsize(screenshot) > 0
  # Word highlighting: the page times words from the graph's durations through tokenizer.js;
  # the Python mapping gives the same words, offsets and seconds for those durations, and
  # the page highlights each word at its midpoint (a word of 0 frames never).
  durations = page["durations"]
  assert len(durations) == len(page["ids"]) and sum(durations) == page["melFrames"]
  alignment = synthesize_lib.text_front_end(acoustic_run).alignment(text, page["ids"])
  stamps = text_lib.durations_to_timestamps([alignment], [durations], HOP_LENGTH, 22050)
  assert alignment.exact and [w.word for w in stamps.words] == ["Hello", "world", "this", "is",
                                                                 "a", "test"]
  assert [(w["word"], w["char_start"], w["char_end"]) for w in page["words"]] == [
      (w.word, w.char_start, w.char_end) for w in stamps.words]
  for js, py in zip(page["words"], stamps.words):
    assert (js["start"], js["end"]) == (pytest.approx(py.start), pytest.approx(py.end))
  assert page["wordSpans"] == 6
  assert page["highlighted"] == [i if w.end > w.start else -1 for i, w in enumerate(stamps.words)]
  # The default backend is wasm whenever the package is installed, and the page says so.
  wasm_missing = tfjs.wasm_backend_missing()
  expected = "cpu" if wasm_missing else "wasm"
  assert outcome["serverHasWasm"] == (wasm_missing is None)
  assert page["backend"] == expected, (outcome["backendFallback"], outcome["console"][-5:])
  assert outcome["backendText"].startswith(f"Backend: {expected}")
  assert f"({expected})" in outcome["status"]
  print(f"browser: {page['samples'] / 22050:.2f} s of audio in {page['seconds']:.2f} s "
        f"({outcome['backend']}, cross-origin isolated: {outcome['crossOriginIsolated']})")


def test_page_falls_back_to_cpu_without_wasm(tfjs_text_to_audio, node, chromium, acoustic_run):
  """A server without the wasm backend's files: the page runs on cpu and says why."""
  out_dir, _ = tfjs_text_to_audio
  text = "Hi."
  outcome = drive_page(node, chromium, out_dir, text, "--block_wasm")
  page = outcome["result"]
  check_audio(outcome, synthesize_lib.text_front_end(acoustic_run).encode(text))
  assert page["backend"] == "cpu"
  assert "did not load" in outcome["backendFallback"]
  assert outcome["backendText"].startswith("Backend: cpu (wasm not used: ")
  assert "?backend=" in outcome["backendText"]


def test_page_falls_back_to_cpu_when_the_graph_fails_on_wasm(tfjs_text_to_audio, node,
                                                             chromium, acoustic_run):
  """Any wasm failure at run time (here a FusedConv2D that throws, as tfjs 4.22's did on a
  rank-4 bias): auto synthesizes on cpu, says why and points at ?backend=."""
  if tfjs.wasm_backend_missing():
    pytest.skip(f"TFJS wasm backend unavailable: {tfjs.wasm_backend_missing()}")
  out_dir, _ = tfjs_text_to_audio
  text = "Hi."
  outcome = drive_page(node, chromium, out_dir, text, "--break_wasm_kernel=FusedConv2D")
  check_audio(outcome, synthesize_lib.text_front_end(acoustic_run).encode(text))
  assert outcome["result"]["backend"] == "cpu"
  assert outcome["backendFallback"].startswith("the graph failed on the wasm backend: "
                                               "FusedConv2D failed on purpose")
  assert outcome["backendText"].startswith("Backend: cpu (wasm not used: the graph failed")
  assert "?backend=" in outcome["backendText"]


def test_checker_fails_when_the_page_makes_no_audio(tfjs_text_to_audio, node, chromium):
  """backend=wasm with a failing kernel: no fallback, the page shows the error and how to get
  around it, and check_web_demo.js exits 1 instead of reporting success."""
  if tfjs.wasm_backend_missing():
    pytest.skip(f"TFJS wasm backend unavailable: {tfjs.wasm_backend_missing()}")
  out_dir, _ = tfjs_text_to_audio
  outcome = drive_page(node, chromium, out_dir, "Hi.", "--backend=wasm",
                       "--break_wasm_kernel=FusedConv2D", succeeds=False)
  assert outcome["result"] is None and outcome["wav"] is None
  assert "FusedConv2D failed on purpose" in outcome["error"]
  assert "?backend=cpu" in outcome["error"] and outcome["status"].startswith("Error: ")
  assert "no result: the page produced no audio" in outcome["problems"]
