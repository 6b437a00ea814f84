#!/usr/bin/env node
// Runs a converted TFJS graph model in Node with the WebAssembly backend
// (@tensorflow/tfjs-backend-wasm) or the pure-JS CPU backend of @tensorflow/tfjs.
//
//   node export/js/run_graph_model.js --model=DIR --inputs=inputs.json --out=OUT_DIR \
//       [--backend=auto|wasm|cpu] [--wasm_dir=DIR] [--repeat=N] [--warmup=N] [--profile]
//   node export/js/run_graph_model.js --model=DIR --inputs=inputs.json --check_ops
//
// DIR holds model.json and its weight shards (tensorflowjs_converter --output_format=
// tfjs_graph_model). `file://` URLs need @tensorflow/tfjs-node, whose install downloads a
// native binary, so the model is read from disk by the small IO handler below instead.
//
// --backend: "wasm" (the .wasm binaries ship in the npm package and are read from
// node_modules; SIMD when Node supports it, single-threaded because tfjs 4.22 does not use
// worker threads in Node), "cpu", or "auto" (the default): wasm when it loads and runs the
// graph, else cpu.
// --wasm_dir: where the tfjs-backend-wasm*.wasm binaries are (default: the package's dist/).
// The wasm backend gets two kernels from export/web/wasm_kernels.js: Einsum, which it lacks,
// and a OneHot that is right for float outputs (its own writes int32 bit patterns into float
// tensors). Current tfspeech graphs need neither (see that file); older exports did.
// The backend used is printed on stderr ("run_graph_model: backend wasm (simd)") and stored in
// outputs.json. With "auto", a wasm backend that cannot load, or ANY failure of the graph on
// wasm (a kernel it lacks: "Kernel 'X' not registered for backend 'wasm'", or one that rejects
// its inputs, e.g. tfjs 4.22's "FusedConv2D only supports rank-1 bias") falls back to cpu: the
// reason is printed on stderr and stored as "fallback". An explicit --backend=wasm fails
// instead, with that reason.
//
// --check_ops prints JSON instead of running: the graph's TF ops, the tfjs kernels a CPU run
// of it executes (registered kernels only: tf.profile also lists the op scopes of custom-
// gradient ops, such as "fusedConv2d__op", which are no kernels), which of those the wasm
// backend lacks (missing_kernels) or has only through wasm_kernels.js (added_by_tfspeech),
// and whether the graph then runs on wasm (runs, and error when it does not).
//
// inputs.json: {"NAME": {"dtype": "float32"|"int32", "shape": [..], "file": "NAME.bin"}, ..}
// with each file the tensor's raw little-endian values in row-major order (NumPy
// `array.tofile`), paths relative to inputs.json. NAME is a signature input name
// ("mel", "text_ids", ...).
//
// OUT_DIR receives NAME.bin per output and outputs.json {"outputs": {NAME: {dtype, shape,
// file}}, "seconds_per_call": [...], "backend": "wasm"|"cpu", "fallback": null|"why", ...}.
// With --repeat=N the model runs N timed calls after --warmup untimed ones; the outputs are
// those of the last call. A timed call ends when every output's values are on the host.
//
// --profile: after the timed calls, one more call under tf.profile; outputs.json gets
// "profile": {"total_ms", "kernels": [{kernel, calls, ms, share}] (most time first),
// "slowest": [{kernel, ms, input_shapes, output_shapes}] (the 20 slowest kernel calls)}.
// Kernel times are wall times around each kernel; they show where a backend spends a call.
//
// Loop-free graphs (every model but the autoregressive decoders) run with the synchronous
// `execute`. Graphs with control flow (Tacotron 2's and DC-TTS's decoding loop, lowered by the
// converter to Enter/Merge/Switch/NextIteration/Exit, or functional While/If ops) make tfjs
// demand `executeAsync`: the runner picks it when model.json holds any such op, in the main
// graph or in a function of its library ("executes": "async" in outputs.json).

'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

const {registerWasmKernels} = require('../web/wasm_kernels.js');

