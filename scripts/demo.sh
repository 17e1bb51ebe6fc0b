#!/usr/bin/env bash
# demo.sh — the first runnable demo, run by `make demo` (or directly, from anywhere):
#
#   1. generates the built-in arithmetic and countdown tasks with held-out splits
#      (`posttrain data make`; a held-out problem never appears in training data),
#   2. trains a 1024-id byte-level BPE tokenizer on their prompts and completions,
#   3. initialises the tiny DeepSeek-V3-style MoE of examples/configs/tiny-moe.json for it,
#   4. runs SFT with examples/configs/sft-demo.json (completion-only loss, packing, cosine
#      schedule, held-out loss every 50 steps, checkpoints; at most 200 s of training),
#   5. prints the held-out loss before and after, and greedy answers to held-out prompts next to
#      the references.
# Everything goes under runs/demo (DEMO_DIR to change it), which is removed and rebuilt on each
# run. About 5 minutes on 2 cores. Needs ./posttrain (built with `make` when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PT=${PT:-./posttrain}
RUN=${DEMO_DIR:-runs/demo}
DATA=$RUN/data

[ -x "$PT" ] || make
# Idle OpenMP threads sleep instead of spinning: on a machine whose cores are busy with other
# work, spinning threads wait for descheduled partners (decoding measured 100x slower that way).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
step() { printf '\n== %s\n' "$*"; }
SECONDS=0

rm -rf "$RUN"
mkdir -p "$DATA"

step "1/5 tasks: arithmetic and countdown, with held-out splits"
"$PT" data make arithmetic --n 2000 --eval-n 40 --difficulty 1 --seed 1 \
  --out "$DATA/arithmetic.jsonl" --eval-out "$DATA/arithmetic-eval.jsonl"
"$PT" data make countdown --n 1000 --eval-n 40 --difficulty 1 --seed 1 \
  --out "$DATA/countdown.jsonl" --eval-out "$DATA/countdown-eval.jsonl"
cat "$DATA/arithmetic.jsonl" "$DATA/countdown.jsonl" >"$DATA/train.jsonl"
cat "$DATA/arithmetic-eval.jsonl" "$DATA/countdown-eval.jsonl" >"$DATA/eval.jsonl"
{ head -n 2 "$DATA/arithmetic-eval.jsonl"; head -n 2 "$DATA/countdown-eval.jsonl"; } >"$DATA/samples.jsonl"

step "2/5 tokenizer: byte-level BPE, 1024 ids, on the training prompts + completions"
# The tokenizer trainer reads the "text" field of JSONL: join each record's prompt and completion
# (JSON string bodies, escapes included, so the result is valid JSON again).
sed -E 's/^\{"prompt":"(([^"\\]|\\.)*)".*"completion":"(([^"\\]|\\.)*)"\}$/{"text":"\1\3"}/' \
  "$DATA/train.jsonl" >"$DATA/text.jsonl"
if grep -qv '^{"text":' "$DATA/text.jsonl"; then
  echo "demo: could not turn every record of $DATA/train.jsonl into {\"text\"}" >&2
  exit 1
fi
"$PT" tokenizer train --data "$DATA/text.jsonl" --vocab-size 1024 --out "$RUN/tokenizer"

step "3/5 model: examples/configs/tiny-moe.json with that tokenizer"
"$PT" init --config examples/configs/tiny-moe.json --tokenizer "$RUN/tokenizer" --out "$RUN/model"

step "4/5 SFT: examples/configs/sft-demo.json"
"$PT" sft --config examples/configs/sft-demo.json --model "$RUN/model" \
  --data "$DATA/train.jsonl" --eval-data "$DATA/eval.jsonl" --out "$RUN/sft" | tee "$RUN/sft-summary.txt"

step "5/5 answers to held-out prompts (greedy), next to the references"
"$PT" sample --model "$RUN/sft/final" --data "$DATA/samples.jsonl" --n 4 --temperature 0 \
  --max-new-tokens 160

echo "(a few minutes of SFT teach the tiny model the answer format and the shape of the reasoning;"
echo " copying the right numbers takes far more training than this demo's budget)"

step "done in ${SECONDS} s"
grep '^held-out loss' "$RUN/sft-summary.txt" || true
echo "run folder: $RUN/sft (run.db, checkpoints/, final/)"
