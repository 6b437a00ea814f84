// Text → symbol ids in JavaScript, driven by an exported model's metadata.json.
//
// Mirrors tfspeech.text.encode_text for what a browser can do without dictionaries:
//   * "{HH AH0 L OW1}" groups become the phones "@HH", "@AH0", ... (kept verbatim);
//   * the text around them is cleaned with the model's cleaners: transliteration to ASCII
//     (Unicode NFKD with accents dropped, typographic quotes and dashes mapped), lowercase,
//     the English abbreviations ("dr." → "doctor"), whitespace runs → one space;
//   * each character is one symbol; symbols missing from the table are dropped and reported;
//   * bos/eos are added when the table has them, then the blank is put before, between and
//     after every id when the table has one (Grad-TTS add_blank).
// `align(text)` maps every id back to the words and characters of the text, and
// `wordTimes(alignment, durations, hopLength, sampleRate)` times the words with the model's
// `durations` output, as tfspeech.text.align_text / durations_to_timestamps do (same rules:
// a word is a whitespace-separated run without the punctuation at its ends that is spoken as
// punctuation; spaces, punctuation and the blanks at a word's edges are the pause between
// words). Character offsets index the JavaScript string (UTF-16 code units).
// Not done here (the Python front end does them): spelling out numbers and currency
// (english_cleaners' inflect step) and CMUdict lookup (metadata "arpabet": true); digits are
// dropped and reported, so write numbers as words or pass ARPAbet groups.
//
// Works as a browser script (window.TfspeechTokenizer) and as a CommonJS module.

