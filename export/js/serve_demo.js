#!/usr/bin/env node
// Serves the browser demo (export/web) with an exported TFJS model folder.
//
//   node export/js/serve_demo.js --model=exported/tfjs [--port=8000] [--host=127.0.0.1] \
//       [--isolate=true|false]
//
// Routes: / and /index.html, /demo.js, /tokenizer.js (export/web); /vendor/tf.min.js
// (@tensorflow/tfjs from export/node_modules: run `npm ci` in export/ first);
// /vendor/tf-backend-wasm.min.js and /vendor/tfjs-backend-wasm*.wasm (the WebAssembly backend
// and its three binaries, plain / SIMD / threaded SIMD, from @tensorflow/tfjs-backend-wasm;
// .wasm goes out as application/wasm so the browser compiles it while streaming); /model/...
// (the --model folder: metadata.json and the graph-model folders). LiteRT.js
// (@litertjs/core, for web/litert_runtime.js and web/litert.html): /vendor/litertjs/core.js
// (the package's ES module, its one bare import of @litertjs/wasm-utils pointed at
// /vendor/litertjs/wasm-utils.js, so that no import map or bundler is needed) and
// /vendor/litertjs/wasm/litert_wasm*_internal.{js,wasm} (its four Emscripten builds: compat,
// relaxed SIMD, threaded, JSPI; the package picks one by the browser's features).
//
// --isolate (default true) sends Cross-Origin-Opener-Policy: same-origin and
// Cross-Origin-Embedder-Policy: require-corp, which make the page cross-origin isolated: only
// then does the browser allow SharedArrayBuffer, and so the multi-threaded wasm binary. Every
// resource comes from this server, so the policies block nothing the demo loads.

'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');

const WEB_DIR = path.join(__dirname, '..', 'web');
const NODE_MODULES = path.join(__dirname, '..', 'node_modules');
const TFJS_BUNDLE = path.join(NODE_MODULES, '@tensorflow', 'tfjs', 'dist', 'tf.min.js');
const WASM_DIST = path.join(NODE_MODULES, '@tensorflow', 'tfjs-backend-wasm', 'dist');
// URL path under /vendor/ → file of the wasm backend package.
const WASM_FILES = {
  'tf-backend-wasm.min.js': 'tf-backend-wasm.min.js',
  'tfjs-backend-wasm.wasm': 'tfjs-backend-wasm.wasm',
  'tfjs-backend-wasm-simd.wasm': 'tfjs-backend-wasm-simd.wasm',
  'tfjs-backend-wasm-threaded-simd.wasm': 'tfjs-backend-wasm-threaded-simd.wasm',
};
const LITERT_CORE = path.join(NODE_MODULES, '@litertjs', 'core');
const LITERT_UTILS = path.join(NODE_MODULES, '@litertjs', 'wasm-utils', 'dist', 'index.js');
const LITERT_FILES = {
  'core.js': path.join(LITERT_CORE, 'dist', 'index.js'),
  'wasm-utils.js': LITERT_UTILS,
};
const TYPES = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
               '.json': 'application/json', '.bin': 'application/octet-stream',
               '.wasm': 'application/wasm'};
const ISOLATION_HEADERS = {'Cross-Origin-Opener-Policy': 'same-origin',
                           'Cross-Origin-Embedder-Policy': 'require-corp'};

// The file under `root` that `relative` names, or null when it escapes `root`.
function within(root, relative) {
  const resolved = path.resolve(root, '.' + path.posix.normalize('/' + relative));
  return resolved === root || resolved.startsWith(root + path.sep) ? resolved : null;
}

function resolveRoute(modelDir, pathname) {
  if (pathname === '/' || pathname === '/index.html') return path.join(WEB_DIR, 'index.html');
  if (pathname === '/vendor/tf.min.js') return TFJS_BUNDLE;
  if (pathname.startsWith('/vendor/litertjs/')) {
    const name = pathname.slice('/vendor/litertjs/'.length);
    if (LITERT_FILES[name]) return LITERT_FILES[name];
    return /^wasm\/litert_wasm_[a-z_]+\.(js|wasm)$/.test(name)
        ? path.join(LITERT_CORE, name) : null;
  }
  if (pathname.startsWith('/vendor/')) {
    const file = WASM_FILES[pathname.slice('/vendor/'.length)];
    return file ? path.join(WASM_DIST, file) : null;
  }
  if (pathname.startsWith('/model/')) return within(modelDir, pathname.slice('/model/'.length));
  return within(WEB_DIR, pathname.slice(1));
}

// Starts the server; resolves {server, url, wasm} once it listens (port 0 picks a free port).
// `wasm` is false when the wasm backend package is not installed: the page then runs on cpu.
// requireMetadata: false serves any folder under /model/ (check_web_demo.js --litert_model).
function startServer({modelDir, port = 0, host = '127.0.0.1', isolate = true,
                      requireMetadata = true}) {
  const root = path.resolve(modelDir);
  if (requireMetadata && !fs.existsSync(path.join(root, 'metadata.json'))) {
    throw new Error(`${root}/metadata.json not found: --model must be a tfspeech-export ` +
                    '--format=tfjs output folder');
  }
  if (!fs.existsSync(TFJS_BUNDLE)) {
    throw new Error(`${TFJS_BUNDLE} not found: run \`npm ci\` in ${path.dirname(WEB_DIR)}`);
  }
  const wasm = Object.values(WASM_FILES).every((f) => fs.existsSync(path.join(WASM_DIST, f)));
  if (!wasm) {
    console.warn(`serve_demo: ${WASM_DIST} has no wasm backend (run \`npm ci\` in ` +
                 `${path.dirname(WEB_DIR)}); the page will run on the cpu backend`);
  }
  const extraHeaders = isolate ? ISOLATION_HEADERS : {};
  const server = http.createServer((request, response) => {
    const pathname = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
    const file = resolveRoute(root, pathname);
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      response.writeHead(404, Object.assign({'Content-Type': 'text/plain'}, extraHeaders));
      response.end(`not found: ${pathname}\n`);
      return;
    }
    response.writeHead(200, Object.assign(
        {'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream'}, extraHeaders));
    if (file === LITERT_FILES['core.js']) {
      response.end(fs.readFileSync(file, 'utf8').replace(
          /from\s*["']@litertjs\/wasm-utils["']/g, 'from "./wasm-utils.js"'));
      return;
    }
    fs.createReadStream(file).pipe(response);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      resolve({server, url: `http://${host}:${server.address().port}/`, wasm});
    });
  });
}

module.exports = {startServer};

if (require.main === module) {
  const args = {};
  for (const arg of process.argv.slice(2)) {
    const match = /^--([a-z_]+)=(.*)$/.exec(arg);
    if (match) args[match[1]] = match[2];
  }
  if (!args.model) {
    console.error('usage: node serve_demo.js --model=EXPORTED_TFJS_DIR [--port=8000]');
    process.exit(2);
  }
  startServer({modelDir: args.model, port: Number(args.port || 8000), host: args.host,
               isolate: args.isolate !== 'false'})
      .then(({url}) => console.log(`tfspeech demo: ${url}`))
      .catch((error) => {
        console.error(`serve_demo: ${error.message}`);
        process.exit(1);
      });
}
