#!/usr/bin/env node
// Runs an exported .tflite graph in Node with LiteRT.js (@litertjs/core: LiteRT compiled to
// WebAssembly, XNNPACK CPU kernels), the runtime the browser demo uses with ?runtime=litert.
//
//   node export/js/run_tflite.js --model=FILE.tflite --inputs=inputs.json --out=OUT_DIR \
//       [--repeat=N] [--warmup=N]
//
// inputs.json and OUT_DIR as run_graph_model.js: inputs.json is {"NAME": {"dtype":
// "float32"|"int32", "shape": [..], "file": "NAME.bin"}, ..} (NumPy `array.tofile`, paths
// relative to inputs.json; NAME a signature input name); OUT_DIR receives NAME.bin per output
// and outputs.json {"outputs": {NAME: {dtype, shape, file}}, "seconds_per_call": [...],
// "runtime": "litertjs", "wasm": the LiteRT.js build that ran (litert_wasm_compat_internal),
// "load_seconds", ...}.
// With --repeat=N the graph runs N timed calls after --warmup untimed ones; a timed call ends
// when every output's values are on the host (JS typed arrays).
//
// LiteRT.js is written for browsers: its loader adds a <script> for the Emscripten glue
// (litert_wasm*_internal.js), or calls importScripts() in a worker. Node has neither, so this
// runner defines importScripts() to evaluate the glue in this context (the glue's own Node
// paths then read the .wasm from node_modules). The package picks its binary by feature:
// relaxed SIMD gives litert_wasm_internal.wasm, else the "compat" build; Node 20's V8 lacks
// relaxed SIMD, so Node runs the compat build, single-threaded (browsers with relaxed SIMD
// run the other, and can run threads when cross-origin isolated): Node times are a lower
// bound on the browser's speed.

'use strict';

const fs = require('fs');
const path = require('path');
const vm = require('vm');

const CORE_DIR = path.join(__dirname, '..', 'node_modules', '@litertjs', 'core');
const TYPED_ARRAYS = {float32: Float32Array, int32: Int32Array};

function parseArgs(argv) {
  const args = {repeat: '1', warmup: '0'};
  for (const arg of argv) {
    const match = /^--([a-z_]+)(?:=(.*))?$/.exec(arg);
    if (!match) throw new Error(`unexpected argument ${JSON.stringify(arg)}; use --name=value`);
    args[match[1]] = match[2] === undefined ? 'true' : match[2];
  }
  for (const name of ['model', 'inputs', 'out']) {
    if (!args[name]) throw new Error(`--${name} is required`);
  }
  return args;
}

// Loads LiteRT.js in Node; resolves {litert, wasm: the glue file it loaded}.
async function loadLiteRtInNode() {
  if (!fs.existsSync(path.join(CORE_DIR, 'dist', 'index.js'))) {
    throw new Error(`${CORE_DIR} not found: run \`npm ci\` in ${path.dirname(CORE_DIR)}/..`);
  }
  let loaded = null;
  globalThis.self = globalThis;
  // The glue is a classic script: its `var ModuleFactory` becomes a global, and on Node it
  // calls require() and reads __dirname, which a module-less script does not have.
  globalThis.require = require;
  globalThis.importScripts = (url) => {
    const file = String(url).startsWith('file:') ? new URL(url).pathname : String(url);
    globalThis.__dirname = path.dirname(file);
    loaded = path.basename(file, '.js');
    vm.runInThisContext(fs.readFileSync(file, 'utf8'), {filename: file});
  };
  const litert = await import(path.join(CORE_DIR, 'dist', 'index.js'));
  // A directory: the package picks the binary the runtime's wasm features allow.
  await litert.loadLiteRt(path.join(CORE_DIR, 'wasm') + path.sep);
  return {litert, wasm: loaded};
}

