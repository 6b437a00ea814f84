#!/usr/bin/env node
// Drives the browser demo in headless Chromium the way a person would: serves it with an
// exported model on 127.0.0.1, types a sentence, clicks Synthesize, and prints what the page
// produced as JSON (ids, mel frames, samples, rms, ... from window.tfspeechDemo.lastResult;
// the backend the page ran on and why it fell back, as the page shows them; the WAV behind
// the page's download link, parsed).
//
//   node export/js/check_web_demo.js --model=EXPORTED_TFJS_DIR --text="Hello." \
//       [--backend=auto|wasm|cpu] [--block_wasm] [--break_wasm_kernel=KERNEL] \
//       [--chromium=/usr/bin/chromium] [--screenshot=page.png] [--timeout_s=120] [--clicks=N] \
//       [--page_params=first_chunk=16&chunk=32&growth=1.5&delay=0]
//
// --backend is the page's backend URL parameter (default auto: wasm, else cpu). --block_wasm
// makes the browser fail every request for the wasm backend's script and binaries, as a
// server without them would, to check the page's fallback to cpu. --break_wasm_kernel=KERNEL
// replaces the wasm backend's KERNEL with one that throws (as tfjs 4.22's FusedConv2D did on
// a rank-4 bias), to check the fallback from a failure at run time. --clicks=N synthesizes N
// times (the first run includes the backend's one-time work) and reports each click's
// seconds and, for a streaming export (stream_player.js), its firstAudioMs, melMs (text_to_mel's
// part), chunkMs (each chunk's vocoding), delayMs (the first chunk's start delay), underruns
// and gapMs (silence from late chunks) as
// "clicks". --page_params adds URL parameters (the streaming chunk schedule). --out=DIR writes
// the last synthesis's text_ids, noise (when the model takes noise), mel and audio (float32,
// as the page made them, before the WAV's 16 bits) as run_graph_model.js writes outputs.
//
// Exits 1 (after printing the JSON, with "problems") when the page failed: an error on the
// page or in its console (pageerror), no result, no or silent audio, a length other than
// mel frames x hop_length, or a download link without that audio as WAV.
//
// Aligner mode: drives web/aligner.js in the page as a person would (chooses the WAV in its
// file input, types the transcript, clicks Align) and prints its result (ids, durations,
// words, score), its status line and the length of the audio it decoded:
//
//   node export/js/check_web_demo.js --model=DIR_WITH_ALIGN_GRAPH --align_wav=FILE.wav \
//       --align_text="What it says." [--out=OUT_DIR] [--backend=...] [--chromium=...]
//
// DIR is a tfspeech-align --export=DIR --format=tfjs folder (alone or beside a synthesis
// export). --out writes the audio the page decoded at the model's rate (audio.bin,
// outputs.json). Exits 1 when the aligner failed: a page error, an error status, no result,
// durations that are not one non-negative integer per token within the audio's frames, or
// words out of order or past the audio's end.
//
// LiteRT.js mode: runs one .tflite graph in the page web/litert.html with LiteRT.js
// (web/litert_runtime.js) instead of driving the demo, and writes what run_tflite.js writes:
//
//   node export/js/check_web_demo.js --litert_model=FILE.tflite --inputs=inputs.json \
//       --out=OUT_DIR [--repeat=N] [--warmup=N] [--threads] [--chromium=...] [--timeout_s=120]
//
// inputs.json and OUT_DIR as run_graph_model.js / run_tflite.js; outputs.json adds the
// LiteRT.js binary the browser loaded ("wasm": litert_wasm_internal with relaxed SIMD, the
// threaded one with --threads), "threads", "crossOriginIsolated" and "hardwareConcurrency".
// A graph LiteRT.js cannot run (dynamic shapes) fails with the page's reason.
//
// Uses puppeteer-core with the system Chromium (it never downloads a browser).

'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const puppeteer = require('puppeteer-core');
const {startServer} = require('./serve_demo');

const WEB_DIR = path.join(__dirname, '..', 'web');

const CHROMIUM_FLAGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

