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
  }

  const api = {Tokenizer, cleanText, splitArpabetGroups};
  if (typeof module !== 'undefined' && module.exports) {
    module.exports = api;
  } else {
    root.TfspeechTokenizer = api;
  }
})(typeof window !== 'undefined' ? window : globalThis);
