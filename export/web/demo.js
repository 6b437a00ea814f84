// The tfspeech browser demo: loads an exported TFJS model folder (metadata.json + graph
// models), tokenizes the typed text with the model's symbol table, synthesizes, plays the
// audio with WebAudio and draws the mel spectrogram. While the audio plays, the word being
// spoken is highlighted: the graph's `durations` output (frames per id) timed through the
// tokenizer's id → word mapping (TfspeechTokenizer.wordTimes, the rules of
// tfspeech.text.timestamps); each result carries its `durations` and `words`
// ({word, start, end, char_start, char_end}, seconds and UTF-16 offsets into the text).
//
// URL parameters: model=FOLDER/ (default "model/"), threads=N (wasm threads, when the page is
// cross-origin isolated), backend=auto|wasm|cpu|webgl (default
// auto: the WebAssembly backend, @tensorflow/tfjs-backend-wasm, whose .wasm binaries the server
// serves from vendor/, and the pure-JS cpu backend when wasm cannot load or the graph fails on
// it for any reason (a kernel it lacks, a kernel rejecting its inputs); an explicit
// backend=wasm fails instead of falling back). The page shows the backend that ran, and after
// a fallback why, and the backend= parameter. Each synthesis offers the audio as a WAV
// download and reports the real-time factor as wall seconds / audio seconds (< 1 is faster
// than real time), the convention of tfspeech-synthesize and tfspeech-vocode.
// A fixed-shape TFLite export (`tfspeech-export --format=tflite --fixed_shapes=tokens=T,frames=F`,
// metadata.json `fixed_shapes`) runs with LiteRT.js instead (litert_runtime.js; threaded where
// the page is cross-origin isolated): text ids are padded to T, noise is F frames, and the
// outputs (padded to F frames) are cut at their lengths as with TFJS; a text longer than T ids
// is an error, an utterance longer than F frames plays cut at F and the status says so.
// The page says which runtime ran (`runtime`).
// `window.tfspeechDemo` exposes `ready` (a Promise), `synthesize(text)`, `lastResult`,
// `lastWav` (the WAV Blob), `lastArrays` (the last synthesis's text_ids, noise, mel and audio
// as {values: typed array, shape}), `runtime` ("tfjs" or "litertjs"), `backend` and `backendFallback`
// (why auto did not get wasm) for scripted use and tests.

