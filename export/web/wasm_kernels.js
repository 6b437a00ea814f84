// Kernels the TensorFlow.js WebAssembly backend (@tensorflow/tfjs-backend-wasm 4.22.0) lacks
// or gets wrong, for graphs that use them:
//
//   TfspeechWasmKernels.registerWasmKernels(tf);   // before tf.setBackend('wasm')
//
// tfspeech's own exports no longer need either (Grad-TTS writes its attention as transposes
// and batched matmuls and builds its one-hot as int32, then casts), so they run on the stock
// backend; these kernels keep exports of older tfspeech versions, and other graphs, working:
// * Einsum: the backend registers none; tfjs stops with "Kernel 'Einsum' not registered for
//   backend 'wasm'". (Earlier Grad-TTS graphs held 48 Einsum nodes.)
// * OneHot with a float output: the backend's kernel writes the int32 bit patterns of
//   on/off into a float32 tensor (1 reads as 1.4e-45), which silently broke the text
//   encoder's relative-position one-hot (different durations, hence lengths, than TF). It is
//   right for int32, so the float case runs it as int32 with on=1, off=0, casts, and applies
//   off + (on - off) * x.
//
// The Einsum kernel lowers a one- or two-operand equation the way TensorFlow's own does
// (tensorflow/core/kernels/linalg/einsum_op_impl.h): letters of one operand that neither the
// other nor the output has are summed away; the rest are batch (both operands and the
// output), contracted (both operands only) or free (one operand and the output); each operand
// is transposed to [batch, free, contracted] / [batch, contracted, free], reshaped to rank 3,
// multiplied with the backend's BatchMatMul (XNNPACK in wasm), reshaped and transposed to the
// output's order. Only the backend's own kernels run, so no data leaves the wasm heap. Not
// supported (a clear error): ellipsis "...", a letter repeated within one operand
// (diagonals), more than two operands, size-1 broadcasting.
//
// Works as a browser script (window.TfspeechWasmKernels) and as a CommonJS module.

