"""Golden GRPO-family losses and gradients, computed with torch autograd.

Run from the repository root:  python3 tests/ref/make_grpo_fixture.py
Writes tests/fixtures/grpo_loss.json.

The loss is written here from TRL's GRPOTrainer._compute_loss (token / sequence importance
sampling, clipped objective with epsilon_low/epsilon_high, k3 KL against the reference, the
grpo / bnpo / dapo / dr_grpo normalisations) and from the GSPO paper (sequence ratio
exp(mean_t(logp − old_logp))). torch autograd gives d loss / d logp on the padded (S, T) grid.
Inputs are float32 values (what the C code reads); the math runs in float64 on them.
Every loss_type × importance_sampling_level × beta ∈ {0, 0.04} is one case.
"""
import json
import torch

torch.manual_seed(1234)
S, T = 6, 11
lengths = [11, 4, 7, 1, 9, 6]
mask = torch.zeros(S, T, dtype=torch.float64)
for i, n in enumerate(lengths):
    mask[i, :n] = 1.0
mask[2, 5] = 0.0           # a hole inside a completion
mask[4, :] = 0.0           # a fully masked completion (masked reward / truncated)

f32 = lambda x: x.to(torch.float32).to(torch.float64)
logp = f32(-torch.rand(S, T, dtype=torch.float64) * 3.0 - 0.05)
old = f32(logp + 0.25 * torch.randn(S, T, dtype=torch.float64))
ref = f32(logp + 0.4 * torch.randn(S, T, dtype=torch.float64))
adv = f32(torch.randn(S, dtype=torch.float64))
adv[5] = 0.0
# make sure both signs clip at sequence level too: nudge two sequences' old log-probs
old[0] = f32(old[0] + 0.3)
old[1] = f32(old[1] - 0.3)

MAX_LEN = 16
NUM_ITEMS = 70.0  # dapo: tokens of the whole optimizer step (more than this micro-batch)


def compute(loss_type, level, beta, eps_low, eps_high):
    lp = logp.clone().requires_grad_(True)
    log_ratio = lp - old
    if level == "token":
        log_w = log_ratio
    else:
        log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(log_w)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    a = adv.unsqueeze(1)
    per_token = -torch.min(coef_1 * a, coef_2 * a)
    kl = torch.exp(ref - lp) - (ref - lp) - 1
    if beta != 0.0:
        per_token = per_token + beta * kl
    if per_token.shape[1] == 1:
        per_token = per_token.expand(S, T)
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (S * MAX_LEN)
    elif loss_type == "dapo":
        loss = (per_token * mask).sum() / max(1.0, NUM_ITEMS)
    loss.backward()
    low = (coef_1 < 1 - eps_low) & (a < 0)
    high = (coef_1 > 1 + eps_high) & (a > 0)
    region = low | high

    def mm(x):
        x = x.to(torch.float64)
        if x.shape[1] == 1:
            return x.mean().item()
        return ((x * mask).sum() / mask.sum().clamp(min=1.0)).item()

    return {
        "loss_type": loss_type, "level": level, "beta": beta,
        "epsilon_low": eps_low, "epsilon_high": eps_high,
        "loss": loss.item(),
        "dlogp": lp.grad.flatten().tolist(),
        "kl": ((kl.detach() * mask).sum() / mask.sum()).item(),
        "clip_low": mm(low), "clip_high": mm(high), "clip_region": mm(region),
    }


cases = []
for loss_type in ["grpo", "bnpo", "dapo", "dr_grpo"]:
    for level in ["token", "sequence"]:
        for beta in [0.0, 0.04]:
            eps = (0.2, 0.28) if level == "token" else (0.05, 0.08)
            cases.append(compute(loss_type, level, beta, *eps))

out = {
    "S": S, "T": T, "max_completion_length": MAX_LEN, "num_items": NUM_ITEMS,
    "mask": [int(v) for v in mask.flatten().tolist()],
    "logp": logp.flatten().tolist(), "old_logp": old.flatten().tolist(),
    "ref_logp": ref.flatten().tolist(), "advantages": adv.tolist(),
    "cases": cases,
}
with open("tests/fixtures/grpo_loss.json", "w") as f:
    json.dump(out, f, indent=0)
for c in cases:
    print(c["loss_type"], c["level"], c["beta"], "loss %.6f" % c["loss"],
          "clip %.3f/%.3f/%.3f" % (c["clip_low"], c["clip_high"], c["clip_region"]))
