// The demo's forced aligner: record or drop a WAV, type what it says, and see each word placed
// on the waveform. Runs the exported `align` graph (tfspeech-align --export=FOLDER
// --format=tfjs, into the demo's model folder): audio samples + text ids → log-mel, text
// encoder, monotonic alignment search, all in the graph → frames per token (`durations`),
// timed into words by the same tokenizer mapping the synthesis highlighting uses
// (TfspeechTokenizer.wordTimes, the rules of tfspeech.text.timestamps).
//
// Audio is decoded by the browser (any format it plays) at the model's sample rate (a file at
// that rate sample for sample) and mixed to mono with an OfflineAudioContext. The section stays hidden when metadata.json
// has no `align` graph. It waits for the synthesis demo's backend choice
// (window.tfspeechDemo.ready) when that loads, and works without it (an align-only export).
// `window.tfspeechAligner` exposes `ready` (a Promise: true when the align graph is there),
// `align(samples, text)` ({ids, durations, words, score, seconds}; samples a Float32Array at
// the model's rate), `lastResult` and `samples` (the audio chosen or recorded, at the model's
// rate), for scripted use and tests.

(function () {
  'use strict';

  const params = new URLSearchParams(window.location.search);
  const modelBase = (params.get('model') || 'model/').replace(/\/?$/, '/');
  const $ = (id) => document.getElementById(id);
  let state = null;  // {metadata, model, tokenizer}
  let samples = null;  // Float32Array at metadata.sample_rate

  function setStatus(message, isError) {
    $('align-status').textContent = message;
    $('align-status').className = isError ? 'error' : '';
  }

  async function load() {
    const response = await fetch(modelBase + 'metadata.json');
    if (!response.ok) return false;
    const metadata = await response.json();
    const graph = (metadata.graphs || {}).align;
    if (!graph) return false;
    if (window.tfspeechDemo && window.tfspeechDemo.ready) {
      // The same backend as synthesis (its choice is made once, before models load).
      await window.tfspeechDemo.ready.catch(() => {});
    }
    const model = await tf.loadGraphModel(modelBase + graph.file);
    state = {metadata, model, tokenizer: new TfspeechTokenizer.Tokenizer(metadata)};
    $('aligner').hidden = false;
    setStatus(`Drop or record audio (it is resampled to ${metadata.sample_rate} Hz), type what it says, then Align.`);
    return true;
  }

  // Decoded audio → mono Float32Array at the model's rate (channels mixed down).
  async function toModelRate(buffer) {
    const rate = state.metadata.sample_rate;
    const length = Math.max(1, Math.round(buffer.duration * rate));
    const offline = new OfflineAudioContext(1, length, rate);
    const source = offline.createBufferSource();
    source.buffer = buffer;
    source.connect(offline.destination);  // Channels are mixed down to the one output.
    source.start();
    const rendered = await offline.startRendering();
    return rendered.getChannelData(0).slice();
  }

  async function useAudio(arrayBuffer, name) {
    try {
      // decodeAudioData resamples to its context's rate, so it decodes in a context at the
      // model's: a file at that rate comes through sample for sample, as tfspeech-align reads
      // it. (A default AudioContext runs at the device's rate, 44.1 or 48 kHz; a 22.05 kHz
      // file resampled there and back changed by up to 1e-2.)
      const rate = state.metadata.sample_rate;
      const buffer = await new OfflineAudioContext(1, 1, rate).decodeAudioData(arrayBuffer);
      samples = buffer.numberOfChannels === 1 && buffer.sampleRate === rate
          ? buffer.getChannelData(0).slice() : await toModelRate(buffer);
      window.tfspeechAligner.samples = samples;
      drawWaveform(samples, []);
      $('align-run').disabled = false;
      setStatus(`${name}: ${(samples.length / state.metadata.sample_rate).toFixed(2)} s. Type its words and press Align.`);
    } catch (error) {
      setStatus(`error: ${name}: cannot decode this audio (${error.message}); use a WAV file`, true);
    }
  }

  async function align(audio, text) {
    const {metadata, model, tokenizer} = state;
    const encoded = tokenizer.align(text);
    const special = new Set([tokenizer.blankId, tokenizer.bosId, tokenizer.eosId, tokenizer.padId]);
    if (!encoded.ids.some((id) => !special.has(id))) {
      throw new Error('the transcript has no letters the model knows; type the words spoken');
    }
    const frames = Math.floor(audio.length / metadata.hop_length);
    if (frames < encoded.ids.length) {
      throw new Error(`${frames} mel frames of audio for ${encoded.ids.length} tokens: ` +
                      'the recording is too short for this transcript');
    }
    const inputs = {
      audio: tf.tensor2d(audio, [1, audio.length], 'float32'),
      audio_lengths: tf.tensor1d([audio.length], 'int32'),
      text_ids: tf.tensor2d([encoded.ids], [1, encoded.ids.length], 'int32'),
      text_lengths: tf.tensor1d([encoded.ids.length], 'int32'),
    };
    if (metadata.num_speakers > 1) inputs.speaker = tf.tensor1d([0], 'int32');
    const started = performance.now();
    // The graph loops (MAS), so it runs with executeAsync.
    const result = await model.executeAsync(inputs);
    const list = Array.isArray(result) ? result : [result];
    const byNode = {};
    const signature = (model.modelSignature || {}).outputs || {};
    for (const [key, info] of Object.entries(signature)) byNode[info.name.replace(/:0$/, '')] = key;
    const out = {};
    model.outputs.forEach((o, i) => { out[byNode[o.name.replace(/:0$/, '')] || o.name] = list[i]; });
    const durations = Array.from((await out.durations.data()).slice(0, encoded.ids.length));
    const score = (await out.score.data())[0];
    Object.values(inputs).forEach((t) => t.dispose());
    list.forEach((t) => t.dispose());
    const words = TfspeechTokenizer.wordTimes(encoded, durations, metadata.hop_length,
                                              metadata.sample_rate);
    return {ids: encoded.ids, durations, words, score, unknown: encoded.unknown,
            seconds: (performance.now() - started) / 1000};
  }

  function drawWaveform(audio, words) {
    const canvas = $('align-wave');
    const width = canvas.clientWidth || 720;
    const height = 160;
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext('2d');
    context.fillStyle = '#111';
    context.fillRect(0, 0, width, height);
    const seconds = audio.length / state.metadata.sample_rate;
    const x = (time) => (time / seconds) * width;
    words.forEach((w, i) => {
      context.fillStyle = i % 2 ? 'rgba(255, 224, 138, .28)' : 'rgba(138, 200, 255, .28)';
      context.fillRect(x(w.start), 0, Math.max(1, x(w.end) - x(w.start)), height);
    });
    context.strokeStyle = '#9ad';
    context.beginPath();
    const step = audio.length / width;
    for (let column = 0; column < width; column++) {
      let low = 0;
      let high = 0;
      for (let i = Math.floor(column * step); i < Math.min(audio.length, (column + 1) * step); i++) {
        low = Math.min(low, audio[i]);
        high = Math.max(high, audio[i]);
      }
      context.moveTo(column + 0.5, (1 - high) * height / 2);
      context.lineTo(column + 0.5, (1 - low) * height / 2 + 1);
    }
    context.stroke();
    context.fillStyle = '#fff';
    context.font = '13px system-ui, sans-serif';
    words.forEach((w, i) => context.fillText(w.word, x(w.start) + 2, 14 + (i % 2) * 16));
  }

  async function onAlign() {
    const text = $('align-text').value || $('text').value;
    $('align-run').disabled = true;
    setStatus('Aligning…');
    try {
      const result = await align(samples, text);
      window.tfspeechAligner.lastResult = result;
      drawWaveform(samples, result.words);
      const listed = result.words.map((w) => `${w.word} ${w.start.toFixed(2)}–${w.end.toFixed(2)} s`);
      setStatus(`${listed.join(', ')}\n(${result.seconds.toFixed(2)} s to align; score ` +
                `${result.score.toFixed(2)}${result.unknown.length ? '; dropped ' + result.unknown.join('') : ''})`);
    } catch (error) {
      setStatus(`error: ${error.message}`, true);
    } finally {
      $('align-run').disabled = false;
    }
  }

  let recorder = null;
  async function onRecord() {
    if (recorder) {
      recorder.stop();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({audio: true});
      const chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.ondataavailable = (event) => chunks.push(event.data);
      recorder.onstop = async () => {
        stream.getTracks().forEach((track) => track.stop());
        recorder = null;
        $('align-record').textContent = 'Record';
        await useAudio(await new Blob(chunks).arrayBuffer(), 'recording');
      };
      recorder.start();
      $('align-record').textContent = 'Stop';
      setStatus('Recording… press Stop when done.');
    } catch (error) {
      setStatus(`error: cannot record (${error.message}); drop a WAV file instead`, true);
    }
  }

  function wire() {
    $('align-file').addEventListener('change', async (event) => {
      const file = event.target.files[0];
      if (file) await useAudio(await file.arrayBuffer(), file.name);
    });
    const drop = $('aligner');
    drop.addEventListener('dragover', (event) => event.preventDefault());
    drop.addEventListener('drop', async (event) => {
      event.preventDefault();
      const file = event.dataTransfer.files[0];
      if (file) await useAudio(await file.arrayBuffer(), file.name);
    });
    $('align-record').addEventListener('click', onRecord);
    $('align-run').addEventListener('click', onAlign);
  }

  const ready = load().then((found) => {
    if (found) wire();
    return found;
  }).catch((error) => {
    $('aligner').hidden = false;
    setStatus(`error: the align graph did not load (${error.message})`, true);
    return false;
  });

  window.tfspeechAligner = {
    ready,
    align: (audio, text) => align(audio instanceof Float32Array ? audio : Float32Array.from(audio), text),
    lastResult: null,
    samples: null,  // the chosen or recorded audio, decoded at the model's rate
  };
})();