async function main() {
  const args = {chromium: '/usr/bin/chromium', timeout_s: '120', backend: 'auto'};
  for (const arg of process.argv.slice(2)) {
    const match = /^--([a-z_]+)(?:=(.*))?$/.exec(arg);
    if (!match) throw new Error(`unexpected argument ${arg}`);
    args[match[1]] = match[2] === undefined ? 'true' : match[2];
  }
  if (!fs.existsSync(args.chromium)) throw new Error(`no Chromium at ${args.chromium}`);
  if (args.litert_model) return checkLiteRt(args);
  if (args.align_wav) return checkAligner(args);
  if (!args.model || !args.text) throw new Error('--model and --text are required');
  const timeout = Number(args.timeout_s) * 1000;
  return withPage(args, timeout, {modelDir: args.model}, async ({page, url, wasm, console_}) => {
    if (args.block_wasm === 'true' || args.break_wasm_kernel) {
      const broken = args.break_wasm_kernel ? brokenKernelScript(args.break_wasm_kernel) : null;
      await page.setRequestInterception(true);
      page.on('request', (request) => {
        if (args.block_wasm === 'true' &&
            /\/vendor\/(tf-backend-wasm|tfjs-backend-wasm)/.test(request.url())) {
          request.abort();
        } else if (broken && new URL(request.url()).pathname === '/wasm_kernels.js') {
          request.respond({status: 200, contentType: 'text/javascript; charset=utf-8',
                           body: broken});
        } else {
          request.continue();
        }
      });
    }
    // --page_params=first_chunk=8&chunk=32&growth=1: more URL parameters (the chunk schedule).
    const extra = args.page_params ? `&${args.page_params}` : '';
    await page.goto(`${url}?model=model/&backend=${args.backend}${extra}`,
                    {waitUntil: 'load', timeout});
    await page.waitForFunction(
        () => !document.querySelector('#synthesize').disabled || window.tfspeechDemo.lastError,
        {timeout});
    const loadError = await page.evaluate(() => window.tfspeechDemo.lastError);
    if (loadError) throw new Error(`the page could not load the model: ${loadError}`);
    await page.click('#text', {clickCount: 3});
    await page.keyboard.press('Backspace');
    await page.type('#text', args.text);
    await page.click('#synthesize');
    await page.waitForFunction(
        () => window.tfspeechDemo.lastResult || window.tfspeechDemo.lastError, {timeout});
    const clicks = [];
    for (let click = 1; click < Number(args.clicks || 1); click++) {
      clicks.push(await page.evaluate(() => {
        const r = window.tfspeechDemo.lastResult || {};
        window.tfspeechDemo.lastResult = null;
        return {seconds: r.seconds, firstAudioMs: r.firstAudioMs, melMs: r.melMs,
                chunkMs: r.chunkMs, chunkFrames: r.chunkFrames, underruns: r.underruns,
                gapMs: r.gapMs, delayMs: r.delayMs};
      }));
      await page.click('#synthesize');
      await page.waitForFunction(
          () => window.tfspeechDemo.lastResult || window.tfspeechDemo.lastError, {timeout});
    }
    const outcome = await page.evaluate(() => ({
      result: window.tfspeechDemo.lastResult, error: window.tfspeechDemo.lastError,
      status: document.querySelector('#status').textContent,
      stream: (document.querySelector('#stream') || {}).textContent || null,
      backend: window.tfspeechDemo.backend, backendFallback: window.tfspeechDemo.backendFallback,
      backendText: document.querySelector('#backend').textContent,
      crossOriginIsolated: window.crossOriginIsolated, wasm: window.tfspeechDemo.wasm,
      hardwareConcurrency: navigator.hardwareConcurrency,
      canvas: (() => {
        const canvas = document.querySelector('#mel');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let lit = 0;
        for (let i = 0; i < pixels.length; i += 4) lit += (pixels[i] + pixels[i + 1] > 0) ? 1 : 0;
        return {width: canvas.width, height: canvas.height, litPixels: lit};
      })(),
    }));
    outcome.wav = await page.evaluate(readDownload);
    if (args.screenshot) await page.screenshot({path: args.screenshot});
    outcome.console = console_;
    if (clicks.length) {
      const r = outcome.result || {};
      clicks.push({seconds: r.seconds, firstAudioMs: r.firstAudioMs, melMs: r.melMs,
                   chunkMs: r.chunkMs, chunkFrames: r.chunkFrames, underruns: r.underruns,
                   gapMs: r.gapMs, delayMs: r.delayMs});
      outcome.clicks = clicks;
    }
    outcome.serverHasWasm = wasm;
    if (args.out && outcome.result) {
      writeArrays(await page.evaluate(encodeArraysInPage, 'demo'), args.out);
    }
    const metadata = JSON.parse(fs.readFileSync(path.join(args.model, 'metadata.json'), 'utf8'));
    outcome.problems = problems(outcome, metadata.hop_length);
    console.log(JSON.stringify(outcome));
    if (outcome.problems.length) {
      throw new Error(`the page failed: ${outcome.problems.join('; ')}`);
    }
  });
}

