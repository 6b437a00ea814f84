#!/usr/bin/env node
// Drives the browser demo in headless Chromium the way a person would: serves it with an
// exported model on 127.0.0.1, types a sentence, clicks Synthesize, and prints what the page
// produced as JSON (ids, mel frames, samples, rms, ... from window.tfspeechDemo.lastResult;
// the backend the page ran on and why it fell back, as the page shows them).
//
//   node export/js/check_web_demo.js --model=EXPORTED_TFJS_DIR --text="Hello." \
//       [--backend=auto|wasm|cpu] [--block_wasm] [--chromium=/usr/bin/chromium] \
//       [--screenshot=page.png] [--timeout_s=120]
//
// --backend is the page's backend URL parameter (default auto: wasm, else cpu). --block_wasm
// makes the browser fail every request for the wasm backend's script and binaries, as a
// server without them would, to check the page's fallback to cpu.
//
// Uses puppeteer-core with the system Chromium (it never downloads a browser).

'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const puppeteer = require('puppeteer-core');
const {startServer} = require('./serve_demo');

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
  if (!args.model || !args.text) throw new Error('--model and --text are required');
  if (!fs.existsSync(args.chromium)) throw new Error(`no Chromium at ${args.chromium}`);
  const timeout = Number(args.timeout_s) * 1000;
  const {server, url, wasm} = await startServer({modelDir: args.model});
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tfspeech-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: args.chromium, headless: true, userDataDir: profile,
    args: CHROMIUM_FLAGS, protocolTimeout: timeout,
  });
  const console_ = [];
  try {
    const page = await browser.newPage();
    page.on('console', (message) => console_.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => console_.push(`pageerror: ${error.message}`));
    if (args.block_wasm === 'true') {
      await page.setRequestInterception(true);
      page.on('request', (request) => {
        if (/\/vendor\/(tf-backend-wasm|tfjs-backend-wasm)/.test(request.url())) {
          request.abort();
        } else {
          request.continue();
        }
      });
    }
    await page.goto(`${url}?model=model/&backend=${args.backend}`, {waitUntil: 'load', timeout});
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
    const outcome = await page.evaluate(() => ({
      result: window.tfspeechDemo.lastResult, error: window.tfspeechDemo.lastError,
      status: document.querySelector('#status').textContent,
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
    if (args.screenshot) await page.screenshot({path: args.screenshot});
    outcome.console = console_;
    outcome.serverHasWasm = wasm;
    console.log(JSON.stringify(outcome));
  } finally {
    await browser.close();
    server.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
}

main().catch((error) => {
  console.error(`check_web_demo: ${error.message || error}`);
  process.exit(1);
});
