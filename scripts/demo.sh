#!/usr/bin/env bash
# demo.sh — the main job, run by `make demo` (or directly, from anywhere): DeepSeek-R1's recipe on
# the countdown task with a tiny DeepSeek-V3-style MoE, end to end on the CPU.
#
#   1. data       countdown problems (TinyZero's task: 3 numbers from 1..10, a one-line prompt)
#                 whose worked solutions are searches (random combinations checked and rejected,
#                 then one that reaches the target), with a held-out split (`posttrain data make`;
#                 a held-out problem never appears in training data)
#   2. tokenizer  a 1024-id byte-level BPE trained on the training prompts and solutions
#   3. model      the tiny MoE of examples/configs/tiny-moe.json, randomly initialised
#   4. SFT        on the worked solutions (examples/configs/sft-demo.json)
#   5. rejection sampling: 8 samples per training prompt from the SFT model, the correct ones kept
#                 (one per prompt), then a short SFT on them (examples/configs/sft-rs-demo.json)
#   6. GRPO       on the training prompts, scored by the countdown reward, with held-out
#                 evaluation during the run (examples/configs/grpo-demo.json)
#   7. evaluation of the held-out problems after every stage (greedy, and R1's pass@1), and the
#                 HTML report of the GRPO run (runs/demo/report.html)
# It ends with the table of held-out accuracy after SFT, after rejection sampling and after GRPO,
# with the share of the reasoning's verdicts that are true (does the model check its attempts?).
#
# Everything goes under runs/demo (DEMO_DIR to change it), rebuilt on each run; DEMO_SEED (default
# 1) seeds SFT, sampling and GRPO (the data and the held-out split stay the same). Needs
# ./posttrain (built with `make` when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
PT=${PT:-./posttrain}
RUN=${DEMO_DIR:-runs/demo}
SEED=${DEMO_SEED:-1}
DATA=$RUN/data
CFG=examples/configs

[ -x "$PT" ] || make
# Idle OpenMP threads sleep instead of spinning: on a machine whose cores are busy with other
# work, spinning threads wait for descheduled partners (decoding measured 100x slower that way).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
step() { printf '\n== %s\n' "$*"; }
SECONDS=0

rm -rf "$RUN"
mkdir -p "$DATA"

step "1/7 data: countdown, 3 numbers from 1..10, search traces, with a held-out split"
"$PT" data make countdown --n 2400 --eval-n 200 --difficulty 1 --max_number 10 --prompt_style short --trace search \
  --seed 1 \
  --out "$DATA/train.jsonl" --eval-out "$DATA/eval.jsonl"
cat >"$RUN/rewards.json" <<'EOF'
[{"name": "countdown", "type": "countdown", "weight": 1.0}]
EOF
# Evaluation also reports, without weight, the share of the reasoning's verdicts ("..., yes." /
# "..., no.") that are true: whether the model checks its attempts against the target.
cat >"$RUN/eval-rewards.json" <<'EOF'
[{"name": "countdown", "type": "countdown", "weight": 1.0},
 {"name": "true_verdicts", "type": "countdown", "score_verdicts": true, "weight": 0.0}]
EOF

step "2/7 tokenizer: byte-level BPE, 1024 ids, on the training prompts + solutions"
# The tokenizer trainer reads the "text" field of JSONL: join each record's prompt and completion
# (JSON string bodies, escapes included, so the result is valid JSON again).
sed -E 's/^\{"prompt":"(([^"\\]|\\.)*)".*"completion":"(([^"\\]|\\.)*)"\}$/{"text":"\1\3"}/' \
  "$DATA/train.jsonl" >"$DATA/text.jsonl"
if grep -qv '^{"text":' "$DATA/text.jsonl"; then
  echo "demo: could not turn every record of $DATA/train.jsonl into {\"text\"}" >&2
  exit 1
fi
"$PT" tokenizer train --data "$DATA/text.jsonl" --vocab-size 1024 --out "$RUN/tokenizer"