const WASM_PACKAGE = '@tensorflow/tfjs-backend-wasm';
// TF ops after which tfjs's GraphModel.execute throws ("... dynamic op ... use
// model.executeAsync() instead"): v1 control flow, functional control flow.
const CONTROL_FLOW_OPS = new Set([
  'Enter', 'Exit', 'Merge', 'Switch', 'NextIteration', 'LoopCond', 'While', 'StatelessWhile',
  'If', 'StatelessIf', 'RefEnter', 'RefExit', 'RefMerge', 'RefNextIteration', 'RefSwitch',
]);
let stockWasmKernels = null;  // the kernels the package registers, before tfspeech's own
const BACKENDS = ['auto', 'wasm', 'cpu'];

function parseArgs(argv) {
  const args = {repeat: '1', warmup: '0', backend: 'auto'};
  for (const arg of argv) {
    const match = /^--([a-z_]+)(?:=(.*))?$/.exec(arg);
    if (!match) {
      throw new Error(`unexpected argument ${JSON.stringify(arg)}; use --name=value`);
    }
    args[match[1]] = match[2] === undefined ? 'true' : match[2];
  }
  const required = args.check_ops ? ['model', 'inputs'] : ['model', 'inputs', 'out'];
  for (const name of required) {
    if (!args[name]) {
      throw new Error(`--${name} is required (see the header of run_graph_model.js)`);
    }
  }
  if (!BACKENDS.includes(args.backend)) {
    throw new Error(`--backend=${args.backend}: choose one of ${BACKENDS.join(', ')}`);
  }
  return args;
}

// Whether the graph of model.json (main graph or any library function) has control flow.
function hasControlFlow(modelJSON) {
  const topology = modelJSON.modelTopology || {};
  const nodes = [...(topology.node || [])];
  for (const fn of ((topology.library || {}).function || [])) nodes.push(...(fn.nodeDef || []));
  return nodes.some((node) => CONTROL_FLOW_OPS.has(node.op));
}

function readModelJSON(modelDir) {
  const jsonPath = path.join(modelDir, 'model.json');
  if (!fs.existsSync(jsonPath)) {
    throw new Error(`${jsonPath} not found: --model must be a tfjs_graph_model folder`);
  }
  return JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
}

// A function running the model once on `inputs`, resolving its output tensor(s):
// `executeAsync` for graphs with control flow, else the synchronous `execute`.
function executor(model, modelDir) {
  if (hasControlFlow(readModelJSON(modelDir))) {
    return {mode: 'async', run: (inputs) => model.executeAsync(inputs)};
  }
  return {mode: 'sync', run: async (inputs) => model.execute(inputs)};
}

// Registers the wasm backend with its binaries' folder in node_modules. Returns null, or why
// the package cannot be used.
function registerWasm(wasmDir) {
  let wasm;
  try {
    wasm = require(WASM_PACKAGE);
  } catch (error) {
    return `${WASM_PACKAGE} is not installed (run \`npm ci\` in export/): ${error.message}`;
  }
  // The Node bundle (dist/tf-backend-wasm.node.js) sits beside the three .wasm binaries.
  const dist = wasmDir ? path.resolve(wasmDir) : path.dirname(require.resolve(WASM_PACKAGE));
  // Emscripten reads a local path with fs in Node; the prefix needs its trailing separator.
  wasm.setWasmPaths(dist + path.sep);
  stockWasmKernels = tf.getKernelsForBackend('wasm').map((k) => k.kernelName);
  // tfjs-backend-wasm 4.22 has no Einsum and a float OneHot that writes int bit patterns;
  // the Grad-TTS graphs need both (web/wasm_kernels.js).
  registerWasmKernels(tf, 'wasm');
  return null;
}

// Sets the backend; resolves {backend, fallback}. `fallback` says why auto did not get wasm.
async function selectBackend(requested, wasmDir) {
  if (requested === 'cpu') {
    await tf.setBackend('cpu');
    return {backend: 'cpu', fallback: null};
  }
  let why = registerWasm(wasmDir);
  if (why === null) {
    // setBackend resolves false (after logging the emscripten error) when init fails.
    const warn = console.warn;
    const messages = [];
    console.warn = (...parts) => messages.push(parts.join(' '));
    try {
      if (await tf.setBackend('wasm')) return {backend: 'wasm', fallback: null};
      why = `the wasm backend failed to initialize: ${messages.join('; ') || 'no message'}`;
    } catch (error) {
      why = `the wasm backend failed to initialize: ${error.message || error}`;
    } finally {
      console.warn = warn;
    }
  }
  if (requested === 'wasm') throw new Error(`--backend=wasm: ${why}`);
  await tf.setBackend('cpu');
  return {backend: 'cpu', fallback: why};
}

