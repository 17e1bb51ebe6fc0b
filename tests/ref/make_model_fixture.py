"""Golden fixtures for the DeepSeek-V3 policy model, produced by transformers' DeepseekV3ForCausalLM.

Run from the repository root:  python3 tests/ref/make_model_fixture.py
Needs: torch, transformers (>= 5), safetensors.

For each tiny configuration it writes tests/fixtures/model/<name>/:
  config.json, model.safetensors   the model exactly as save_pretrained writes it
  io.safetensors                   input_ids (B,T) i64, labels (B,T) i64 (-100 = ignored),
                                   logits (B,T,V) f32, loss () f32, router_topk (L_moe,B*T,K) i64
  grads.safetensors                d loss / d parameter for every trainable tensor, same names
The weights are drawn with a larger std than HF's default and with random norm weights and router
biases, so that every term of the forward and backward matters. Router choices are checked to have
a clear margin (no near-ties), so a fp32 implementation must make the same expert choices.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "model")

CONFIGS = {
    # q_lora + grouped routing (n_group 4 > topk_group 2) + top-k normalisation + a dense and two MoE layers.
    "tiny_qlora": dict(vocab_size=96, hidden_size=32, intermediate_size=48, moe_intermediate_size=16,
                      num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
                      n_shared_experts=1, n_routed_experts=8, routed_scaling_factor=2.5,
                      kv_lora_rank=16, q_lora_rank=12, qk_rope_head_dim=8, v_head_dim=12,
                      qk_nope_head_dim=8, n_group=4, topk_group=2, num_experts_per_tok=3,
                      first_k_dense_replace=1, norm_topk_prob=True, max_position_embeddings=64,
                      rope_scaling=None, rope_theta=10000.0, initializer_range=0.2, rms_norm_eps=1e-6,
                      num_nextn_predict_layers=0, tie_word_embeddings=False),
    # plain q_proj (q_lora_rank null) + YaRN with mscale != mscale_all_dim (cos/sin and softmax
    # scale both change), no top-k normalisation, 2 shared experts, one group.
    "tiny_qproj_yarn": dict(vocab_size=80, hidden_size=24, intermediate_size=40, moe_intermediate_size=8,
                       num_hidden_layers=2, num_attention_heads=3, num_key_value_heads=3,
                       n_shared_experts=2, n_routed_experts=6, routed_scaling_factor=1.0,
                       kv_lora_rank=10, q_lora_rank=None, qk_rope_head_dim=4, v_head_dim=6,
                       qk_nope_head_dim=6, n_group=1, topk_group=1, num_experts_per_tok=2,
                       first_k_dense_replace=1, norm_topk_prob=False, max_position_embeddings=32,
                       rope_scaling=dict(type="yarn", factor=2.0, beta_fast=32, beta_slow=1,
                                         mscale=0.707, mscale_all_dim=1.0,
                                         original_max_position_embeddings=16),
                       rope_theta=500.0, initializer_range=0.2,
                       rms_norm_eps=1e-5, num_nextn_predict_layers=0, tie_word_embeddings=False),
}


def router_margins(model, x_by_layer, cfg):
    """Smallest gap between the chosen and the best rejected candidate, per MoE layer."""
    gaps = []
    for layer, x in x_by_layer.items():
        gate = model.model.layers[layer].mlp.gate
        s = torch.sigmoid(x.float() @ gate.weight.float().T)
        c = s + gate.e_score_correction_bias
        E, G = cfg.n_routed_experts, cfg.n_group
        gs = c.view(-1, G, E // G).topk(min(2, E // G), dim=-1)[0].sum(-1)
        srt = gs.sort(dim=-1, descending=True)[0]
        if cfg.topk_group < G:
            gaps.append((srt[:, cfg.topk_group - 1] - srt[:, cfg.topk_group]).min().item())
        keep = gs.topk(cfg.topk_group, dim=-1)[1]
        mask = torch.zeros_like(gs).scatter_(1, keep, 1).bool()
        mask = mask.unsqueeze(-1).expand(-1, G, E // G).reshape(-1, E)
        cm = c.masked_fill(~mask, float("-inf")).sort(dim=-1, descending=True)[0]
        k = cfg.num_experts_per_tok
        nxt = cm[:, k]
        gap = torch.where(torch.isinf(nxt), torch.full_like(nxt, 1.0), cm[:, k - 1] - nxt)
        gaps.append(gap.min().item())
    return min(gaps)


def build(name, kw, seed):
    torch.manual_seed(seed)
    cfg = DeepseekV3Config(**kw)
    model = DeepseekV3ForCausalLM(cfg).float()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
        for layer in model.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.e_score_correction_bias.copy_(0.1 * torch.randn(cfg.n_routed_experts))
    B, T = 2, 9
    ids = torch.randint(0, cfg.vocab_size, (B, T))
    labels = ids.clone()
    labels[0, 3] = -100
    labels[1, 7] = -100

    # Capture the input of each MoE block to check router margins.
    captured = {}
    hooks = []
    for li, layer in enumerate(model.model.layers):
        if hasattr(layer.mlp, "gate"):
            hooks.append(layer.mlp.register_forward_hook(
                lambda mod, inp, out, li=li: captured.__setitem__(li, inp[0].detach().reshape(-1, cfg.hidden_size))))
    out = model(input_ids=ids, labels=labels)
    for h in hooks:
        h.remove()
    margin = router_margins(model, captured, cfg)
    if margin < 2e-3:
        return None, margin
    out.loss.backward()

    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d)
    topk = []
    for li in sorted(captured):
        _, _, idx = model.model.layers[li].mlp.gate(captured[li])
        topk.append(idx.sort(dim=-1)[0])
    save_file({"input_ids": ids.contiguous(), "labels": labels.contiguous(),
               "logits": out.logits.detach().contiguous(), "loss": out.loss.detach().reshape(()),
               "router_topk": torch.stack(topk).contiguous()}, os.path.join(d, "io.safetensors"))
    grads = {n: p.grad.detach().contiguous() for n, p in model.named_parameters() if p.grad is not None}
    # Experts are fused in memory by transformers v5 but saved per expert: split the gradients the same way.
    sd_names = None
    from safetensors import safe_open
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        sd_names = set(f.keys())
    split = {}
    for n, g in grads.items():
        if n.endswith("experts.gate_up_proj"):
            base = n[: -len("gate_up_proj")]
            I = cfg.moe_intermediate_size
            for e in range(g.shape[0]):
                split[f"{base}{e}.gate_proj.weight"] = g[e, :I].contiguous()
                split[f"{base}{e}.up_proj.weight"] = g[e, I:].contiguous()
        elif n.endswith("experts.down_proj"):
            base = n[: -len("down_proj")]
            for e in range(g.shape[0]):
                split[f"{base}{e}.down_proj.weight"] = g[e].contiguous()
        else:
            split[n] = g
    missing = sd_names - set(split) - {n for n in sd_names if n.endswith("e_score_correction_bias")}
    assert not missing, f"gradients missing for {sorted(missing)}"
    save_file(split, os.path.join(d, "grads.safetensors"))
    return d, margin


def main():
    for name, kw in CONFIGS.items():
        for seed in range(100):
            d, margin = build(name, kw, seed)
            if d:
                print(f"{name}: seed {seed}, router margin {margin:.4f} -> {d}")
                break
        else:
            sys.exit(f"{name}: no seed gave a clear router margin")


if __name__ == "__main__":
    main()
