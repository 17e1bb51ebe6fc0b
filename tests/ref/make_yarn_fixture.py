"""Golden fixture for kernels/rope.c: RoPE/YaRN parameters and rotations, produced by transformers.

Run from the repository root:  python3 tests/ref/make_yarn_fixture.py
Needs: torch, transformers (>= 5).
Writes: tests/fixtures/rope_yarn.json (about 80 KB), read by tests/test_rope.c:
  {"configs": [{name, rope_dim, qk_head_dim, theta, yarn (null or the rope_parameters keys, absent
                keys omitted, factor null = absent), inv_freq [rope_dim/2], attention_factor,
                softmax_scale}],
   "rotations": [{name, config (index into configs), heads, positions [T], inv_freq, attention_factor,
                  q_in (H,T,D), k_in (T,D) in DeepSeek's interleaved layout,
                  q_out (H,T,D), k_out (T,D) as transformers returns them (de-interleaved: the
                  rotated even elements, then the rotated odd elements)}]}
Every number comes from transformers itself: DeepseekV3RotaryEmbedding (inv_freq and
attention_scaling, through the rope init function the config selects), DeepseekV3Attention.scaling
(the softmax scale), and apply_rotary_pos_emb_interleave on cos/sin from the rotary embedding.
"""
import json
import os

import numpy as np
import torch
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
    DeepseekV3Attention,
    DeepseekV3RotaryEmbedding,
    apply_rotary_pos_emb_interleave,
)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "rope_yarn.json")

V3_YARN = dict(factor=40, beta_fast=32, beta_slow=1, mscale=1.0, mscale_all_dim=1.0,
               original_max_position_embeddings=4096)

# name: (rope_dim, nope_dim, theta, max_position_embeddings, yarn dict or None)
CONFIGS = {
    # plain RoPE with DeepSeek-V3's head sizes.
    "plain_v3": (64, 128, 10000.0, 4096, None),
    # DeepSeek-V3's own rope_scaling.
    "deepseek_v3": (64, 128, 10000.0, 163840, V3_YARN),
    # mscale != mscale_all_dim: attention_factor = m(0.707)/m(1.0) != 1.
    "mscale_differs": (64, 128, 10000.0, 163840, dict(V3_YARN, mscale=0.707, mscale_all_dim=1.0)),
    # a small model: rope dim 16, factor 4 (= max/orig).
    "small_factor4": (16, 16, 10000.0, 256, dict(factor=4.0, beta_fast=32, beta_slow=1, mscale=1.0,
                                                 mscale_all_dim=1.0, original_max_position_embeddings=64)),
    # explicit factor 4 while max/orig = 2: transformers uses the explicit factor.
    "factor_mismatch": (16, 16, 10000.0, 128, dict(factor=4.0, mscale=1.0, mscale_all_dim=1.0,
                                                   original_max_position_embeddings=64)),
    # factor absent: derived as max/orig = 2; no mscale keys, so the softmax scale is plain.
    "factor_absent": (16, 8, 10000.0, 8192, dict(factor=None, original_max_position_embeddings=4096)),
    # no truncation, other betas and theta, a rope dim that is not a power of two, and only
    # mscale_all_dim (attention_factor from factor alone; the softmax scale uses mscale_all_dim).
    "no_truncate": (24, 8, 50000.0, 32768, dict(factor=8.0, beta_fast=16, beta_slow=2, mscale_all_dim=0.8,
                                                original_max_position_embeddings=4096, truncate=False)),
    # an explicit attention_factor overrides the inferred one.
    "explicit_attention_factor": (32, 16, 10000.0, 16384, dict(factor=4.0, attention_factor=1.25, mscale=1.0,
                                                               mscale_all_dim=1.0,
                                                               original_max_position_embeddings=4096)),
}

# name: (config, heads, positions)
ROTATIONS = {
    "plain_small": ("plain_v3", 2, [0, 1, 5, 33, 1000]),
    "yarn_small_af": ("mscale_differs", 2, [0, 1, 2, 17, 4095, 4096, 50000, 163839]),
    "yarn_dim16": ("small_factor4", 3, [0, 3, 9, 63, 64, 200, 255]),
}


def make_config(rope_dim, nope_dim, theta, max_pos, yarn):
    if yarn is None:
        rope = {"rope_type": "default", "rope_theta": theta}
    else:
        rope = dict(yarn, rope_type="yarn", rope_theta=theta)
    return DeepseekV3Config(hidden_size=32, num_attention_heads=2, num_key_value_heads=2, q_lora_rank=None,
                            kv_lora_rank=16, qk_rope_head_dim=rope_dim, qk_nope_head_dim=nope_dim,
                            v_head_dim=8, max_position_embeddings=max_pos, rope_parameters=rope)


def floats(t):
    """fp32 values as the shortest decimal that reads back to the same fp32 (keeps the file small)."""
    vals = t.detach().to(torch.float32).reshape(-1).numpy()
    out = [float(str(x)) for x in vals]
    assert all(np.float32(o) == x for o, x in zip(out, vals)), "fp32 round trip failed"
    return out


def main():
    torch.manual_seed(1234)
    configs, built = [], {}
    for name, (rope_dim, nope_dim, theta, max_pos, yarn) in CONFIGS.items():
        cfg = make_config(rope_dim, nope_dim, theta, max_pos, yarn)
        rot = DeepseekV3RotaryEmbedding(cfg)
        attn = DeepseekV3Attention(cfg, layer_idx=0)
        built[name] = (cfg, rot)
        configs.append({
            "name": name, "rope_dim": rope_dim, "qk_head_dim": rope_dim + nope_dim, "theta": theta,
            "max_position_embeddings": max_pos,
            "yarn": None if yarn is None else dict(yarn),
            "inv_freq": floats(rot.inv_freq),
            "attention_factor": float(rot.attention_scaling),
            "softmax_scale": float(attn.scaling),
        })
    names = list(CONFIGS)
    rotations = []
    for name, (cname, heads, positions) in ROTATIONS.items():
        cfg, rot = built[cname]
        d = cfg.qk_rope_head_dim
        t = len(positions)
        q = torch.randn(1, heads, t, d)
        k = torch.randn(1, 1, t, d)
        pos = torch.tensor([positions], dtype=torch.long)
        cos, sin = rot(q, pos)
        q_out, k_out = apply_rotary_pos_emb_interleave(q, k, cos, sin)
        rotations.append({
            "name": name, "config": names.index(cname), "heads": heads, "positions": positions,
            "inv_freq": floats(rot.inv_freq), "attention_factor": float(rot.attention_scaling),
            "q_in": floats(q), "k_in": floats(k), "q_out": floats(q_out), "k_out": floats(k_out),
        })
    with open(OUT, "w") as f:
        json.dump({"configs": configs, "rotations": rotations}, f)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