// "simd" / "simd, 4 threads" / "no simd": which wasm binary runs.
async function wasmFlavor() {
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  const count = threads ? require(WASM_PACKAGE).getThreadsCount() : 1;
  return (simd ? 'simd' : 'no simd') + (count > 1 ? `, ${count} threads` : '');
}

// An IO handler reading model.json and its shards from a folder (tf.io.IOHandler).
function diskHandler(modelDir) {
  return {
    load: async () => {
      const modelJSON = readModelJSON(modelDir);
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const specs = [];
        const buffers = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const shard of group.paths) {
            const bytes = fs.readFileSync(path.join(modelDir, shard));
            buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
          }
        }
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

const TYPED_ARRAYS = {float32: Float32Array, int32: Int32Array};

function readInputs(inputsPath) {
  const spec = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));
  const tensors = {};
  for (const [name, entry] of Object.entries(spec)) {
    const ArrayType = TYPED_ARRAYS[entry.dtype];
    if (!ArrayType) {
      throw new Error(`${inputsPath}: input ${name} has dtype ${entry.dtype}; ` +
                      'use float32 or int32');
    }
    const bytes = fs.readFileSync(path.resolve(path.dirname(inputsPath), entry.file));
    const values = new ArrayType(bytes.buffer.slice(bytes.byteOffset,
                                                    bytes.byteOffset + bytes.length));
    const expected = entry.shape.reduce((a, b) => a * b, 1);
    if (values.length !== expected) {
      throw new Error(`${inputsPath}: input ${name} has ${values.length} values but shape ` +
                      `[${entry.shape}] needs ${expected}`);
    }
    tensors[name] = tf.tensor(values, entry.shape, entry.dtype);
  }
  return tensors;
}

async function writeOutputs(outputs, outDir, summary) {
  fs.mkdirSync(outDir, {recursive: true});
  const description = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    const values = await tensor.data();
    const file = `${name}.bin`;
    fs.writeFileSync(path.join(outDir, file), Buffer.from(values.buffer, values.byteOffset,
                                                          values.byteLength));
    description[name] = {dtype: tensor.dtype, shape: tensor.shape, file};
  }
  fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify(
      Object.assign({outputs: description}, summary), null, 2));
}

// Names the outputs by the model's signature (model.outputs are the node names).
function namedOutputs(model, result) {
  const bare = (name) => name.replace(/:0$/, '');
  const names = model.outputs.map((o) => bare(o.name));
  const list = Array.isArray(result) ? result : [result];
  const signature = (model.modelSignature || model.signature || {}).outputs || {};
  const byNode = {};
  for (const [key, info] of Object.entries(signature)) {
    byNode[bare(info.name)] = key.replace(/:0$/, '');
  }
  const named = {};
  list.forEach((tensor, i) => {
    const node = names[i];
    named[byNode[node] || node] = tensor;
  });
  return named;
}

