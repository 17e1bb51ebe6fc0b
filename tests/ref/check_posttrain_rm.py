"""Loads a reward model trained by `posttrain rm` into transformers and compares scores.

Run from the repository root after `make`:  python3 tests/ref/check_posttrain_rm.py [path/to/posttrain]
Needs: torch, transformers (>= 5), tokenizers. Writes only under a temporary folder.

posttrain writes a random tiny model with the fixture tokenizer (`posttrain init`; its EOS is also
its PAD, the case where transformers' pooling skips the trailing EOS), trains it for a few steps on
generated preference pairs (`posttrain rm`), serves the result (`posttrain serve --reward-model`)
and scores completions over HTTP (`POST /v1/score`). transformers'
AutoModelForSequenceClassification must load the folder as a one-label
DeepseekV3ForSequenceClassification and reproduce every score. Exit status 0 on a match.
"""
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForSequenceClassification

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "posttrain")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "vocab_size": 2048, "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 16,
    "num_hidden_layers": 2, "first_k_dense_replace": 1, "num_attention_heads": 2,
    "num_key_value_heads": 2, "q_lora_rank": 12, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
    "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 4, "n_shared_experts": 1,
    "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1, "norm_topk_prob": True,
    "routed_scaling_factor": 1.0, "hidden_act": "silu", "rms_norm_eps": 1e-6,
    "max_position_embeddings": 128, "rope_theta": 10000.0, "rope_scaling": None,
    "initializer_range": 0.1, "tie_word_embeddings": False, "num_nextn_predict_layers": 1,
}
WORDS = "the cat dog sun tree blue red green house river stone bird fish cloud rain".split()


def pair(r):
    base = [r.choice(WORDS) for _ in range(r.randint(3, 6))]
    k = r.randrange(len(base))
    chosen, rejected = list(base), list(base)
    chosen[k], rejected[k] = "please", r.choice(WORDS)
    return {"prompt": "Say: " + " ".join(r.choice(WORDS) for _ in range(3)) + ".",
            "chosen": " " + " ".join(chosen), "rejected": " " + " ".join(rejected)}


def main():
    r = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        cfg, data = os.path.join(tmp, "config.json"), os.path.join(tmp, "pairs.jsonl")
        with open(cfg, "w") as f:
            json.dump(CONFIG, f)
        with open(data, "w") as f:
            for _ in range(200):
                f.write(json.dumps(pair(r)) + "\n")
        base, run = os.path.join(tmp, "base"), os.path.join(tmp, "run")
        subprocess.run([BIN, "init", "--config", cfg, "--out", base, "--tokenizer", TOKENIZER], check=True)
        subprocess.run([BIN, "rm", "--model", base, "--data", data, "--out", run, "--max-steps", "20",
                        "--learning-rate", "1e-3", "--log-level", "warn"], check=True)
        final = os.path.join(run, "final")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        srv = subprocess.Popen([BIN, "serve", "--reward-model", final, "--port", str(port)])
        try:
            items = [{"prompt": p["prompt"], "completion": c} for p in (pair(r) for _ in range(8))
                     for c in (p["chosen"], p["rejected"])]
            body = json.dumps({"items": items}).encode()
            for _ in range(100):
                try:
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/score", data=body, method="POST")
                    ours = json.load(urllib.request.urlopen(req, timeout=30))["scores"]
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                sys.exit("posttrain serve did not answer")
        finally:
            srv.terminate()
            srv.wait()

        model = AutoModelForSequenceClassification.from_pretrained(final).float().eval()
        assert type(model).__name__ == "DeepseekV3ForSequenceClassification" and model.config.num_labels == 1
        tok = Tokenizer.from_file(os.path.join(final, "tokenizer.json"))
        eos = tok.token_to_id("<｜end▁of▁sentence｜>")
        worst = 0.0
        for it, score in zip(items, ours):
            ids = tok.encode(it["prompt"]).ids + tok.encode(it["completion"], add_special_tokens=False).ids + [eos]
            with torch.no_grad():
                ref = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
            worst = max(worst, abs(ref - score))
        print(f"{len(items)} scores, max |posttrain - transformers| = {worst:.2e}")
        if worst > 1e-4:
            sys.exit("mismatch")


if __name__ == "__main__":
    main()