// Serves `serverOptions` (startServer's), opens a headless Chromium page that records its
// console messages and page errors in `console_`, runs `body({page, url, wasm, console_})`
// and returns its value; the browser, its profile folder and the server are always closed.
async function withPage(args, timeout, serverOptions, body) {
  const {server, url, wasm} = await startServer(serverOptions);
  const {browser, profile} = await launch(args, timeout);
  const console_ = [];
  try {
    const page = await browser.newPage();
    page.on('console', (message) => console_.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => console_.push(`pageerror: ${error.message}`));
    return await body({page, url, wasm, console_});
  } finally {
    await browser.close();
    server.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
}

async function launch(args, timeout) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tfspeech-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: args.chromium, headless: true, userDataDir: profile,
    args: CHROMIUM_FLAGS, protocolTimeout: timeout,
  });
  return {browser, profile};
}

// --align_wav: web/aligner.js driven through its section of the page, as a person would:
// the WAV chosen in its file input, the transcript typed, Align clicked.
async function checkAligner(args) {
  if (!args.model || args.align_text === undefined) {
    throw new Error('--align_wav needs --model (a folder with an align graph) and --align_text');
  }
  if (!fs.existsSync(args.align_wav)) throw new Error(`--align_wav=${args.align_wav}: no such file`);
  const timeout = Number(args.timeout_s) * 1000;
  return withPage(args, timeout, {modelDir: args.model}, async ({page, url, wasm, console_}) => {
    await page.goto(`${url}?model=model/&backend=${args.backend}`, {waitUntil: 'load', timeout});
    const statusText = () => page.evaluate(() => document.querySelector('#align-status').textContent);
    if (!(await page.evaluate(() => window.tfspeechAligner.ready))) {
      throw new Error(`the page has no aligner for ${args.model}: ${await statusText() ||
                      'metadata.json has no align graph (tfspeech-align --export=DIR --format=tfjs)'}`);
    }
    await (await page.$('#align-file')).uploadFile(path.resolve(args.align_wav));
    // Decoded (Align enabled) or refused (an error status).
    await page.waitForFunction(
        () => !document.querySelector('#align-run').disabled ||
              document.querySelector('#align-status').className === 'error', {timeout});
    await page.type('#align-text', args.align_text);
    await page.click('#align-run');
    await page.waitForFunction(
        () => window.tfspeechAligner.lastResult ||
              document.querySelector('#align-status').className === 'error', {timeout});
    const outcome = await page.evaluate(() => ({
      result: window.tfspeechAligner.lastResult,
      status: document.querySelector('#align-status').textContent,
      samples: window.tfspeechAligner.samples ? window.tfspeechAligner.samples.length : null,
      backend: window.tfspeechDemo ? window.tfspeechDemo.backend : null,
    }));
    const metadata = JSON.parse(fs.readFileSync(path.join(args.model, 'metadata.json'), 'utf8'));
    Object.assign(outcome, {sampleRate: metadata.sample_rate, hopLength: metadata.hop_length});
    outcome.serverHasWasm = wasm;
    outcome.console = console_;
    if (args.out && outcome.samples) {
      writeArrays(await page.evaluate(encodeArraysInPage, 'aligner'), args.out);
    }
    outcome.problems = alignProblems(outcome);
    console.log(JSON.stringify(outcome));
    if (outcome.problems.length) {
      throw new Error(`the aligner failed: ${outcome.problems.join('; ')}`);
    }
  });
}

// What is wrong with the aligner's outcome: [] when it timed every token and word within the
// audio and logged no page error.
function alignProblems(outcome) {
  const found = outcome.console.filter((line) => line.startsWith('pageerror:'));
  if (/^error:/.test(outcome.status)) found.push(`aligner ${outcome.status}`);
  const result = outcome.result;
  if (!result) {
    found.push('no result: the aligner produced no alignment');
    return found;
  }
  const {durations, ids, words} = result;
  const frames = Math.floor(outcome.samples / outcome.hopLength);
  if (durations.length !== ids.length) {
    found.push(`${durations.length} durations for ${ids.length} tokens`);
  }
  const total = durations.reduce((a, b) => a + b, 0);
  if (durations.some((d) => !Number.isInteger(d) || d < 0) || total > frames) {
    found.push(`durations ${JSON.stringify(durations)} (sum ${total}) do not fit ${frames} frames`);
  }
  if (!words.length) found.push('no words timed');
  const seconds = outcome.samples / outcome.sampleRate;
  words.forEach((w, i) => {
    const previous = i ? words[i - 1].end : 0;
    if (!(previous <= w.start && w.start <= w.end && w.end <= seconds + 1e-6)) {
      found.push(`word ${i} (${w.word}) at ${w.start}-${w.end} s is out of order or past ` +
                 `the ${seconds} s of audio`);
    }
  });
  if (!Number.isFinite(result.score)) found.push(`score ${result.score}`);
  return found;
}