// The kernel a "Kernel 'X' not registered for backend 'Y'" error names, else null.
function missingKernel(error) {
  const match = /Kernel '([^']+)' not registered for backend '([^']+)'/.exec(
      String((error && error.message) || error));
  return match ? match[1] : null;
}

// Why the graph failed on wasm, in one line.
function wasmFailure(error) {
  const kernel = missingKernel(error);
  if (kernel) return `the graph needs kernel ${kernel}, which the wasm backend lacks`;
  return `the graph failed on the wasm backend: ${String((error && error.message) || error)}`;
}

// --check_ops: the graph's TF ops, the tfjs kernels a CPU run executes (tf.profile), which of
// them the wasm backend does not register, and whether a wasm run then succeeds.
async function checkOps(args) {
  const modelJSON = JSON.parse(fs.readFileSync(path.join(args.model, 'model.json'), 'utf8'));
  const ops = [...new Set(modelJSON.modelTopology.node.map((node) => node.op))].sort();
  await tf.setBackend('cpu');
  let model = await tf.loadGraphModel(diskHandler(args.model));
  let inputs = readInputs(args.inputs);
  const {run} = executor(model, args.model);
  const profile = await tf.profile(() => run(inputs));
  tf.dispose(profile.result);
  // kernelNames also holds the scopes of ops run through customGrad ("fusedConv2d__op"):
  // keep the names the cpu backend registers a kernel for, i.e. the kernels that ran.
  const kernels = [...new Set(profile.kernelNames)]
      .filter((name) => tf.getKernel(name, 'cpu') !== undefined).sort();
  const report = {model: args.model, tf_ops: ops, kernels, wasm: {}};
  const why = registerWasm(args.wasm_dir);
  if (why !== null) {
    report.wasm = {available: false, why};
  } else {
    const registered = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
    report.wasm.missing_kernels = kernels.filter((k) => !registered.has(k));
    report.wasm.added_by_tfspeech = kernels.filter((k) => !stockWasmKernels.includes(k));
    report.wasm.available = await tf.setBackend('wasm');
    if (report.wasm.available) {
      model = await tf.loadGraphModel(diskHandler(args.model));
      inputs = readInputs(args.inputs);
      try {
        tf.dispose(await executor(model, args.model).run(inputs));
        report.wasm.runs = true;
      } catch (error) {
        report.wasm.runs = false;
        report.wasm.error = String(error.message || error);
      }
    }
  }
  console.log(JSON.stringify(report, null, 2));
}

// Runs `warmup` untimed and `repeat` timed calls; resolves {outputs, seconds}.
async function timedCalls(args) {
  const model = await tf.loadGraphModel(diskHandler(args.model));
  const inputs = readInputs(args.inputs);
  const {mode, run: runOnce} = executor(model, args.model);
  const run = () => runOnce(inputs);
  for (let i = 0; i < Number(args.warmup); i++) {
    tf.dispose(await run());
  }
  const seconds = [];
  let result = null;
  for (let i = 0; i < Math.max(1, Number(args.repeat)); i++) {
    if (result) tf.dispose(result);
    const start = process.hrtime.bigint();
    result = await run();
    const tensors = Array.isArray(result) ? result : [result];
    await Promise.all(tensors.map((t) => t.data()));
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  const calls = {outputs: namedOutputs(model, result), seconds, mode};
  if (args.profile) calls.profile = await kernelProfile(run);
  return calls;
}

// Time per kernel of one call (see --profile).
async function kernelProfile(run) {
  const info = await tf.profile(() => run());
  tf.dispose(info.result);
  const byKernel = new Map();
  let total = 0;
  const timed = [];
  for (const kernel of info.kernels) {
    const ms = Number(await kernel.kernelTimeMs) || 0;
    total += ms;
    const entry = byKernel.get(kernel.name) || {kernel: kernel.name, calls: 0, ms: 0};
    entry.calls += 1;
    entry.ms += ms;
    byKernel.set(kernel.name, entry);
    timed.push({kernel: kernel.name, ms, input_shapes: kernel.inputShapes,
                output_shapes: kernel.outputShapes});
  }
  const kernels = [...byKernel.values()].sort((a, b) => b.ms - a.ms);
  for (const entry of kernels) entry.share = total > 0 ? entry.ms / total : 0;
  timed.sort((a, b) => b.ms - a.ms);
  return {total_ms: total, kernels, slowest: timed.slice(0, 20)};
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.check_ops) return checkOps(args);
  let {backend, fallback} = await selectBackend(args.backend, args.wasm_dir);
  const flavor = backend === 'wasm' ? ` (${await wasmFlavor()})` : '';
  let calls;
  try {
    calls = await timedCalls(args);
  } catch (error) {
    if (backend !== 'wasm') throw error;
    // Any failure on wasm (not only a missing kernel): auto runs the graph on cpu instead.
    const why = wasmFailure(error);
    if (args.backend === 'wasm') {
      throw new Error(`--backend=wasm: ${why} (--backend=cpu or auto runs it on cpu)`);
    }
    ({backend, fallback} = {backend: 'cpu', fallback: why});
    console.error(`run_graph_model: wasm failed, running on cpu: ${why}`);
    await tf.setBackend('cpu');
    calls = await timedCalls(args);
  }
  const detail = backend + (backend === 'wasm' ? flavor : '');
  console.error(`run_graph_model: backend ${detail}` +
                (fallback ? `; wasm not used: ${fallback}` : ''));
  const summary = {
    seconds_per_call: calls.seconds, executes: calls.mode, backend, backend_detail: detail,
    fallback,
    tfjs_version: tf.version.tfjs,
  };
  if (calls.profile) summary.profile = calls.profile;
  await writeOutputs(calls.outputs, args.out, summary);
}

main().catch((error) => {
  console.error(`run_graph_model: ${error.message || error}`);
  process.exit(1);
});