(function () {
  'use strict';

  const params = new URLSearchParams(window.location.search);
  const modelBase = (params.get('model') || 'model/').replace(/\/?$/, '/');
  const $ = (id) => document.getElementById(id);

  function setStatus(message, isError) {
    $('status').textContent = message;
    $('status').className = isError ? 'error' : '';
  }

  // Seeded standard normal noise (mulberry32 + Box-Muller): the same seed gives the same
  // speech, as the noise input makes the graph deterministic.
  function normalNoise(count, seed) {
    let state = (seed >>> 0) || 0x9e3779b9;
    const uniform = () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
    };
    const values = new Float32Array(count);
    for (let i = 0; i < count; i += 2) {
      const radius = Math.sqrt(-2 * Math.log(uniform()));
      const angle = 2 * Math.PI * uniform();
      values[i] = radius * Math.cos(angle);
      if (i + 1 < count) values[i + 1] = radius * Math.sin(angle);
    }
    return values;
  }

  // Output tensors of model.execute named by the model's signature.
  function namedOutputs(model, result) {
    const list = Array.isArray(result) ? result : [result];
    const bare = (name) => name.replace(/:0$/, '');
    const byNode = {};
    const signature = (model.modelSignature || {}).outputs || {};
    for (const [key, info] of Object.entries(signature)) byNode[bare(info.name)] = key;
    const named = {};
    model.outputs.forEach((output, i) => { named[byNode[bare(output.name)] || output.name] = list[i]; });
    return named;
  }

  function drawMel(values, frames, bins) {
    const canvas = $('mel');
    canvas.width = Math.max(frames, 1);
    canvas.height = bins;
    const context = canvas.getContext('2d');
    const image = context.createImageData(canvas.width, bins);
    let low = Infinity;
    let high = -Infinity;
    for (let i = 0; i < frames * bins; i++) {
      low = Math.min(low, values[i]);
      high = Math.max(high, values[i]);
    }
    const span = high - low || 1;
    for (let frame = 0; frame < frames; frame++) {
      for (let bin = 0; bin < bins; bin++) {
        const level = (values[frame * bins + bin] - low) / span;
        const pixel = ((bins - 1 - bin) * canvas.width + frame) * 4;  // low bins at the bottom
        image.data[pixel] = Math.round(255 * Math.min(1, 1.6 * level));
        image.data[pixel + 1] = Math.round(255 * level * level);
        image.data[pixel + 2] = Math.round(255 * (0.35 + 0.4 * level) * (1 - level));
        image.data[pixel + 3] = 255;
      }
    }
    context.putImageData(image, 0, 0);
  }

  function play(samples, sampleRate) {
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    const context = new AudioContextClass({sampleRate});
    const buffer = context.createBuffer(1, samples.length, sampleRate);
    buffer.copyToChannel(samples, 0);
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    source.start();
    return {context, buffer};
  }

  // The text with one <span class="word"> per timed word (the text between words as is).
  function renderWords(text, words) {
    const box = $('words');
    box.textContent = '';
    let position = 0;
    for (const word of words) {
      box.append(text.slice(position, word.char_start));
      const span = document.createElement('span');
      span.className = 'word';
      span.textContent = text.slice(word.char_start, word.char_end);
      span.title = `${word.start.toFixed(2)}–${word.end.toFixed(2)} s`;
      box.append(span);
      position = word.char_end;
    }
    box.append(text.slice(position));
    return box.querySelectorAll('span.word');
  }

  // Marks the word spoken at `seconds` (none in the pauses between words); returns its index
  // or -1.
  function highlightAt(spans, words, seconds) {
    let current = -1;
    words.forEach((word, i) => {
      if (word.start <= seconds && seconds < word.end) current = i;
    });
    spans.forEach((span, i) => span.classList.toggle('spoken', i === current));
    return current;
  }

  let highlightRun = 0;

  // Follows the playing audio's clock until it ends, then clears the highlight.
  function followPlayback(context, duration, spans, words, startTime) {
    const run = ++highlightRun;
    const begin = startTime == null ? context.currentTime : startTime;
    const step = () => {
      if (run !== highlightRun) return;  // A newer synthesis took over.
      const seconds = context.currentTime - begin;
      highlightAt(spans, words, seconds);
      if (seconds < duration) {
        requestAnimationFrame(step);
      } else {
        highlightAt(spans, words, -1);
      }
    };
    requestAnimationFrame(step);
  }

  // "simd" / "simd, 2 threads" / "no simd": which wasm binary the backend loaded.
  async function wasmFlavor() {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    const count = threads ? tf.wasm.getThreadsCount() : 1;
    window.tfspeechDemo.wasm = {simd, multithreadSupport: threads, threads: count};
    return (simd ? 'simd' : 'no simd') + (count > 1 ? `, ${count} threads` : '');
  }

  // Sets the backend the URL asks for; returns null, or why "auto" fell back to cpu.
  async function chooseBackend(requested) {
    if (requested !== 'auto' && requested !== 'wasm') {
      if (!(await tf.setBackend(requested))) throw new Error(`backend ${requested} failed to load`);
      return null;
    }
    let why = null;
    if (!tf.wasm || !tf.findBackendFactory('wasm')) {
      why = 'the wasm backend script (vendor/tf-backend-wasm.min.js) did not load';
    } else {
      // The server serves the three .wasm binaries of the npm package under vendor/.
      tf.wasm.setWasmPaths(new URL('vendor/', window.location.href).href);
      // threads=N: the multi-threaded binary's pool size (it needs cross-origin isolation,
      // which serve_demo.js sets up; tfjs's default is about half the cores, at most 4).
      if (params.get('threads')) tf.wasm.setThreadsCount(Number(params.get('threads')));
      // tfjs-backend-wasm 4.22 has no Einsum and a float OneHot that writes int bit patterns;
      // Grad-TTS's attention needs both (wasm_kernels.js).
      TfspeechWasmKernels.registerWasmKernels(tf, 'wasm');
      try {
        if (await tf.setBackend('wasm')) return null;
        why = 'the wasm backend failed to initialize (see the console)';
      } catch (error) {
        why = `the wasm backend failed to initialize: ${error.message || error}`;
      }
    }
    if (requested === 'wasm') throw new Error(`backend=wasm: ${why}`);
    console.warn(`tfspeech demo: running on cpu because ${why}`);
    await tf.setBackend('cpu');
    return why;
  }

  async function describeBackend() {
    const name = tf.getBackend();
    return name === 'wasm' ? `wasm (${await wasmFlavor()})` : name;
  }

  // Why the graph failed on wasm, in one line.
  function wasmFailure(error) {
    const text = String(error.message || error);
    const match = /Kernel '([^']+)' not registered for backend/.exec(text);
    if (match) return `the graph needs kernel ${match[1]}, which the wasm backend lacks`;
    return `the graph failed on the wasm backend: ${text}`;
  }

  // 16-bit PCM mono WAV of float samples in [-1, 1] (clipped).
  function wavBlob(samples, sampleRate) {
    const bytes = new ArrayBuffer(44 + 2 * samples.length);
    const view = new DataView(bytes);
    const text = (offset, value) => {
      for (let i = 0; i < value.length; i++) view.setUint8(offset + i, value.charCodeAt(i));
    };
    text(0, 'RIFF');
    view.setUint32(4, 36 + 2 * samples.length, true);
    text(8, 'WAVE');
    text(12, 'fmt ');
    view.setUint32(16, 16, true);  // PCM format chunk size
    view.setUint16(20, 1, true);  // PCM
    view.setUint16(22, 1, true);  // mono
    view.setUint32(24, sampleRate, true);
    view.setUint32(28, 2 * sampleRate, true);  // bytes per second
    view.setUint16(32, 2, true);  // bytes per frame
    view.setUint16(34, 16, true);  // bits per sample
    text(36, 'data');
    view.setUint32(40, 2 * samples.length, true);
    for (let i = 0; i < samples.length; i++) {
      const sample = Math.max(-1, Math.min(1, samples[i]));
      view.setInt16(44 + 2 * i, Math.round(sample * 32767), true);
    }
    return new Blob([bytes], {type: 'audio/wav'});
  }

  // Points the download link at a WAV of `samples` (the previous one's URL is released).
  function offerDownload(samples, sampleRate) {
    const blob = wavBlob(samples, sampleRate);
    const link = $('download');
    if (link.href && link.href.startsWith('blob:')) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.hidden = false;
    window.tfspeechDemo.lastWav = blob;
    return blob.size;
  }

  // One number field per control the model takes as a graph input (metadata.json
  // "controls"; static ones are fixed in the graphs), starting at its recommended value.
  function renderControls(metadata) {
    const box = $('controls');
    box.textContent = '';
    for (const [name, control] of Object.entries(metadata.controls || {})) {
      if (control.static) continue;
      const label = document.createElement('label');
      label.title = control.help;
      label.append(`${name.replace(/_/g, ' ')} `);
      const input = document.createElement('input');
      input.id = `control_${name}`;
      input.type = 'number';
      input.value = String(control.recommended);
      input.step = control.dtype === 'int32' ? '1' : '0.1';
      label.append(input);
      box.append(label);
    }
  }

  // The dynamic controls as scalar inputs: the page's field, else the recommended value.
  function controlInputs(metadata) {
    const inputs = {};
    for (const [name, control] of Object.entries(metadata.controls || {})) {
      if (control.static) continue;
      const field = $(`control_${name}`);
      const value = field && field.value !== '' && Number.isFinite(Number(field.value))
          ? Number(field.value) : control.recommended;
      inputs[name] = tf.scalar(value, control.dtype);
    }
    return inputs;
  }

  async function loadModels(metadata, names) {
    const graphs = metadata.graphs;
    const models = {};
    for (const name of names) models[name] = await tf.loadGraphModel(modelBase + graphs[name].file);
    return models;
  }

  async function load() {
    const requested = params.get('backend') || 'auto';
    window.tfspeechDemo.backendFallback = await chooseBackend(requested);
    window.tfspeechDemo.requestedBackend = requested;
    await tf.ready();
    window.tfspeechDemo.backend = await describeBackend();
    const response = await fetch(modelBase + 'metadata.json');
    if (!response.ok) throw new Error(`${modelBase}metadata.json: HTTP ${response.status}`);
    const metadata = await response.json();
    const graphs = metadata.graphs || {};
    // stream_player.js: text_to_mel + mel_chunk_to_audio when the export streams.
    const names = (window.TfspeechStreamPlayer && TfspeechStreamPlayer.graphNames(metadata)) ||
        (graphs.text_to_audio ? ['text_to_audio']
        : (graphs.text_to_mel && graphs.mel_to_audio ? ['text_to_mel', 'mel_to_audio'] : null));
    if (!names) {
      throw new Error('metadata.json has neither text_to_audio nor text_to_mel + mel_to_audio; ' +
                      'export with tfspeech-export --format=tfjs --vocoder=VOCODER_RUN');
    }
    const tokenizer = new TfspeechTokenizer.Tokenizer(metadata);
    if (metadata.fixed_shapes) {
      // TFJS keeps the page's tensors; LiteRT.js runs the graphs.
      const lite = await TfspeechLiteRt.load({threads: window.crossOriginIsolated});
      const models = {};
      for (const name of names) {
        models[name] = await TfspeechLiteRt.loadModel(modelBase + graphs[name].file);
      }
      window.tfspeechDemo.runtime = 'litertjs';
      window.tfspeechDemo.backend = `LiteRT.js (${lite.binary})`;
      return {metadata, names, models, tokenizer, litert: true};
    }
    const models = await loadModels(metadata, names);
    return {metadata, names, models, tokenizer};
  }

  // A fixed-shape export in LiteRT.js: tf tensors in (text_ids padded to fixed_shapes.tokens;
  // noise already fixed_shapes.frames long), tf tensors out, so the rest of the page is the
  // TFJS path's.
  async function runLiteRt(models, inputs, fixedShapes) {
    const ids = inputs.text_ids.shape[1];
    if (ids > fixedShapes.tokens) {
      throw new Error(`the text has ${ids} ids but this fixed-shape export takes at most ` +
                      `${fixedShapes.tokens} (tfspeech-export --fixed_shapes=tokens=); ` +
                      'shorten the text');
    }
    const host = (tensor) => ({values: tensor.dataSync(), shape: tensor.shape});
    const fixed = {};
    for (const [name, tensor] of Object.entries(inputs)) fixed[name] = host(tensor);
    const padded = new Int32Array(fixedShapes.tokens);
    padded.set(fixed.text_ids.values);
    fixed.text_ids = {values: padded, shape: [1, fixedShapes.tokens]};
    let out;
    if (models.text_to_audio) {
      out = await models.text_to_audio.run(fixed);
    } else {
      out = await models.text_to_mel.run(fixed);
      Object.assign(out, await models.mel_to_audio.run({mel: out.mel,
                                                        mel_lengths: out.mel_lengths}));
    }
    const tensors = {};
    for (const [name, {values, shape, dtype}] of Object.entries(out)) {
      tensors[name] = tf.tensor(values, Array.from(shape), dtype);
    }
    return tensors;
  }

  let loaded = null;

  // Runs the graphs; with backend=auto, any failure on wasm (a kernel it lacks, a kernel that
  // rejects its inputs) moves the page to cpu (models reloaded there) and says so, instead of
  // failing. An explicit backend=wasm fails, and the error names the way out.
  async function synthesize(text) {
    try {
      return await synthesizeOnce(text);
    } catch (error) {
      if (loaded.litert || tf.getBackend() !== 'wasm') throw error;
      const why = wasmFailure(error);
      if (window.tfspeechDemo.requestedBackend !== 'auto') {
        throw new Error(`${why} (backend=wasm was asked for; open the page with ?backend=auto ` +
                        'or ?backend=cpu to run on cpu)');
      }
      console.warn(`tfspeech demo: running on cpu because ${why}`);
      await tf.setBackend('cpu');
      loaded.models = await loadModels(loaded.metadata, loaded.names);
      window.tfspeechDemo.backendFallback = why;
      window.tfspeechDemo.backend = await describeBackend();
      showBackend();
      return synthesizeOnce(text);
    }
  }

  function showBackend() {
    const demo = window.tfspeechDemo;
    $('backend').textContent = `${demo.runtime === 'litertjs' ? 'Runtime' : 'Backend'}: ` +
        `${demo.backend}` +
        (demo.backendFallback ? ` (wasm not used: ${demo.backendFallback}). Choose one with ` +
         'the URL parameter ?backend=auto|wasm|cpu (wasm: fail instead of falling back).' : '');
  }

  async function synthesizeOnce(text) {
    const {metadata, models, tokenizer} = loaded;
    const encoded = tokenizer.align(text);
    const special = new Set([tokenizer.blankId, tokenizer.bosId, tokenizer.eosId, tokenizer.padId]);
    if (!encoded.ids.some((id) => !special.has(id))) {
      throw new Error('nothing to say: no character of the text is in the model\'s symbol table');
    }
    const nMels = metadata.n_mels;
    const seed = Number($('seed').value) || 0;
    const inputs = {
      text_ids: tf.tensor2d([encoded.ids], [1, encoded.ids.length], 'int32'),
      text_lengths: tf.tensor1d([encoded.ids.length], 'int32'),
      ...controlInputs(metadata),
    };
    let noise = null;  // the noise input's values (lastArrays)
    if (metadata.noise) {
      // The model repeats shorter noise; this many frames cover typical speech.
      const channels = metadata.noise.channels;
      const noiseFrames = metadata.fixed_shapes ? metadata.fixed_shapes.frames
          : Math.max(16, encoded.ids.length * metadata.noise.frames_hint_per_token);
      noise = normalNoise(noiseFrames * channels, seed);
      inputs.noise = tf.tensor3d(noise, [1, noiseFrames, channels]);
    }
    if (metadata.num_speakers > 1) inputs.speaker = tf.tensor1d([0], 'int32');
    const start = performance.now();
    let out;
    let streamed = null;  // stream_player.js's result: audio already playing chunk by chunk
    // executeAsync runs every exported graph; the synchronous execute throws on the
    // decoding loops of autoregressive models (Tacotron 2, DC-TTS).
    if (loaded.litert) {
      out = await runLiteRt(models, inputs, metadata.fixed_shapes);
    } else if (models.text_to_audio) {
      out = namedOutputs(models.text_to_audio, await models.text_to_audio.executeAsync(inputs));
    } else {
      out = namedOutputs(models.text_to_mel, await models.text_to_mel.executeAsync(inputs));
      if (models.mel_chunk_to_audio) {
        // ?first_chunk=16&chunk=32&growth=1.5: the chunk schedule (stream_player.js's
        // defaults); &delay=0: no start delay for the later chunks.
        const schedule = {firstChunkFrames: Number(params.get('first_chunk')) || undefined,
                          chunkFrames: Number(params.get('chunk')) || undefined,
                          growth: Number(params.get('growth')) || undefined,
                          delay: params.get('delay') !== '0'};
        streamed = await TfspeechStreamPlayer.vocode(tf, models.mel_chunk_to_audio, metadata,
                                                     out, start, schedule);
        Object.assign(out, streamed.outputs);
      } else {
        Object.assign(out, namedOutputs(models.mel_to_audio, await models.mel_to_audio.executeAsync(
            {mel: out.mel, mel_lengths: out.mel_lengths})));
      }
    }
    const melLength = (await out.mel_lengths.data())[0];
    const audioLength = out.audio_lengths ? (await out.audio_lengths.data())[0]
                                          : melLength * metadata.hop_length;
    const audio = (await out.audio.data()).slice(0, audioLength);
    const mel = (await out.mel.data()).slice(0, melLength * nMels);
    const durations = Array.from((await out.durations.data()).slice(0, encoded.ids.length));
    // A fixed-shape export cuts an utterance longer than its frames (output `clipped`).
    const clipped = out.clipped ? (await out.clipped.data())[0] === 1 : false;
    const seconds = (performance.now() - start) / 1000;
    tf.dispose(Object.values(inputs).concat(Object.values(out)));
    drawMel(mel, melLength, nMels);
    // What went in and came out, for checks against the TF graphs (check_web_demo.js --out).
    window.tfspeechDemo.lastArrays = {
      text_ids: {values: Int32Array.from(encoded.ids), shape: [1, encoded.ids.length]},
      mel: {values: mel, shape: [1, melLength, nMels]},
      audio: {values: audio, shape: [1, audio.length]},
    };
    if (noise) {
      window.tfspeechDemo.lastArrays.noise = {values: noise, shape: inputs.noise.shape};
    }
    const wavBytes = offerDownload(audio, metadata.sample_rate);
    const words = TfspeechTokenizer.wordTimes(encoded, durations, metadata.hop_length,
                                              metadata.sample_rate);
    const spans = renderWords(text, words);
    // Which word each word's midpoint highlights (a check of the page's own highlighting).
    const highlighted = words.map((w) => highlightAt(spans, words, (w.start + w.end) / 2));
    highlightAt(spans, words, -1);
    let played = false;
    try {
      const {context} = streamed && streamed.context ? streamed : play(audio, metadata.sample_rate);
      played = true;
      followPlayback(context, audio.length / metadata.sample_rate, spans, words,
                     streamed && streamed.startTime);
    } catch (error) {
      console.warn('WebAudio playback failed:', error);
    }
    let energy = 0;
    let peak = 0;
    for (const sample of audio) {
      energy += sample * sample;
      peak = Math.max(peak, Math.abs(sample));
    }
    const audioSeconds = audio.length / metadata.sample_rate;
    return {
      ids: encoded.ids, unknown: encoded.unknown, melFrames: melLength, durations, words, clipped,
      highlighted, wordSpans: spans.length,
      samples: audio.length, sampleRate: metadata.sample_rate,
      rms: Math.sqrt(energy / Math.max(audio.length, 1)), peak, played,
      // Wall seconds per audio second, as tfspeech-synthesize and tfspeech-vocode print it.
      seconds, realTimeFactor: seconds / Math.max(audioSeconds, 1e-9), wavBytes,
      firstAudioMs: streamed ? streamed.firstAudioMs : null, melMs: streamed && streamed.melMs,
      chunks: streamed && streamed.chunks, chunkMs: streamed && streamed.chunkMs,
      delayMs: streamed && streamed.delayMs,
      chunkFrames: streamed && streamed.chunkFrames, underruns: streamed && streamed.underruns,
      gapMs: streamed && streamed.gapMs,
      runtime: window.tfspeechDemo.runtime,
      backend: loaded.litert ? window.tfspeechDemo.backend : tf.getBackend(),
      backendDetail: window.tfspeechDemo.backend,
      backendFallback: window.tfspeechDemo.backendFallback,
    };
  }

  async function onSynthesize() {
    $('synthesize').disabled = true;
    setStatus('Synthesizing…');
    try {
      const result = await synthesize($('text').value);
      window.tfspeechDemo.lastResult = result;
      const dropped = Object.keys(result.unknown);
      setStatus(`${(result.samples / result.sampleRate).toFixed(2)} s of audio in ` +
                `${result.seconds.toFixed(2)} s: real-time factor ` +
                `${result.realTimeFactor.toFixed(3)} (${result.backend})` +
                (result.clipped ? `; cut at ${result.melFrames} mel frames (the export's ` +
                 'fixed_shapes): shorten the text' : '') +
                (dropped.length ? `; dropped characters: ${dropped.join(' ')}` : ''));
      $('details').textContent = `${result.ids.length} ids, ${result.melFrames} mel frames, ` +
          `${result.samples} samples at ${result.sampleRate} Hz`;
    } catch (error) {
      window.tfspeechDemo.lastError = String(error.message || error);
      setStatus(`Error: ${window.tfspeechDemo.lastError}`, true);
      $('download').hidden = true;
    } finally {
      $('synthesize').disabled = false;
    }
  }

  window.tfspeechDemo = {lastResult: null, lastError: null, synthesize: (t) => synthesize(t),
                        lastWav: null, lastArrays: null, backend: null, backendFallback: null,
                        requestedBackend: null, wasm: null, runtime: 'tfjs'};
  window.tfspeechDemo.ready = load().then((result) => {
    loaded = result;
    const m = result.metadata;
    renderControls(m);
    setStatus(`Ready: ${m.model} (${m.preset})` +
              (m.vocoder ? ` + ${m.vocoder.model} (${m.vocoder.preset})` : '') +
              `, ${m.sample_rate} Hz, ` +
              `${result.litert ? 'runtime' : 'backend'} ${window.tfspeechDemo.backend}.`);
    showBackend();
    $('synthesize').disabled = false;
    $('synthesize').addEventListener('click', onSynthesize);
  }).catch((error) => {
    window.tfspeechDemo.lastError = String(error.message || error);
    setStatus(`Could not load the model: ${window.tfspeechDemo.lastError}`, true);
  });
})();