// In the page: the last synthesis's arrays (window.tfspeechDemo.lastArrays) or the audio the
// aligner decoded (source 'aligner'), as {name: {base64, dtype, shape}}.
function encodeArraysInPage(source) {
  const aligner = window.tfspeechAligner;
  const arrays = source === 'aligner'
      ? {audio: {values: aligner.samples, shape: [1, aligner.samples.length]}}
      : window.tfspeechDemo.lastArrays;
  const encoded = {};
  for (const [name, {values, shape}] of Object.entries(arrays)) {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    encoded[name] = {base64: btoa(text), shape,
                     dtype: values instanceof Int32Array ? 'int32' : 'float32'};
  }
  return encoded;
}

// OUT_DIR/NAME.bin per array and outputs.json ({outputs: {name: {dtype, shape, file}}}), as
// run_graph_model.js writes them (tfspeech.export.tfjs.read_runner_outputs reads both).
function writeArrays(encoded, outDir) {
  fs.mkdirSync(outDir, {recursive: true});
  const outputs = {};
  for (const [name, {base64, dtype, shape}] of Object.entries(encoded)) {
    fs.writeFileSync(path.join(outDir, `${name}.bin`), Buffer.from(base64, 'base64'));
    outputs[name] = {dtype, shape, file: `${name}.bin`};
  }
  fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify({outputs}, null, 2));
}

// --litert_model: the graph run in web/litert.html; writes OUT_DIR like run_tflite.js.
async function checkLiteRt(args) {
  for (const name of ['inputs', 'out']) {
    if (!args[name]) throw new Error(`--litert_model needs --${name}`);
  }
  const timeout = Number(args.timeout_s) * 1000;
  // One folder under /model/: the graph and the inputs (links, nothing copied).
  const served = fs.mkdtempSync(path.join(os.tmpdir(), 'tfspeech-litert-'));
  const spec = JSON.parse(fs.readFileSync(args.inputs, 'utf8'));
  fs.symlinkSync(path.resolve(args.litert_model), path.join(served, 'graph.tflite'));
  for (const entry of Object.values(spec)) {
    fs.symlinkSync(path.resolve(path.dirname(args.inputs), entry.file),
                   path.join(served, path.basename(entry.file)));
  }
  try {
    return await withPage(args, timeout, {modelDir: served, requireMetadata: false},
                          async ({page, url, console_}) => {
      await page.goto(`${url}litert.html`, {waitUntil: 'load', timeout});
      const result = await page.evaluate(runInPage, {
        spec, threads: args.threads === 'true', repeat: Math.max(1, Number(args.repeat || 1)),
        warmup: Number(args.warmup || 0)});
      if (result.error) throw new Error(result.error);
      fs.mkdirSync(args.out, {recursive: true});
      const description = {};
      for (const [name, {base64, dtype, shape}] of Object.entries(result.outputs)) {
        fs.writeFileSync(path.join(args.out, `${name}.bin`), Buffer.from(base64, 'base64'));
        description[name] = {dtype, shape, file: `${name}.bin`};
      }
      const summary = Object.assign({outputs: description, runtime: 'litertjs-browser'},
                                    result.summary, {console: console_.slice(-20)});
      fs.writeFileSync(path.join(args.out, 'outputs.json'), JSON.stringify(summary, null, 2));
      console.log(JSON.stringify(Object.assign({}, summary, {outputs: description})));
    });
  } finally {
    fs.rmSync(served, {recursive: true, force: true});
  }
}

