"""Loads a model folder written by posttrain into transformers and compares logits.

Run from the repository root after `make`:  python3 tests/ref/check_posttrain_checkpoint.py
Needs: torch, transformers (>= 5), safetensors. Writes only under a temporary folder.

posttrain writes a random model (`posttrain init`) with q_lora, grouped routing, YaRN and one
MTP module (stored as layer num_hidden_layers, which transformers ignores), computes logits for a
token sequence (`posttrain logits`), and transformers' DeepseekV3ForCausalLM.from_pretrained must
load every main-model tensor of that folder and reproduce the logits. Exit status 0 on a match.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import DeepseekV3ForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN = os.path.join(ROOT, "posttrain")

CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "vocab_size": 120, "hidden_size": 48, "intermediate_size": 64, "moe_intermediate_size": 16,
    "num_hidden_layers": 3, "first_k_dense_replace": 1, "num_attention_heads": 3,
    "num_key_value_heads": 3, "q_lora_rank": 24, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
    "qk_rope_head_dim": 8, "v_head_dim": 12, "n_routed_experts": 8, "n_shared_experts": 1,
    "num_experts_per_tok": 2, "n_group": 4, "topk_group": 2, "norm_topk_prob": True,
    "routed_scaling_factor": 2.5, "hidden_act": "silu", "rms_norm_eps": 1e-6,
    "max_position_embeddings": 64, "rope_theta": 10000.0,
    "rope_scaling": {"type": "yarn", "factor": 4.0, "beta_fast": 32, "beta_slow": 1, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 16},
    "initializer_range": 0.2, "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1,
    "num_nextn_predict_layers": 1,
}


def main():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `make` first")
    ids = [3, 17, 5, 99, 42, 42, 7, 110, 64, 1, 0, 58]
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump(CONFIG, f)
        model_dir = os.path.join(tmp, "model")
        out = os.path.join(tmp, "logits.safetensors")
        subprocess.run([BIN, "init", "--config", cfg_path, "--out", model_dir, "--seed", "3"], check=True)
        subprocess.run([BIN, "logits", "--model", model_dir, "--ids", ",".join(map(str, ids)), "--out", out],
                       check=True)
        ours = load_file(out)["logits"]
        model, info = DeepseekV3ForCausalLM.from_pretrained(model_dir, output_loading_info=True)
        missing = info["missing_keys"]
        if missing:
            sys.exit(f"transformers found no weights for {sorted(missing)}")
        mtp = [k for k in info["unexpected_keys"] if not k.startswith("model.layers.3.")]
        if mtp:
            sys.exit(f"unexpected tensors beyond the MTP module: {sorted(mtp)}")
        with torch.no_grad():
            theirs = model(input_ids=torch.tensor([ids])).logits[0]
        diff = (ours - theirs).abs().max().item()
        print(f"max |logit difference| = {diff:.3g} over {theirs.numel()} logits")
        if not diff < 1e-4:
            sys.exit("posttrain's checkpoint does not reproduce its logits in transformers")
        print("ok: transformers reproduces posttrain's logits")


if __name__ == "__main__":
    main()