step "3/7 model: $CFG/tiny-moe.json with that tokenizer"
"$PT" init --config $CFG/tiny-moe.json --tokenizer "$RUN/tokenizer" --out "$RUN/model" --seed "$SEED"

# Each stage's model is evaluated on the held-out problems twice: greedy, and as DeepSeek-R1
# reports pass@1 (4 samples per problem at temperature 0.6, top-p 0.95, averaged).
evaluate() { # evaluate STAGE MODEL_DIR
  "$PT" eval --model "$2" --data "$DATA/eval.jsonl" --rewards "$RUN/eval-rewards.json" --accuracy_reward countdown \
    --max_completion_length 128 --output "$RUN/eval-$1.jsonl" | tee "$RUN/eval-$1.txt"
  "$PT" eval --model "$2" --data "$DATA/eval.jsonl" --rewards "$RUN/eval-rewards.json" --accuracy_reward countdown \
    --max_completion_length 128 --num_samples 4 --temperature 0.6 --top_p 0.95 --seed "$SEED" \
    --output "$RUN/eval-$1-sampled.jsonl" | tee "$RUN/eval-$1-sampled.txt"
}

step "4/7 SFT on the worked solutions: $CFG/sft-demo.json"
"$PT" sft --config $CFG/sft-demo.json --model "$RUN/model" --seed "$SEED" \
  --data "$DATA/train.jsonl" --eval-data "$DATA/eval.jsonl" --out "$RUN/sft" | tee "$RUN/sft-summary.txt"
evaluate sft "$RUN/sft/final"

step "5/7 rejection sampling from the SFT model, then SFT on the kept samples"
"$PT" rejection-sample --model "$RUN/sft/final" --data "$DATA/train.jsonl" --rewards "$RUN/rewards.json" \
  --limit 600 --num_samples 8 --temperature 1.0 --threshold 1.0 --max_per_prompt 1 --seed "$SEED" \
  --max_completion_length 128 --out "$DATA/rs.jsonl" --run_dir "$RUN/rs"
"$PT" sft --config $CFG/sft-rs-demo.json --model "$RUN/sft/final" --seed "$SEED" \
  --data "$DATA/rs.jsonl" --out "$RUN/sft-rs" | tail -n 3
evaluate rs "$RUN/sft-rs/final"

step "6/7 GRPO: $CFG/grpo-demo.json"
"$PT" grpo --config $CFG/grpo-demo.json --model "$RUN/sft-rs/final" --seed "$SEED" \
  --data "$DATA/train.jsonl" --eval_data "$DATA/eval.jsonl" --rewards "$RUN/rewards.json" --out "$RUN/grpo"
evaluate grpo "$RUN/grpo/final"

step "7/7 report: $RUN/report.html"
"$PT" report "$RUN/grpo" -o "$RUN/report.html"

acc() { sed -n 's/^| accuracy *| *\([0-9.]*\)% |$/\1/p' "$RUN/eval-$1.txt"; }
verdicts() { sed -n 's/^| *true_verdicts *| *\([0-9.]*\) |$/\1/p' "$RUN/eval-$1.txt"; }
step "done in ${SECONDS} s — held-out accuracy ($(wc -l <"$DATA/eval.jsonl") problems, seed $SEED)"
printf '| stage                 |  greedy | pass@1 (T 0.6, 4 samples) | true verdicts (greedy) |\n'
printf '|-----------------------|--------:|--------------------------:|-----------------------:|\n'
for s in sft rs grpo; do
  case $s in sft) name="after SFT" ;; rs) name="after rejection + SFT" ;; grpo) name="after GRPO" ;; esac
  printf '| %-21s | %6s%% | %24s%% | %22s |\n' "$name" "$(acc $s)" "$(acc $s-sampled)" "$(verdicts $s)"
done
echo "run folder: $RUN (sft/, rs/, sft-rs/, grpo/ with run.db each; report.html)"
