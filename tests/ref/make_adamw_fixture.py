"""Golden fixture for kernels/adamw.c: torch.optim.AdamW steps and torch.nn.utils.clip_grad_norm_.

Run from the repository root:  python3 tests/ref/make_adamw_fixture.py
Needs: torch, numpy.
Writes: tests/fixtures/adamw.json (about 25 KB), read by tests/test_adamw.c:
  {"adamw": [{name, lr, beta1, beta2, eps, weight_decay, n, steps,
              param0 [n], grads [steps][n],
              params [steps][n], exp_avg [steps][n], exp_avg_sq [steps][n]   (after each step)}],
   "clip": [{name, max_norm, sizes [b], grads [b][..], norm (the returned pre-clip norm),
             clipped [b][..] (the gradients afterwards)}]}
AdamW runs the single-tensor path (foreach=False, fused=False), torch's reference loop; the
gradients vary in scale per element and per step (down to 1e-5, below sqrt(eps) for some
settings, and some exact zeros) so that eps, both bias corrections and the decay all matter.
"""
import json
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "adamw.json")

N = 24
STEPS = 5

SETTINGS = {
    "torch_defaults": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01),
    "no_weight_decay": dict(lr=1e-2, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.0),
    "large_lr_eps": dict(lr=0.1, beta1=0.5, beta2=0.9, eps=1e-3, weight_decay=0.1),
    "deepseek_like": dict(lr=2.2e-4, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1),
}


def floats(t):
    """fp32 values as the shortest decimal that reads back to the same fp32."""
    vals = t.detach().to(torch.float32).reshape(-1).numpy()
    out = [float(str(x)) for x in vals]
    assert all(np.float32(o) == x for o, x in zip(out, vals)), "fp32 round trip failed"
    return out


def make_grad(gen, step):
    scale = torch.logspace(-5, 0, N)[torch.randperm(N, generator=gen)]
    g = torch.randn(N, generator=gen) * scale * (1.0 + step)
    g[(step * 5) % N] = 0.0
    return g


def adamw_case(name, hp, seed):
    gen = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(N, generator=gen))
    case = dict(name=name, n=N, steps=STEPS, **hp, param0=floats(p), grads=[], params=[], exp_avg=[],
                exp_avg_sq=[])
    opt = torch.optim.AdamW([p], lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                            weight_decay=hp["weight_decay"], foreach=False, fused=False)
    for step in range(STEPS):
        g = make_grad(gen, step)
        p.grad = g.clone()
        opt.step()
        st = opt.state[p]
        case["grads"].append(floats(g))
        case["params"].append(floats(p))
        case["exp_avg"].append(floats(st["exp_avg"]))
        case["exp_avg_sq"].append(floats(st["exp_avg_sq"]))
    return case


def clip_case(name, max_norm, sizes, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.zeros(s)) for s in sizes]
    grads = [torch.randn(s, generator=gen) * scale for s in sizes]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm=max_norm, norm_type=2.0)
    return dict(name=name, max_norm=max_norm, sizes=sizes, grads=[floats(g) for g in grads], norm=float(norm),
                clipped=[floats(p.grad) for p in params])


def main():
    cases = [adamw_case(name, hp, 100 + i) for i, (name, hp) in enumerate(SETTINGS.items())]
    clips = [
        clip_case("clipped", 1.0, [7, 16, 3], 7, 1.0),        # norm ~ 5: scaled by ~0.2
        clip_case("not_clipped", 100.0, [5, 9], 8, 1.0),      # norm ~ 3.7: untouched
        clip_case("tiny_max_norm", 1e-3, [33], 9, 0.5),
    ]
    with open(OUT, "w") as f:
        json.dump({"adamw": cases, "clip": clips}, f)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
