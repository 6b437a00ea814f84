#!/usr/bin/env bash
# Regenerates tests/data/aligned_words/: utterances whose word boundaries are known exactly,
# for the forced-aligner tests (tfspeech-align).
#
# Each word is spoken alone by espeak-ng (voices and speeds of tests/data/ljspeech_tiny),
# its leading and trailing silence trimmed by sox, and the words are joined with GAP
# seconds of digital silence (LEAD before the first, after the last). The sample where
# each word starts and ends is therefore known; words.csv records it in seconds.
#
# Layout:
#   metadata.csv   ID|text|text (LJSpeech layout, so `tfspeech-align --corpus` reads it)
#   words.csv      ID|index|word|start seconds|end seconds
#   wavs/ID.wav    22050 Hz, mono, 16-bit signed PCM
#
# Requires: espeak-ng, sox. Usage: tests/data/make_aligned_words.sh [output_dir]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-${here}/aligned_words}"
rate=22050
gap=0.15
lead=0.05

for tool in espeak-ng sox soxi; do
  if ! command -v "${tool}" >/dev/null; then
    echo "error: ${tool} not found; install it with: apt-get install -y espeak-ng sox" >&2
    exit 1
  fi
done

rm -rf "${out}"
mkdir -p "${out}/wavs"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

# ID|text (words separated by single spaces; punctuation stays with its word)|voice|wpm
sentences=$(cat <<'SENTENCES'
WORDS-0001|The sky is blue.|en-us|180
WORDS-0002|The cat sat on the mat.|en-us+m3|200
WORDS-0003|Open the door, please.|en-us|200
WORDS-0004|Light travels fast.|en-us+m3|200
SENTENCES
)

sox -D -n -r "${rate}" -c 1 -b 16 "${tmp}/gap.wav" trim 0 "${gap}"
sox -D -n -r "${rate}" -c 1 -b 16 "${tmp}/lead.wav" trim 0 "${lead}"
: > "${out}/metadata.csv"
: > "${out}/words.csv"
while IFS='|' read -r id text voice speed; do
  printf '%s|%s|%s\n' "${id}" "${text}" "${text}" >> "${out}/metadata.csv"
  parts=("${tmp}/lead.wav")
  position=$(soxi -s "${tmp}/lead.wav")
  index=0
  for word in ${text}; do
    espeak-ng -v "${voice}" -s "${speed}" -w "${tmp}/raw.wav" -- "${word}"
    sox -D "${tmp}/raw.wav" -r "${rate}" -c 1 -b 16 -e signed-integer "${tmp}/w${index}.wav" \
      silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse
    samples=$(soxi -s "${tmp}/w${index}.wav")
    bare="$(printf '%s' "${word}" | tr -d '.,!?;:')"
    awk -v id="${id}" -v i="${index}" -v w="${bare}" -v s="${position}" -v n="${samples}" \
      -v r="${rate}" 'BEGIN { printf "%s|%d|%s|%.6f|%.6f\n", id, i, w, s / r, (s + n) / r }' \
      >> "${out}/words.csv"
    position=$((position + samples + $(soxi -s "${tmp}/gap.wav")))
    parts+=("${tmp}/w${index}.wav" "${tmp}/gap.wav")
    index=$((index + 1))
  done
  parts[-1]="${tmp}/lead.wav"
  sox -D "${parts[@]}" "${out}/wavs/${id}.wav"
done <<< "${sentences}"

echo "wrote $(wc -l < "${out}/metadata.csv") utterances ($(du -sh "${out}" | cut -f1)) to ${out}"