(function (root) {
  'use strict';

  // "bhid,bhjd->bhij" → {operands: ['bhid', 'bhjd'], output: 'bhij'}. Without "->" the
  // output is every letter that appears once, in alphabetical order (numpy's implicit mode).
  function parseEquation(equation, count) {
    const clean = equation.replace(/\s+/g, '');
    if (clean.includes('.')) throw new Error(`Einsum ${equation}: ellipsis is not supported`);
    const [left, output] = clean.includes('->') ? clean.split('->') : [clean, null];
    const operands = left.split(',');
    if (operands.length !== count) {
      throw new Error(`Einsum ${equation}: ${operands.length} operands in the equation, ` +
                      `${count} given`);
    }
    if (count > 2) throw new Error(`Einsum ${equation}: more than two operands`);
    for (const subscripts of operands.concat(output === null ? [] : [output])) {
      if (new Set(subscripts).size !== subscripts.length) {
        throw new Error(`Einsum ${equation}: repeated letter in "${subscripts}" (diagonal)`);
      }
    }
    const counts = {};
    for (const letter of operands.join('')) counts[letter] = (counts[letter] || 0) + 1;
    const implicit = Object.keys(counts).filter((l) => counts[l] === 1).sort().join('');
    return {operands, output: output === null ? implicit : output};
  }

  function product(values) {
    return values.reduce((a, b) => a * b, 1);
  }

  // Runs the backend's kernels; `temporaries` collects what to dispose at the end.
  function makeOps(tf, backend, backendName, temporaries) {
    const run = (name, inputs, attrs) => {
      const kernel = tf.getKernel(name, backendName);
      if (!kernel) throw new Error(`Einsum needs kernel ${name} on backend ${backendName}`);
      const out = kernel.kernelFunc({inputs, backend, attrs});
      temporaries.push(out);
      return out;
    };
    return {
      transpose: (x, perm) => (perm.every((p, i) => p === i) ? x
                                                             : run('Transpose', {x}, {perm})),
      reshape: (x, shape) => run('Reshape', {x}, {shape}),
      sum: (x, axis) => run('Sum', {x}, {axis, keepDims: false}),
      matMul: (a, b) => run('BatchMatMul', {a, b}, {transposeA: false, transposeB: false}),
    };
  }

  // One operand with its subscripts: sums the letters `keep` lacks.
  function sumAway(ops, tensor, subscripts, keep) {
    const axes = [];
    let rest = '';
    [...subscripts].forEach((letter, axis) => {
      if (keep.includes(letter)) rest += letter; else axes.push(axis);
    });
    return axes.length ? {tensor: ops.sum(tensor, axes), subscripts: rest}
                       : {tensor, subscripts};
  }

  function einsum(tf, backend, backendName, equation, inputs) {
    const {operands, output} = parseEquation(equation, inputs.length);
    const temporaries = [];
    const ops = makeOps(tf, backend, backendName, temporaries);
    const sizes = {};
    inputs.forEach((tensor, i) => {
      if (tensor.shape.length !== operands[i].length) {
        throw new Error(`Einsum ${equation}: operand ${i} has rank ${tensor.shape.length}`);
      }
      [...operands[i]].forEach((letter, axis) => {
        const size = tensor.shape[axis];
        if (letter in sizes && sizes[letter] !== size) {
          throw new Error(`Einsum ${equation}: "${letter}" is ${sizes[letter]} and ${size}`);
        }
        sizes[letter] = size;
      });
    });
    let result;
    if (inputs.length === 1) {
      const reduced = sumAway(ops, inputs[0], operands[0], output);
      result = ops.transpose(reduced.tensor,
                             [...output].map((l) => reduced.subscripts.indexOf(l)));
    } else {
      const a = sumAway(ops, inputs[0], operands[0], operands[1] + output);
      const b = sumAway(ops, inputs[1], operands[1], a.subscripts + output);
      const inA = (l) => a.subscripts.includes(l);
      const inB = (l) => b.subscripts.includes(l);
      const batch = [...output].filter((l) => inA(l) && inB(l));
      const freeA = [...output].filter((l) => inA(l) && !inB(l));
      const freeB = [...output].filter((l) => inB(l) && !inA(l));
      const contracted = [...a.subscripts].filter((l) => inB(l) && !output.includes(l));
      const dims = (letters) => letters.map((l) => sizes[l]);
      const [nBatch, nA, nB, nK] = [batch, freeA, freeB, contracted].map(
          (letters) => product(dims(letters)));
      const axesOf = (letters, subscripts) => letters.map((l) => subscripts.indexOf(l));
      const left = ops.reshape(
          ops.transpose(a.tensor, axesOf(batch.concat(freeA, contracted), a.subscripts)),
          [nBatch, nA, nK]);
      const right = ops.reshape(
          ops.transpose(b.tensor, axesOf(batch.concat(contracted, freeB), b.subscripts)),
          [nBatch, nK, nB]);
      const order = batch.concat(freeA, freeB);
      const product3 = ops.reshape(ops.matMul(left, right), dims(order));
      result = ops.transpose(product3, [...output].map((l) => order.indexOf(l)));
    }
    // The result may share its dataId with a temporary (Reshape); keep one reference.
    for (const temporary of temporaries) {
      if (temporary !== result) backend.disposeData(temporary.dataId);
    }
    if (!temporaries.includes(result)) {
      // No kernel ran (an identity equation): hand back a new reference to the input.
      backend.incRef(result.dataId);
      result = {dataId: result.dataId, shape: result.shape.slice(), dtype: result.dtype};
    }
    return result;
  }

  // Runs the backend's own kernel `name`.
  function runKernel(tf, backend, backendName, name, inputs, attrs) {
    const kernel = tf.getKernel(name, backendName);
    if (!kernel) throw new Error(`kernel ${name} is not registered for ${backendName}`);
    return kernel.kernelFunc({inputs, backend, attrs});
  }

  // OneHot that is right for every output dtype, around the backend's int32-only kernel.
  function fixedOneHot(tf, backendName, intOneHot) {
    return ({inputs, backend, attrs}) => {
      const {dtype, depth, onValue, offValue} = attrs;
      if (dtype === 'int32') return intOneHot({inputs, backend, attrs});
      const run = (name, ins, at) => runKernel(tf, backend, backendName, name, ins, at);
      const ints = intOneHot({inputs, backend, attrs: {dtype: 'int32', depth, onValue: 1,
                                                       offValue: 0}});
      const ones = run('Cast', {x: ints}, {dtype});
      backend.disposeData(ints.dataId);
      if (onValue === 1 && offValue === 0) return ones;
      const scale = run('Fill', {}, {shape: [], value: onValue - offValue, dtype});
      const shift = run('Fill', {}, {shape: [], value: offValue, dtype});
      const scaled = run('Multiply', {a: ones, b: scale});
      const out = run('Add', {a: scaled, b: shift});
      for (const t of [ones, scale, shift, scaled]) backend.disposeData(t.dataId);
      return out;
    };
  }

  // Registers Einsum and the fixed OneHot for `backendName` (default "wasm"), once. Returns
  // the kernel names it (re)registered.
  function registerWasmKernels(tf, backendName) {
    const name = backendName || 'wasm';
    const done = [];
    if (!tf.getKernel('Einsum', name)) {
      tf.registerKernel({
        kernelName: 'Einsum', backendName: name,
        kernelFunc: ({inputs, backend, attrs}) => einsum(
            tf, backend, name, attrs.equation,
            Array.isArray(inputs) ? inputs : Object.values(inputs)),
      });
      done.push('Einsum');
    }
    const oneHot = tf.getKernel('OneHot', name);
    if (oneHot && !oneHot.tfspeechFixed) {
      tf.unregisterKernel('OneHot', name);
      // setupFunc binds the C++ function when the backend initializes: keep it.
      tf.registerKernel(Object.assign({}, oneHot, {
        tfspeechFixed: true, kernelFunc: fixedOneHot(tf, name, oneHot.kernelFunc)}));
      done.push('OneHot');
    }
    return done;
  }

  const api = {registerWasmKernels, parseEquation};
  if (typeof module !== 'undefined' && module.exports) {
    module.exports = api;
  } else {
    root.TfspeechWasmKernels = api;
  }
})(typeof window !== 'undefined' ? window : globalThis);