// In web/litert.html: loads LiteRT.js and the graph, runs it `warmup` + `repeat` times on
// the inputs of /model/, and returns the last outputs (base64) and the timings; or {error}.
async function runInPage({spec, threads, repeat, warmup}) {
  const arrays = {float32: Float32Array, int32: Int32Array};
  try {
    const loadStart = performance.now();
    const runtime = await window.TfspeechLiteRt.load({threads});
    const graph = await window.TfspeechLiteRt.loadModel('model/graph.tflite');
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const inputs = {};
    for (const [name, entry] of Object.entries(spec)) {
      const bytes = await (await fetch(`model/${entry.file.split('/').pop()}`)).arrayBuffer();
      inputs[name] = {values: new arrays[entry.dtype](bytes), shape: entry.shape};
    }
    for (let i = 0; i < warmup; i++) await graph.run(inputs);
    const seconds = [];
    let outputs = null;
    for (let i = 0; i < repeat; i++) {
      const start = performance.now();
      outputs = await graph.run(inputs);
      seconds.push((performance.now() - start) / 1000);
    }
    graph.delete();
    const encoded = {};
    for (const [name, {values, dtype, shape}] of Object.entries(outputs)) {
      const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
      let text = '';
      for (let i = 0; i < bytes.length; i += 0x8000) {
        text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      }
      encoded[name] = {base64: btoa(text), dtype, shape};
    }
    return {outputs: encoded, summary: {
      seconds_per_call: seconds, load_seconds: loadSeconds, wasm: runtime.binary,
      threads: runtime.threads, crossOriginIsolated: window.crossOriginIsolated,
      hardwareConcurrency: navigator.hardwareConcurrency}};
  } catch (error) {
    return {error: String(error.message || error)};
  }
}

// web/wasm_kernels.js followed by a wasm `kernel` that throws whenever it runs.
function brokenKernelScript(kernel) {
  return fs.readFileSync(path.join(WEB_DIR, 'wasm_kernels.js'), 'utf8') + `
;(function () {
  const kernel = ${JSON.stringify(kernel)};
  if (tf.getKernel(kernel, 'wasm')) tf.unregisterKernel(kernel, 'wasm');
  tf.registerKernel({kernelName: kernel, backendName: 'wasm', kernelFunc: () => {
    throw new Error(kernel + ' failed on purpose (check_web_demo.js --break_wasm_kernel)');
  }});
})();
`;
}

// In the page: the WAV behind #download, parsed (null when the link has none).
async function readDownload() {
  const link = document.querySelector('#download');
  if (!link || link.hidden || !link.href) return null;
  const bytes = await (await fetch(link.href)).arrayBuffer();
  const view = new DataView(bytes);
  const tag = (offset) => String.fromCharCode(...new Uint8Array(bytes, offset, 4));
  if (bytes.byteLength < 44 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE' || tag(36) !== 'data') {
    return {bytes: bytes.byteLength, valid: false};
  }
  let peak = 0;
  for (let i = 44; i + 1 < bytes.byteLength; i += 2) {
    peak = Math.max(peak, Math.abs(view.getInt16(i, true)));
  }
  return {bytes: bytes.byteLength, valid: true, file: link.download,
          sampleRate: view.getUint32(24, true), bitsPerSample: view.getUint16(34, true),
          samples: view.getUint32(40, true) / 2, peak: peak / 32767};
}

// What is wrong with the page's outcome: [] when it made audio of the right length, offered
// it as a WAV, and logged no page error.
function problems(outcome, hopLength) {
  const found = [];
  if (outcome.error) found.push(`page error: ${outcome.error}`);
  found.push(...outcome.console.filter((line) => line.startsWith('pageerror:')));
  const result = outcome.result;
  if (!result) {
    found.push('no result: the page produced no audio');
    return found;
  }
  if (!(result.samples > 0)) found.push(`no audio samples (${result.samples})`);
  if (result.samples !== result.melFrames * hopLength) {
    found.push(`${result.samples} samples for ${result.melFrames} mel frames x hop ${hopLength}`);
  }
  if (!(result.rms > 0) || !Number.isFinite(result.rms)) {
    found.push(`silent or non-finite audio (rms ${result.rms})`);
  }
  const wav = outcome.wav;
  if (!wav || !wav.valid) {
    found.push(`no WAV download (${JSON.stringify(wav)})`);
  } else if (wav.samples !== result.samples || wav.sampleRate !== result.sampleRate ||
             !(wav.peak > 0)) {
    found.push(`the WAV download (${wav.samples} samples at ${wav.sampleRate} Hz, peak ` +
               `${wav.peak}) is not the audio (${result.samples} at ${result.sampleRate} Hz)`);
  }
  return found;
}

main().catch((error) => {
  console.error(`check_web_demo: ${error.message || error}`);
  process.exit(1);
});
