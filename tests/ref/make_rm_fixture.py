"""Golden fixture for the reward model, produced by transformers' DeepseekV3ForSequenceClassification.

Run from the repository root:  python3 tests/ref/make_rm_fixture.py
Needs: torch, transformers (>= 5), safetensors.

Writes tests/fixtures/reward_model/tiny/:
  config.json, model.safetensors   the sequence-classification model (num_labels 1) exactly as
                                   save_pretrained writes it: the DeepSeek-V3 trunk under model.*
                                   and the scalar head score.weight [1, hidden_size]; no lm_head
  io.safetensors                   input_ids (B,T) i64 right-padded with pad_token_id (row 1's
                                   last real token is pad_token_id too, as EOS is when EOS == PAD),
                                   lengths (B) i64 (real tokens), scores (B) f32 (HF's pooled
                                   logits: the head applied to the final-normed hidden state of the
                                   rightmost non-pad token), coef (B) f32, objective () f32
  grads.safetensors                d objective / d parameter for every trainable tensor, per-expert
                                   names as in model.safetensors (score.weight included)
Weights are drawn as in make_model_fixture.py (larger std, random norms and router biases) and the
router margin is checked the same way, so fp32 implementations make the same expert choices.
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import DeepseekV3Config, DeepseekV3ForSequenceClassification

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixture import CONFIGS, router_margins  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "reward_model", "tiny")
PAD = 0


def build(seed):
    torch.manual_seed(seed)
    kw = dict(CONFIGS["tiny_qlora"])
    kw.update(num_labels=1, pad_token_id=PAD)
    cfg = DeepseekV3Config(**kw)
    model = DeepseekV3ForSequenceClassification(cfg).float()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
        for layer in model.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.e_score_correction_bias.copy_(0.1 * torch.randn(cfg.n_routed_experts))
    B, T = 3, 9
    lengths = torch.tensor([9, 6, 4])
    ids = torch.randint(1, cfg.vocab_size, (B, T))
    for b in range(B):
        ids[b, lengths[b]:] = PAD
    # Row 1 ends with a real token equal to PAD (EOS == PAD, as in many tokenizers): HF pools at the
    # token before it, and so must posttrain (its length still counts the token).
    ids[1, lengths[1] - 1] = PAD
    coef = torch.tensor([0.7, -1.3, 0.5])

    captured = {}
    hooks = []
    for li, layer in enumerate(model.model.layers):
        if hasattr(layer.mlp, "gate"):
            hooks.append(layer.mlp.register_forward_hook(
                lambda mod, inp, out, li=li: captured.__setitem__(li, inp[0].detach().reshape(-1, cfg.hidden_size))))
    out = model(input_ids=ids)
    for h in hooks:
        h.remove()
    margin = router_margins(model, captured, cfg)
    if margin < 2e-3:
        return None, margin
    scores = out.logits.reshape(B)
    # An independent check of what the head is: the pooled logit is hidden_last . score.weight.
    hidden = model.model(input_ids=ids).last_hidden_state
    pooled = [lengths[0] - 1, lengths[1] - 2, lengths[2] - 1]
    manual = torch.stack([hidden[b, pooled[b]] @ model.score.weight[0] for b in range(B)])
    assert torch.allclose(manual, scores, atol=1e-6), (manual, scores)
    objective = (coef * scores).sum()
    objective.backward()

    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT)
    save_file({"input_ids": ids.contiguous(), "lengths": lengths.contiguous(),
               "scores": scores.detach().contiguous(), "coef": coef.contiguous(),
               "objective": objective.detach().reshape(())}, os.path.join(OUT, "io.safetensors"))
    split = {}
    I = cfg.moe_intermediate_size
    for n, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.detach()
        if n.endswith("experts.gate_up_proj"):
            base = n[: -len("gate_up_proj")]
            for e in range(g.shape[0]):
                split[f"{base}{e}.gate_proj.weight"] = g[e, :I].contiguous()
                split[f"{base}{e}.up_proj.weight"] = g[e, I:].contiguous()
        elif n.endswith("experts.down_proj"):
            base = n[: -len("down_proj")]
            for e in range(g.shape[0]):
                split[f"{base}{e}.down_proj.weight"] = g[e].contiguous()
        else:
            split[n] = g.contiguous()
    assert "score.weight" in split
    save_file(split, os.path.join(OUT, "grads.safetensors"))
    return OUT, margin


def main():
    for seed in range(100):
        d, margin = build(seed)
        if d:
            print(f"reward model: seed {seed}, router margin {margin:.4f} -> {d}")
            return
    sys.exit("no seed gave a clear router margin")


if __name__ == "__main__":
    main()
