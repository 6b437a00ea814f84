// LiteRT.js (@litertjs/core 2.5.3) for tfspeech's TFLite graphs in the browser: loads the
// runtime from the demo server's vendor/litertjs/ (serve_demo.js serves the package's
// dist/index.js as core.js and its wasm/ folder), compiles a .tflite for the wasm (XNNPACK)
// accelerator and runs it with inputs and outputs by signature name.
//
// LiteRT.js 2.5.3 runs only graphs whose inputs and outputs all have static shapes: it cannot
// resize an input (run() rejects a [1, 23] tensor for a [-1, -1] input) and an output whose
// size depends on the data (Grad-TTS's mel, from its durations) crashes its wasm; a tensor of
// data-dependent size inside the graph is fine. tfspeech-export keeps batch and lengths
// dynamic unless --fixed_shapes=tokens=T,frames=F, so `loadModel` refuses a dynamic file with
// the reason (an Error whose message starts "LiteRT.js cannot run") instead of crashing later.
//
// The package picks its binary by the browser's wasm features: relaxed SIMD gives
// litert_wasm_internal, else litert_wasm_compat_internal; `threads: true` (needs relaxed SIMD
// and cross-origin isolation, which serve_demo.js sets up) the threaded one.
//
//   await TfspeechLiteRt.load({threads: true});
//   const graph = await TfspeechLiteRt.loadModel('model/mel_to_audio.tflite');
//   const out = await graph.run({mel: {values: Float32Array, shape: [1, 24, 80]}, ...});
//   // out.audio = {values: Float32Array, shape: [1, 6144], dtype: 'float32'}
//
// A classic script (window.TfspeechLiteRt): the package itself is an ES module, imported
// dynamically so that pages without LiteRT.js never fetch it.

(function () {
  'use strict';

  let litert = null;
  let binary = null;

  // Loads the runtime once; resolves describe(). threads: true asks for the threaded build;
  // where the browser cannot run it (no relaxed SIMD, or not cross-origin isolated) the
  // single-threaded one loads instead, with a console warning.
  async function load({threads = false, vendor = 'vendor/litertjs/'} = {}) {
    if (litert) return describe();
    const base = new URL(vendor, window.location.href).href;
    const module = await import(base + 'core.js');
    const wasmDir = base + 'wasm/';
    // The package adds a <script> for its Emscripten glue: note which one it chose.
    const seen = new MutationObserver((records) => {
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (node.tagName === 'SCRIPT' && node.src.startsWith(wasmDir)) {
            binary = node.src.slice(wasmDir.length).replace(/\.js$/, '');
          }
        }
      }
    });
    seen.observe(document.body, {childList: true});
    try {
      try {
        await module.loadLiteRt(wasmDir, threads ? {threads: true} : {});
      } catch (error) {
        // The feature checks fail before any script loads, so a second load starts clean.
        if (!threads) throw error;
        console.warn(`LiteRT.js: no threads (${error.message || error}); loading one thread`);
        await module.loadLiteRt(wasmDir, {});
      }
    } finally {
      seen.disconnect();
    }
    litert = module;
    return describe();
  }

  // {binary: the build loaded (litert_wasm_internal, ..._compat_internal, ..._threaded_internal),
  //  threads, crossOriginIsolated}.
  function describe() {
    return {binary, threads: binary === 'litert_wasm_threaded_internal',
            crossOriginIsolated: window.crossOriginIsolated};
  }

  // "input NAME [shape]" / "output NAME [shape]" of each tensor with a -1 dimension.
  function dynamicTensors(model) {
    const found = [];
    for (const [kind, details] of [['input', model.getInputDetails()],
                                   ['output', model.getOutputDetails()]]) {
      for (const {name, shape} of details) {
        if (Array.from(shape).some((size) => size < 0)) {
          found.push(`${kind} ${name} [${Array.from(shape).join(', ')}]`);
        }
      }
    }
    return found;
  }

  // Compiles the .tflite at `url` (or bytes); resolves {inputs, outputs, run(inputs), delete()}.
  async function loadModel(url) {
    if (!litert) throw new Error('TfspeechLiteRt.load() first');
    const bytes = url instanceof Uint8Array ? url
        : new Uint8Array(await (await fetch(url)).arrayBuffer());
    const model = await litert.loadAndCompile(bytes, {accelerator: 'wasm'});
    const dynamic = dynamicTensors(model);
    if (dynamic.length) {
      model.delete();
      throw new Error(`LiteRT.js cannot run ${url instanceof Uint8Array ? 'this graph' : url}: ` +
                      `${dynamic.join(', ')} ${dynamic.length > 1 ? 'have' : 'has'} a dynamic ` +
                      'dimension (-1), and LiteRT.js 2.5.3 runs only static shapes (export ' +
                      'with tfspeech-export --format=tflite --fixed_shapes=tokens=T,frames=F)');
    }
    const shapes = (details) => Object.fromEntries(details.map(
        (d) => [d.name, {dtype: d.dtype, shape: Array.from(d.shape)}]));
    return {
      inputs: shapes(model.getInputDetails()),
      outputs: shapes(model.getOutputDetails()),
      run: (inputs) => run(model, inputs),
      delete: () => model.delete(),
    };
  }

  // One call: inputs {name: {values: Float32Array | Int32Array, shape}} → outputs
  // {name: {values, shape, dtype}}; every LiteRT.js tensor is deleted (it manages wasm memory
  // by hand).
  async function run(model, inputs) {
    const tensors = {};
    try {
      for (const [name, {values, shape}] of Object.entries(inputs)) {
        tensors[name] = new litert.Tensor(values, shape);
      }
      const result = await model.run(tensors);
      const outputs = {};
      for (const [name, tensor] of Object.entries(result)) {
        outputs[name] = {values: await tensor.data(), dtype: tensor.type.dtype,
                         shape: tensor.type.layout.dimensions};
        tensor.delete();
      }
      return outputs;
    } finally {
      for (const tensor of Object.values(tensors)) tensor.delete();
    }
  }

  window.TfspeechLiteRt = {load, loadModel, describe};
})();
