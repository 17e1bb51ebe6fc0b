"""Golden fixture for rollout/sampler.c: the logits processors transformers' generate() builds.

Run from the repository root:  python3 tests/ref/make_sampler_fixture.py
Needs: torch, transformers (checked with 5.24).
Writes: tests/fixtures/sampler.json (about 100 KB), read by tests/test_sampler.c:
  {"transformers": version,
   "order": [processor class names generate() built for the all-filters case, in order],
   "cases": [{name, V, logits [V], history [n], temperature, top_k, top_p, min_p,
              repetition_penalty,
              probs [V]     (softmax of the processed scores: the sampling distribution,
                             exactly 0 where a filter removed the token; for greedy the
                             one-hot argmax, torch.argmax picking the first maximum),
              logprobs [V]  (log_softmax(penalised logits / T) over the full vocabulary,
                             T = 1 for greedy: what the sampler returns with a token)}]}
The processors come from a tiny LlamaForCausalLM's own GenerationMixin._get_logits_processor,
so the filter order is generate()'s, not ours. Scores are fp32 as in generate(); probabilities
are then taken in float64. Cases: random logits and configs (some logits -inf, histories with
repeats and ids past V), top-p boundary cases with known probabilities, top-k ties, greedy ties.
"""
import json
import math
import os

import numpy as np
import torch
import transformers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, LogitsProcessorList

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "sampler.json")


def floats(vals):
    """fp32 values as the shortest decimal that reads back to the same fp32 (-inf as a string)."""
    out = []
    for x in np.asarray(vals, dtype=np.float32).reshape(-1):
        if np.isneginf(x):
            out.append("-inf")
            continue
        v = float(str(x))
        assert np.float32(v) == x
        out.append(v)
    return out


def doubles(vals):
    """float64 values to 10 significant digits (the tests compare to 1e-6 at best)."""
    return [float(f"{v:.10g}") if math.isfinite(v) else "-inf" for v in np.asarray(vals, dtype=np.float64).reshape(-1)]


def make_model():
    cfg = LlamaConfig(vocab_size=64, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


MODEL = make_model()


def processors(temperature, top_k, top_p, min_p, penalty, n_history):
    greedy = temperature == 0.0
    kw = dict(do_sample=not greedy, repetition_penalty=penalty)
    if not greedy:
        kw.update(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    gc = GenerationConfig(**kw)
    ids = torch.zeros((1, max(n_history, 1)), dtype=torch.long)
    return MODEL._get_logits_processor(generation_config=gc, input_ids_seq_length=ids.shape[1],
                                       encoder_input_ids=ids, logits_processor=LogitsProcessorList(),
                                       device="cpu", model_kwargs={})


def run_case(name, logits, history, temperature, top_k, top_p, min_p, penalty):
    logits = np.asarray(logits, dtype=np.float32)
    V = logits.shape[0]
    procs = processors(temperature, top_k, top_p, min_p, penalty, len(history))
    ids = torch.tensor([history if history else [0]], dtype=torch.long)
    if not history:
        ids = ids[:, :0]
    scores = torch.from_numpy(logits.copy())[None, :]
    out = procs(ids, scores.clone()).to(torch.float64)[0]
    if temperature == 0.0:
        probs = torch.zeros(V, dtype=torch.float64)
        probs[int(torch.argmax(out))] = 1.0
    else:
        probs = torch.softmax(out, dim=-1)
    # The full distribution: only the penalty (a processor) and the temperature, no truncation.
    pen = LogitsProcessorList(procs[:1] if penalty != 1.0 else [])
    assert penalty == 1.0 or type(procs[0]).__name__ == "RepetitionPenaltyLogitsProcessor"
    full = pen(ids, torch.from_numpy(logits.copy())[None, :])
    if temperature not in (0.0, 1.0):
        full = full / temperature
    logprobs = torch.log_softmax(full.to(torch.float64), dim=-1)[0]
    return dict(name=name, V=V, logits=floats(logits), history=list(map(int, history)),
                temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, repetition_penalty=penalty,
                probs=doubles(probs.numpy()), logprobs=doubles(logprobs.numpy()))


def main():
    rng = np.random.default_rng(20240607)
    order = [type(p).__name__ for p in processors(0.7, 5, 0.9, 0.05, 1.3, 3)]
    cases = []
    for i in range(40):
        V = int(rng.choice([5, 17, 64, 128]))
        logits = rng.normal(0.0, float(rng.choice([1.0, 2.0])), V).astype(np.float32)
        if i % 5 == 4:
            logits[rng.choice(V, size=max(1, V // 4), replace=False)] = -np.inf
            logits[int(rng.integers(V))] = 1.0  # at least one finite
        n_hist = int(rng.integers(0, 2 * V))
        history = [int(x) for x in rng.integers(0, V + 3, n_hist)]  # repeats and ids past V
        temperature = float(rng.choice([0.5, 1.0, 1.7])) if i % 8 != 7 else 0.0
        top_k = int(rng.choice([0, 0, 1, 3, V // 2, V + 5]))
        top_p = float(rng.choice([1.0, 0.5, 0.8, 0.95]))
        min_p = float(rng.choice([0.0, 0.0, 0.02, 0.1]))
        penalty = float(rng.choice([1.0, 1.3, 0.8, 2.0]))
        cases.append(run_case(f"random_{i}", logits, history, temperature, top_k, top_p, min_p, penalty))

    # top-p boundary: p = (0.5, 0.3, 0.2) shuffled; the token that crosses top_p is kept.
    p = np.array([0.2, 0.5, 0.3])
    for top_p in (0.4, 0.75, 0.85, 0.99):
        cases.append(run_case(f"top_p_boundary_{top_p}", np.log(p), [], 1.0, 0, top_p, 0.0, 1.0))
    # top-k cutting through ties keeps every tie.
    cases.append(run_case("top_k_ties", [1.0, 2.0, 0.5, 2.0, 2.0, -1.0], [], 1.0, 2, 1.0, 0.0, 1.0))
    # min-p relative to the max probability: p ∝ (8, 4, 2, 1), min_p 0.3 keeps 8 and 4 (and not 2: 2/8 < 0.3).
    cases.append(run_case("min_p_relative", np.log([1.0, 8.0, 2.0, 4.0]), [], 1.0, 0, 1.0, 0.3, 1.0))
    # penalty sign handling: positive logits divided, negative multiplied, zero unchanged, once per id.
    cases.append(run_case("penalty_signs", [2.0, -1.0, 0.0, 1.5, -0.5], [0, 1, 2, 1, 1], 1.0, 0, 1.0, 0.0, 1.5))
    # greedy ties: the lowest id.
    cases.append(run_case("greedy_ties", [0.5, 3.0, 1.0, 3.0, 3.0], [], 0.0, 0, 1.0, 0.0, 1.0))
    # greedy under the penalty: id 0 (2.0 / 1.25 = 1.6) falls below id 1 (1.9).
    cases.append(run_case("greedy_penalised", [2.0, 1.9, -3.0], [0], 0.0, 0, 1.0, 0.0, 1.25))

    with open(OUT, "w") as f:
        json.dump({"transformers": transformers.__version__, "order": order, "cases": cases}, f)
    print(f"wrote {OUT}: {len(cases)} cases, order {order}, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
