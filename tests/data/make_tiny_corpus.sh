#!/usr/bin/env bash
# Regenerates tests/data/ljspeech_tiny/: a tiny LJSpeech-layout corpus for tests.
#
# Layout (same as LJSpeech-1.1):
#   metadata.csv   one line per utterance: ID|raw text|normalized text
#   wavs/ID.wav    22050 Hz, mono, 16-bit signed PCM
#
# The sentences exercise text normalization (numbers, currency, ordinals,
# abbreviations, punctuation, quotes). Audio is synthesized by espeak-ng from the
# normalized text with a few voices and speeds, then written by sox without
# dither so that re-running the script reproduces the same bytes.
#
# Requires: espeak-ng, sox (apt-get install -y espeak-ng sox).
# Usage: tests/data/make_tiny_corpus.sh [output_dir]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-${here}/ljspeech_tiny}"

for tool in espeak-ng sox; do
  if ! command -v "${tool}" >/dev/null; then
    echo "error: ${tool} not found; install it with: apt-get install -y espeak-ng sox" >&2
    exit 1
  fi
done

rm -rf "${out}"
mkdir -p "${out}/wavs"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

# Fields: ID|raw text|normalized text|espeak-ng voice|words per minute.
# Keep sentences short (about 1-2 s) so the corpus stays under 3 MB.
sentences=$(cat <<'SENTENCES'
TINY-0001|Dr. Smith paid $3.50 on the 2nd of May.|Doctor Smith paid three dollars fifty on the second of May.|en-us|210
TINY-0002|The train left at 7:45.|The train left at seven forty-five.|en-gb|190
TINY-0003|Mr. Jones lives at 221 Baker St.|Mister Jones lives at two twenty-one Baker Street.|en-us+f3|220
TINY-0004|It rained for 3 days.|It rained for three days.|en-gb+m3|200
TINY-0005|Wait, what did you say?|Wait, what did you say?|en-us|190
TINY-0006|"Stop," he said.|"Stop," he said.|en-us+f3|200
TINY-0007|She bought 12 eggs.|She bought twelve eggs.|en-gb|210
TINY-0008|In 1984, the war ended.|In nineteen eighty-four, the war ended.|en-us+m3|220
TINY-0009|Mrs. Brown won 1st prize!|Missus Brown won first prize!|en-gb+f3|200
TINY-0010|The room was cold; we left.|The room was cold; we left.|en-us|200
TINY-0011|Call me at 10 a.m.|Call me at ten a m.|en-gb|190
TINY-0012|It cost £20, not $20.|It cost twenty pounds, not twenty dollars.|en-us+f3|230
TINY-0013|Yes -- no -- maybe.|Yes -- no -- maybe.|en-gb+m3|180
TINY-0014|The 3rd act was long.|The third act was long.|en-us|210
TINY-0015|Gen. Lee rode north.|General Lee rode north.|en-us+m3|200
TINY-0016|About 50% agreed.|About fifty percent agreed.|en-gb+f3|210
TINY-0017|Open the door, please.|Open the door, please.|en-us|200
TINY-0018|Why (he asked) now?|Why (he asked) now?|en-gb|190
TINY-0019|Capt. Hook lost 1 hand.|Captain Hook lost one hand.|en-us+f3|220
TINY-0020|We met on Jan. 5th.|We met on January fifth.|en-gb+m3|200
TINY-0021|The sky is blue.|The sky is blue.|en-us|180
TINY-0022|Lt. Dan ran 2.5 miles.|Lieutenant Dan ran two point five miles.|en-us+m3|230
TINY-0023|Look out!|Look out!|en-gb+f3|180
TINY-0024|Page 104 is missing.|Page one hundred four is missing.|en-us|210
TINY-0025|St. Paul's is old.|Saint Paul's is old.|en-gb|190
TINY-0026|They sold 1,000 copies.|They sold one thousand copies.|en-us+f3|220
TINY-0027|Col. Mustard did it.|Colonel Mustard did it.|en-gb+m3|200
TINY-0028|Is it 6 or 7?|Is it six or seven?|en-us|200
TINY-0029|The cat sat on the mat.|The cat sat on the mat.|en-us+m3|200
TINY-0030|Sgt. Pepper's band played.|Sergeant Pepper's band played.|en-gb+f3|210
TINY-0031|Who's there?|Who's there?|en-gb|180
TINY-0032|He was born in 1999.|He was born in nineteen ninety-nine.|en-us|220
TINY-0033|Prof. Adams teaches math.|Professor Adams teaches math.|en-us+f3|210
TINY-0034|Run, run, run!|Run, run, run!|en-gb+m3|190
TINY-0035|Add 4 and 9.|Add four and nine.|en-us|200
TINY-0036|Maj. Ross was late again.|Major Ross was late again.|en-gb|210
TINY-0037|Light travels fast.|Light travels fast.|en-us+m3|200
TINY-0038|The 21st century began.|The twenty-first century began.|en-gb+f3|220
TINY-0039|Hello, world.|Hello, world.|en-us|190
TINY-0040|Ft. Worth is in Texas.|Fort Worth is in Texas.|en-gb|210
SENTENCES
)

: > "${out}/metadata.csv"
while IFS='|' read -r id text normalized voice speed; do
  printf '%s|%s|%s\n' "${id}" "${text}" "${normalized}" >> "${out}/metadata.csv"
  espeak-ng -v "${voice}" -s "${speed}" -w "${tmp}/${id}.wav" -- "${normalized}"
  # -D: no dither, for byte-identical output. `reverse silence ... reverse`
  # drops the trailing silence espeak-ng appends.
  sox -D "${tmp}/${id}.wav" -r 22050 -c 1 -b 16 -e signed-integer "${out}/wavs/${id}.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse pad 0.05 0.05
done <<< "${sentences}"

count=$(wc -l < "${out}/metadata.csv")
size=$(du -sh "${out}" | cut -f1)
echo "wrote ${count} utterances (${size}) to ${out}"