(function (root) {
  'use strict';

  const ABBREVIATIONS = [
    ['mrs', 'misess'], ['mr', 'mister'], ['dr', 'doctor'], ['st', 'saint'], ['co', 'company'],
    ['jr', 'junior'], ['maj', 'major'], ['gen', 'general'], ['drs', 'doctors'],
    ['rev', 'reverend'], ['lt', 'lieutenant'], ['hon', 'honorable'], ['sgt', 'sergeant'],
    ['capt', 'captain'], ['esq', 'esquire'], ['ltd', 'limited'], ['col', 'colonel'],
    ['ft', 'fort'],
  ].map(([short, long]) => [new RegExp(`\\b${short}\\.`, 'gi'), long]);

  const TYPOGRAPHIC = {
    '\u2018': "'", '\u2019': "'", '\u201a': "'", '\u201b': "'", '\u201c': '"', '\u201d': '"',
    '\u201e': '"', '\u2013': '-', '\u2014': '-', '\u2026': '...', '\u00a0': ' ',
  };

  function toAscii(text) {
    const mapped = Array.from(text, (c) => TYPOGRAPHIC[c] || c).join('');
    // NFKD splits accented letters into letter + combining mark; drop the marks and
    // anything else outside ASCII.
    return mapped.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^\x00-\x7f]/g, '');
  }

  const collapse = (text) => text.replace(/\s+/g, ' ');

  const CLEANERS = {
    basic_cleaners: (t) => collapse(t.toLowerCase()),
    transliteration_cleaners: (t) => collapse(toAscii(t).toLowerCase()),
    english_cleaners: (t) => {
      let text = toAscii(t).toLowerCase();
      for (const [pattern, long] of ABBREVIATIONS) text = text.replace(pattern, long);
      return collapse(text);
    },
  };

  function cleanText(text, cleanerNames) {
    let result = text;
    for (const name of cleanerNames || []) {
      const cleaner = CLEANERS[name];
      if (!cleaner) {
        throw new Error(`tokenizer: cleaner ${name} is not available in JavaScript ` +
                        `(known: ${Object.keys(CLEANERS).join(', ')})`);
      }
      result = cleaner(result);
    }
    return result;
  }

  // Splits "a {HH AH0} b" into ["a ", "HH AH0", " b"]: odd items are group insides.
  function splitArpabetGroups(text) {
    return text.split(/\{([^{}]*)\}/);
  }

  // A letter, digit or phone, not punctuation (tfspeech.text.timestamps.is_spoken).
  const isSpoken = (symbol) => Array.from(symbol).length > 1 || /^[\p{L}\p{N}]$/u.test(symbol);
  const NO_WORD = -1;

  // [start, end] of a raw word without the end punctuation its tokens also have as
  // non-spoken ends ("Hello," → "Hello", but "Dr." → "Dr.", whose dot became "doctor").
  function trimWord(text, start, end, tokens) {
    const raw = text.slice(start, end);
    if (!raw || raw[0] === '{') return [start, end];
    const spoken = tokens.map(isSpoken);
    const firstSpoken = spoken.indexOf(true);
    const tokenLead = firstSpoken < 0 ? tokens.length : firstSpoken;
    const tokenTrail = firstSpoken < 0 ? tokens.length
                                       : spoken.length - 1 - spoken.lastIndexOf(true);
    const chars = Array.from(raw);
    const isPunctuation = (c) => /^\p{P}$/u.test(c);
    let lead = 0;
    while (lead < chars.length && isPunctuation(chars[lead])) lead++;
    let trail = 0;
    while (trail < chars.length && isPunctuation(chars[chars.length - 1 - trail])) trail++;
    lead = Math.min(lead, tokenLead);
    trail = Math.min(trail, tokenTrail);
    if (lead + trail >= chars.length) return [start, end];
    const units = (list) => list.reduce((sum, c) => sum + c.length, 0);
    return [start + units(chars.slice(0, lead)), end - units(chars.slice(chars.length - trail))];
  }

  class Tokenizer {
    // metadata: parsed metadata.json of an exported acoustic model.
    constructor(metadata) {
      const table = metadata.symbols;
      if (!table || !Array.isArray(table.symbols)) {
        throw new Error('tokenizer: metadata.json has no "symbols" table');
      }
      this.symbols = table.symbols;
      this.prefix = table.arpabet_prefix || '@';
      this.cleaners = metadata.cleaners || [];
      const special = new Set([table.pad, table.bos, table.eos, table.blank].filter((s) => s));
      this.ids = new Map();
      this.symbols.forEach((symbol, id) => {
        if (!special.has(symbol)) this.ids.set(symbol, id);
      });
      const idOf = (symbol) => (symbol == null ? null : this.symbols.indexOf(symbol));
      this.bosId = idOf(table.bos);
      this.eosId = idOf(table.eos);
      this.blankId = idOf(table.blank);
      this.padId = idOf(table.pad);
    }

    // Returns {ids: number[], unknown: {symbol: count}}.
    encode(text) {
      const tokens = [];
      splitArpabetGroups(text).forEach((piece, index) => {
        if (index % 2) {
          for (const phone of piece.split(/[ \t\n\r\f\v]+/)) {
            if (phone) tokens.push(this.prefix + phone);
          }
        } else {
          tokens.push(...Array.from(cleanText(piece, this.cleaners)));
        }
      });
      let ids = [];
      const unknown = {};
      for (const token of tokens) {
        if (this.ids.has(token)) {
          ids.push(this.ids.get(token));
        } else {
          unknown[token] = (unknown[token] || 0) + 1;
        }
      }
      if (this.bosId !== null) ids.unshift(this.bosId);
      if (this.eosId !== null) ids.push(this.eosId);
      if (this.blankId !== null) {
        const spread = [this.blankId];
        for (const id of ids) spread.push(id, this.blankId);
        ids = spread;
      }
      return {ids, unknown};
    }

    // Which characters and word of `text` each id of encode(text) came from:
    // {ids, unknown, symbols, chars: [[start, end]], tokenWords: [word index or -1],
    //  words: [{word, char_start, char_end}], exact}.
    align(text) {
      const {ids, unknown} = this.encode(text);
      const collapse = this.cleaners.length > 0;  // Every cleaner collapses whitespace.
      const entries = [];
      const segments = [];
      let position = 0;
      splitArpabetGroups(text).forEach((piece, index) => {
        if (index % 2) {
          const end = position + piece.length + 2;
          for (const phone of piece.split(/[ \t\n\r\f\v]+/)) {
            if (phone) {
              entries.push({token: this.prefix + phone, start: position, end,
                            segment: segments.length, ownChar: false});
            }
          }
          segments.push([position, end]);
          position = end;
          return;
        }
        let pieceEntries = [];
        for (const match of piece.matchAll(/\s+|\S+/g)) {
          const raw = match[0];
          const start = position + match.index;
          const end = start + raw.length;
          const tokens = Array.from(cleanText(raw, this.cleaners));
          let segment = NO_WORD;
          if (!/^\s/.test(raw)) {
            segment = segments.length;
            segments.push([start, end]);
          }
          // Only lowercased: each id has its own character.
          const ownChar = tokens.length === raw.length && tokens.join('') === raw.toLowerCase();
          tokens.forEach((token, i) => pieceEntries.push(ownChar
              ? {token, start: start + i, end: start + i + 1, segment, ownChar}
              : {token, start, end, segment, ownChar}));
        }
        if (collapse) {
          // Whitespace runs collapse across word joins too: keep a run's first space.
          pieceEntries = pieceEntries.filter((e, i) =>
            !(e.token === ' ' && i && pieceEntries[i - 1].token === ' '));
        }
        entries.push(...pieceEntries);
        position += piece.length;
      });
      const tokensOf = new Map();
      for (const e of entries) {
        if (!tokensOf.has(e.segment)) tokensOf.set(e.segment, []);
        tokensOf.get(e.segment).push(e.token);
      }
      const known = entries.filter((e) => this.ids.has(e.token));
      const spokenOf = new Map();
      known.forEach((e, i) => {
        if (!isSpoken(e.token)) return;
        if (!spokenOf.has(e.segment)) spokenOf.set(e.segment, []);
        spokenOf.get(e.segment).push(i);
      });
      const words = [];
      const wordOfSegment = new Map();
      segments.forEach(([start, end], segment) => {
        const spoken = spokenOf.get(segment);
        if (!spoken) return;
        const [wordStart, wordEnd] = trimWord(text, start, end, tokensOf.get(segment));
        wordOfSegment.set(segment, [words.length, spoken[0], spoken[spoken.length - 1]]);
        words.push({word: text.slice(wordStart, wordEnd), char_start: wordStart,
                    char_end: wordEnd});
      });
      let core = known.map((e, i) => {
        let word = NO_WORD;
        let chars = [e.start, e.end];
        if (wordOfSegment.has(e.segment)) {
          const [index, first, last] = wordOfSegment.get(e.segment);
          word = first <= i && i <= last ? index : NO_WORD;
          if (!e.ownChar) {
            const found = words[index];
            if (word === index) chars = [found.char_start, found.char_end];
            else if (i < first && found.char_start > e.start) chars = [e.start, found.char_start];
            else if (i > last && found.char_end < e.end) chars = [found.char_end, e.end];
          }
        }
        return {id: this.ids.get(e.token), symbol: e.token, chars, word};
      });
      const special = (id, at) => ({id, symbol: this.symbols[id], chars: [at, at], word: NO_WORD});
      if (this.bosId !== null) core.unshift(special(this.bosId, 0));
      if (this.eosId !== null) core.push(special(this.eosId, text.length));
      if (this.blankId !== null) {
        const spread = [];
        for (let i = 0; i <= core.length; i++) {
          const before = i ? core[i - 1] : null;
          const after = i < core.length ? core[i] : null;
          const at = before ? before.chars[1] : (after ? after.chars[0] : 0);
          const same = before && after && before.word === after.word;
          spread.push({id: this.blankId, symbol: this.symbols[this.blankId], chars: [at, at],
                       word: same ? before.word : NO_WORD});
          if (after) spread.push(after);
        }
        core = spread;
      }
      let exact = core.length === ids.length && core.every((t, i) => t.id === ids[i]);
      let mapped = core;
      let kept = words;
      if (!exact) {
        // As tfspeech.text.timestamps: the common prefix and suffix keep their places, the
        // ids between share their characters.
        let prefix = 0;
        while (prefix < Math.min(ids.length, core.length) && ids[prefix] === core[prefix].id) {
          prefix++;
        }
        let suffix = 0;
        while (suffix < Math.min(ids.length, core.length) - prefix &&
               ids[ids.length - 1 - suffix] === core[core.length - 1 - suffix].id) suffix++;
        const middle = core.slice(prefix, core.length - suffix);
        const at = prefix ? core[prefix - 1].chars[1] : 0;
        const span = middle.length ? [Math.min(...middle.map((m) => m.chars[0])),
                                      Math.max(...middle.map((m) => m.chars[1]))] : [at, at];
        const middleWords = new Set(middle.map((m) => m.word));
        const word = middleWords.size === 1 ? [...middleWords][0] : NO_WORD;
        mapped = core.slice(0, prefix).concat(
            ids.slice(prefix, ids.length - suffix).map((id) => ({id, symbol: this.symbols[id],
                                                                  chars: span, word})),
            suffix ? core.slice(core.length - suffix) : []);
        const used = [...new Set(mapped.map((m) => m.word).filter((w) => w !== NO_WORD))]
            .sort((a, b) => a - b);
        const renumber = new Map(used.map((old, i) => [old, i]));
        kept = used.map((old) => words[old]);
        mapped = mapped.map((m) => ({...m, word: renumber.has(m.word) ? renumber.get(m.word)
                                                                        : NO_WORD}));
      }
      return {ids, unknown, symbols: mapped.map((m) => m.symbol),
              chars: mapped.map((m) => m.chars), tokenWords: mapped.map((m) => m.word),
              words: kept, exact};
    }
  }

  // Seconds of each word of an alignment from the model's per-id frame counts:
  // [{word, start, end, char_start, char_end}] (a word runs from its first id's start to its
  // last id's end).
  function wordTimes(alignment, durations, hopLength, sampleRate) {
    if (durations.length < alignment.ids.length) {
      throw new Error(`wordTimes: ${alignment.ids.length} ids but ${durations.length} durations`);
    }
    const perFrame = hopLength / sampleRate;
    const times = alignment.words.map((w) => ({...w, start: null, end: null}));
    let frame = 0;
    alignment.tokenWords.forEach((word, i) => {
      const next = frame + durations[i];
      if (word !== NO_WORD) {
        if (times[word].start === null) times[word].start = frame * perFrame;
        times[word].end = next * perFrame;
      }
      frame = next;
    });
    return times.map(({word, start, end, char_start, char_end}) =>
      ({word, start, end, char_start, char_end}));
  }

  const api = {Tokenizer, cleanText, splitArpabetGroups, wordTimes};
  if (typeof module !== 'undefined' && module.exports) {
    module.exports = api;
  } else {
    root.TfspeechTokenizer = api;
  }
})(typeof window !== 'undefined' ? window : globalThis);