function readInputs(litert, inputsPath) {
  const spec = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));
  const arrays = {};
  for (const [name, entry] of Object.entries(spec)) {
    const ArrayType = TYPED_ARRAYS[entry.dtype];
    if (!ArrayType) {
      throw new Error(`${inputsPath}: input ${name} has dtype ${entry.dtype}; use float32 or ` +
                      'int32');
    }
    const bytes = fs.readFileSync(path.resolve(path.dirname(inputsPath), entry.file));
    const values = new ArrayType(bytes.buffer.slice(bytes.byteOffset,
                                                    bytes.byteOffset + bytes.length));
    const expected = entry.shape.reduce((a, b) => a * b, 1);
    if (values.length !== expected) {
      throw new Error(`${inputsPath}: input ${name} has ${values.length} values but shape ` +
                      `[${entry.shape}] needs ${expected}`);
    }
    arrays[name] = {values, shape: entry.shape};
  }
  return arrays;
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

// One call: fresh input tensors (run() does not take ownership), outputs read to the host.
async function runOnce(litert, model, arrays) {
  const inputs = {};
  for (const [name, {values, shape}] of Object.entries(arrays)) {
    inputs[name] = new litert.Tensor(values, shape);
  }
  try {
    const result = await model.run(inputs);
    const outputs = {};
    for (const [name, tensor] of Object.entries(result)) {
      outputs[name] = {values: await tensor.data(), dtype: tensor.type.dtype,
                       shape: tensor.type.layout.dimensions};
      tensor.delete();
    }
    return outputs;
  } finally {
    for (const tensor of Object.values(inputs)) tensor.delete();
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const start = process.hrtime.bigint();
  const {litert, wasm} = await loadLiteRtInNode();
  const model = await litert.loadAndCompile(new Uint8Array(fs.readFileSync(args.model)),
                                            {accelerator: 'wasm'});
  const loadSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const dynamic = dynamicTensors(model);
  if (dynamic.length) {
    model.delete();
    throw new Error(`${args.model}: ${dynamic.join(', ')} ${dynamic.length > 1 ? 'have' : 'has'} ` +
                    'a dynamic dimension (-1); LiteRT.js runs only graphs whose inputs AND ' +
                    'outputs all have static shapes (it cannot resize inputs, and an output ' +
                    'whose length depends on the data crashes it). Export with ' +
                    'tfspeech-export --format=tflite --fixed_shapes=tokens=T,frames=F ' +
                    '(batch 1, text padded to T ids, mels and audio to F frames)');
  }
  const signature = model.getInputDetails().map((d) => d.name);
  const arrays = readInputs(litert, args.inputs);
  const missing = signature.filter((name) => !(name in arrays));
  if (missing.length) {
    throw new Error(`${args.model} takes inputs ${signature.join(', ')}; inputs.json lacks ` +
                    missing.join(', '));
  }
  for (let i = 0; i < Number(args.warmup); i++) await runOnce(litert, model, arrays);
  const seconds = [];
  let outputs = null;
  for (let i = 0; i < Math.max(1, Number(args.repeat)); i++) {
    const begin = process.hrtime.bigint();
    outputs = await runOnce(litert, model, arrays);
    seconds.push(Number(process.hrtime.bigint() - begin) / 1e9);
  }
  model.delete();
  fs.mkdirSync(args.out, {recursive: true});
  const description = {};
  for (const [name, {values, dtype, shape}] of Object.entries(outputs)) {
    const file = `${name}.bin`;
    fs.writeFileSync(path.join(args.out, file),
                     Buffer.from(values.buffer, values.byteOffset, values.byteLength));
    description[name] = {dtype, shape, file};
  }
  const version = JSON.parse(fs.readFileSync(path.join(CORE_DIR, 'package.json'), 'utf8'))
      .version;
  console.error(`run_tflite: LiteRT.js ${version} (${wasm}), ${seconds.length} timed calls`);
  fs.writeFileSync(path.join(args.out, 'outputs.json'), JSON.stringify({
    outputs: description, seconds_per_call: seconds, runtime: 'litertjs', wasm,
    litertjs_version: version, load_seconds: loadSeconds,
  }, null, 2));
}

main().catch((error) => {
  console.error(`run_tflite: ${error.message || error}`);
  process.exit(1);
});
