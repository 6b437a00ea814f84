#!/usr/bin/env node
// Runs a converted TFJS graph model in Node with the pure-JS CPU backend of @tensorflow/tfjs.
//
//   node export/js/run_graph_model.js --model=DIR --inputs=inputs.json --out=OUT_DIR \
//       [--repeat=N] [--warmup=N]
//
// DIR holds model.json and its weight shards (tensorflowjs_converter --output_format=
// tfjs_graph_model). `file://` URLs need @tensorflow/tfjs-node, whose install downloads a
// native binary, so the model is read from disk by the small IO handler below instead.
//
// inputs.json: {"NAME": {"dtype": "float32"|"int32", "shape": [..], "file": "NAME.bin"}, ..}
// with each file the tensor's raw little-endian values in row-major order (NumPy
// `array.tofile`), paths relative to inputs.json. NAME is a signature input name
// ("mel", "text_ids", ...).
//
// OUT_DIR receives NAME.bin per output and outputs.json {"outputs": {NAME: {dtype, shape,
// file}}, "seconds_per_call": [...], "backend": "cpu"}. With --repeat=N the model runs N
// timed calls after --warmup untimed ones; the outputs are those of the last call.
//
// The graphs tfspeech exports are loop-free, so `execute` (synchronous) runs them; a graph
// with control flow would make tfjs demand `executeAsync`, which is reported as an error.

'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

function parseArgs(argv) {
  const args = {repeat: '1', warmup: '0'};
  for (const arg of argv) {
    const match = /^--([a-z_]+)=(.*)$/.exec(arg);
    if (!match) {
      throw new Error(`unexpected argument ${JSON.stringify(arg)}; use --name=value`);
    }
    args[match[1]] = match[2];
  }
  for (const required of ['model', 'inputs', 'out']) {
    if (!args[required]) {
      throw new Error(`--${required} is required (see the header of run_graph_model.js)`);
    }
  }
  return args;
}

// An IO handler reading model.json and its shards from a folder (tf.io.IOHandler).
function diskHandler(modelDir) {
  return {
    load: async () => {
      const jsonPath = path.join(modelDir, 'model.json');
      if (!fs.existsSync(jsonPath)) {
        throw new Error(`${jsonPath} not found: --model must be a tfjs_graph_model folder`);
      }
      const modelJSON = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
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

async function writeOutputs(outputs, outDir, secondsPerCall) {
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
      {outputs: description, seconds_per_call: secondsPerCall, backend: tf.getBackend(),
       tfjs_version: tf.version.tfjs}, null, 2));
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

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await tf.setBackend('cpu');
  const model = await tf.loadGraphModel(diskHandler(args.model));
  const inputs = readInputs(args.inputs);
  const run = () => model.execute(inputs);
  for (let i = 0; i < Number(args.warmup); i++) {
    tf.dispose(run());
  }
  const seconds = [];
  let result = null;
  for (let i = 0; i < Math.max(1, Number(args.repeat)); i++) {
    if (result) tf.dispose(result);
    const start = process.hrtime.bigint();
    result = run();
    const tensors = Array.isArray(result) ? result : [result];
    await Promise.all(tensors.map((t) => t.data()));
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  await writeOutputs(namedOutputs(model, result), args.out, seconds);
}

main().catch((error) => {
  console.error(`run_graph_model: ${error.message || error}`);
  process.exit(1);
});
