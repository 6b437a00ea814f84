// Streaming playback for the browser demo: when the export has mel_chunk_to_audio
// (tfspeech-export --stream), the demo runs text_to_mel, then vocodes the mel chunk by chunk
// and schedules each chunk through Web Audio as it arrives, so the audio starts after the
// first chunk instead of after the whole utterance.
//
// A chunk of frames [start, end) is vocoded from the window [start - C, end + C) (clipped to
// the utterance), C = metadata.vocoder.context_frames, and the graph cuts the window's audio
// back to the chunk's (context_before / context_after): the chunks, concatenated, are
// mel_to_audio's audio (tfspeech.inference.streaming; plan_chunks there is planChunks here).
// Each chunk's AudioBufferSourceNode starts at the running end time of the ones before, so
// playback is gap-free as long as each chunk is made before the previous one ends (a late
// chunk starts as soon as it arrives and is counted in `underruns`).
//
// Vocoders that draw noise (DiffWave) need the utterance's noise sliced per window
// (Vocoder.stream_noise); the page streams only vocoders without noise and otherwise keeps
// mel_to_audio (`TfspeechStreamPlayer.graphNames`).

(function (root) {
  'use strict';

  // Frames of the first chunk; each later chunk is CHUNK_GROWTH times the one before (rounded
  // up), up to CHUNK_FRAMES: 16, 24, 32, 32, ... Every chunk must be vocoded while the ones
  // before play, and a chunk pays 2 x context frames (HiFi-GAN: 13) whatever its size: after
  // an 8-frame first chunk (93 ms of audio) even a 12-frame second one (a 38-frame window)
  // took longer than 93 ms on wasm, so 8 then 32 left a 160-300 ms gap and 8, 16, 32 still
  // 50-140 ms. A 16-frame first chunk costs ~20 ms more (a 29- instead of a 21-frame window)
  // and buys 186 ms of audio to vocode the next 24 frames in.
  const FIRST_CHUNK_FRAMES = 16;
  const CHUNK_FRAMES = 32;
  const CHUNK_GROWTH = 1.5;
  // Seconds between scheduling the first chunk and its start: room for the audio thread.
  const LEAD_SECONDS = 0.02;

  // [{start, end, windowStart, windowEnd}] as tfspeech.inference.streaming.plan_chunks
  // (growth defaults to 2 there too; 1: chunkFrames after the first).
  function planChunks(frames, chunkFrames, context, firstChunkFrames, growth) {
    const factor = growth === undefined ? CHUNK_GROWTH : growth;
    const plans = [];
    let start = 0;
    let size = firstChunkFrames || chunkFrames;
    while (start < frames) {
      const end = Math.min(start + size, frames);
      plans.push({start, end, windowStart: Math.max(start - context, 0),
                  windowEnd: Math.min(end + context, frames)});
      start = end;
      size = factor === 1 ? chunkFrames : Math.min(Math.ceil(size * factor), chunkFrames);
    }
    return plans;
  }

  // The graphs the demo loads for streaming (text_to_mel + mel_chunk_to_audio), or null
  // when the export cannot stream (no chunk graph, no text_to_mel, or a noisy vocoder).
  function graphNames(metadata) {
    const graphs = metadata.graphs || {};
    const context = (metadata.vocoder || {}).context_frames;
    if (!graphs.text_to_mel || !graphs.mel_chunk_to_audio || !Number.isInteger(context) ||
        metadata.vocoder_noise) {
      return null;
    }
    return ['text_to_mel', 'mel_chunk_to_audio'];
  }

  // How long (ms) to hold the first chunk back so that no later chunk arrives after the audio
  // before it ends, estimating each window's time from the first one's: FIXED_SHARE of it
  // per call, the rest per frame (HiFi-GAN V2 on wasm, loaded machine: 29 frames 150 ms, 50
  // frames 200 ms, 58 frames 220 ms, i.e. about half fixed; 0.4 errs towards waiting). 0
  // when the schedule keeps up by itself (the default one, on such a machine, nearly); at
  // most the first chunk's audio.
  const FIXED_SHARE = 0.4;
  function startDelayMs(plans, firstMs, hop, sampleRate) {
    const first = plans[0];
    const msPerFrame = firstMs * (1 - FIXED_SHARE) /
        Math.max(first.windowEnd - first.windowStart, 1);
    let made = 0;  // ms to vocode chunks 1..k after the first
    let played = 0;  // ms of audio of chunks 0..k-1
    let delay = 0;
    for (let k = 1; k < plans.length; k++) {
      made += firstMs * FIXED_SHARE + msPerFrame * (plans[k].windowEnd - plans[k].windowStart);
      played += (plans[k - 1].end - plans[k - 1].start) * hop / sampleRate * 1000;
      delay = Math.max(delay, made - played);
    }
    // At most the first chunk's own length: one slow first call (a busy machine) would
    // otherwise hold the speech back for seconds; a late chunk then costs a short gap.
    return Math.min(delay, (first.end - first.start) * hop / sampleRate * 1000);
  }

  // Plays float chunks back to back on one AudioContext.
  class ChunkScheduler {
    constructor(sampleRate) {
      const AudioContextClass = root.AudioContext || root.webkitAudioContext;
      this.context = new AudioContextClass({sampleRate});
      this.sampleRate = sampleRate;
      this.endTime = 0;  // context time at which the scheduled audio ends
      this.startTime = null;  // context time of the first sample
      this.underruns = 0;
      this.gapSeconds = 0;  // silence between chunks from late ones
    }

    // Schedules `samples` at the running end time (or now, after an underrun), the first
    // chunk `delay` seconds later than it could start; returns the context time it starts at.
    schedule(samples, delay) {
      const now = this.context.currentTime;
      const at = Math.max(this.endTime, now + LEAD_SECONDS + (delay || 0));
      if (this.startTime !== null && this.endTime < now) {
        this.underruns += 1;
        this.gapSeconds += at - this.endTime;
      }
      const buffer = this.context.createBuffer(1, samples.length, this.sampleRate);
      buffer.copyToChannel(samples, 0);
      const source = this.context.createBufferSource();
      source.buffer = buffer;
      source.connect(this.context.destination);
      source.start(at);
      if (this.startTime === null) this.startTime = at;
      this.endTime = at + buffer.duration;
      return at;
    }
  }

  // Vocodes the mel of out = text_to_mel's outputs (batch 1) chunk by chunk with the
  // mel_chunk_to_audio `model`, scheduling each chunk as it arrives. `started` is the
  // performance.now() of the synthesis start, for the time to first audio.
  // Returns {outputs: {audio [1, samples], audio_lengths [1]} tensors as mel_to_audio's,
  // context (the AudioContext, or null when Web Audio failed), startTime, firstAudioMs,
  // melMs (text_to_mel's part of it), chunks, chunkMs (each chunk's vocoding ms), chunkFrames,
  // underruns (chunks that arrived after the audio before them ended), gapMs (their silence)}.
  // delayMs (the first chunk's start delay, startDelayMs: the first sound is firstAudioMs +
  // delayMs + 20 ms of scheduling lead). options: {firstChunkFrames, chunkFrames, growth}
  // (planChunks; default 16, 32, 1.5), delay: false for no start delay.
  async function vocode(tf, model, metadata, out, started, options) {
    const opts = options || {};
    const melMs = performance.now() - started;  // text_to_mel's share of the first audio
    const hop = metadata.hop_length;
    const context = metadata.vocoder.context_frames;
    const frames = (await out.mel_lengths.data())[0];
    let scheduler = null;
    try {
      scheduler = new ChunkScheduler(metadata.sample_rate);
    } catch (error) {
      console.warn('WebAudio playback failed:', error);
    }
    const pieces = [];
    let firstAudioMs = null;
    const plans = planChunks(frames, opts.chunkFrames || CHUNK_FRAMES, context,
                             opts.firstChunkFrames || FIRST_CHUNK_FRAMES, opts.growth);
    const chunkMs = [];  // each chunk's vocoding time
    let delayMs = 0;  // the first chunk's start delay that keeps the later ones on time
    for (const plan of plans) {
      const chunkStart = performance.now();
      const width = plan.windowEnd - plan.windowStart;
      const inputs = {
        mel: tf.slice(out.mel, [0, plan.windowStart, 0], [1, width, -1]),
        mel_lengths: tf.tensor1d([width], 'int32'),
        context_before: tf.scalar(plan.start - plan.windowStart, 'int32'),
        context_after: tf.scalar(plan.windowEnd - plan.end, 'int32'),
      };
      const result = await model.executeAsync(inputs);
      const list = Array.isArray(result) ? result : [result];
      // The chunk's audio is the output of [1, (end - start) * hop] (audio_lengths is [1]).
      const audio = list.find((t) => t.rank === 2);
      const samples = (await audio.data()).slice(0, (plan.end - plan.start) * hop);
      tf.dispose(Object.values(inputs).concat(list));
      chunkMs.push(performance.now() - chunkStart);
      if (chunkMs.length === 1 && opts.delay !== false) {
        delayMs = startDelayMs(plans, chunkMs[0], hop, metadata.sample_rate);
      }
      if (scheduler) scheduler.schedule(samples, chunkMs.length === 1 ? delayMs / 1000 : 0);
      if (firstAudioMs === null) firstAudioMs = performance.now() - started;
      pieces.push(samples);
    }
    const total = pieces.reduce((n, p) => n + p.length, 0);
    const audio = new Float32Array(total);
    let offset = 0;
    for (const piece of pieces) {
      audio.set(piece, offset);
      offset += piece.length;
    }
    const report = root.document && root.document.getElementById('stream');
    if (report) {
      report.textContent = `Streaming: first audio after ${Math.round(firstAudioMs)} ms ` +
          `(text_to_mel ${Math.round(melMs)} ms; ${plans.length} chunks, ${context} context frames each side` +
          (delayMs ? `, played ${Math.round(delayMs)} ms later to keep up` : '') +
          (scheduler && scheduler.underruns ?
            `, ${scheduler.underruns} late: ${Math.round(scheduler.gapSeconds * 1000)} ms of gaps` :
            '') + ').';
    }
    return {
      outputs: {audio: tf.tensor2d(audio, [1, total]), audio_lengths: tf.tensor1d([total], 'int32')},
      context: scheduler ? scheduler.context : null,
      startTime: scheduler ? scheduler.startTime : null,
      firstAudioMs, melMs, chunks: plans.length, chunkMs, delayMs,
      chunkFrames: plans.map((p) => p.end - p.start),
      underruns: scheduler ? scheduler.underruns : 0,
      gapMs: scheduler ? scheduler.gapSeconds * 1000 : 0,
    };
  }

  const api = {planChunks, graphNames, startDelayMs, ChunkScheduler, vocode, CHUNK_FRAMES,
               FIRST_CHUNK_FRAMES, CHUNK_GROWTH};
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  root.TfspeechStreamPlayer = api;
})(typeof window !== 'undefined' ? window : globalThis);
