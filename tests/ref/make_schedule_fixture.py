"""Golden fixture for core/schedule.c: transformers' learning-rate schedules, stepped for real.

Run from the repository root:  python3 tests/ref/make_schedule_fixture.py
Needs: torch, transformers.
Writes: tests/fixtures/schedule.json (about 15 KB), read by tests/test_optim.c:
  {"cases": [{name, type ("cosine" | "linear" | "constant"), base_lr, warmup_steps, total_steps,
              min_lr_ratio, lrs [steps + 1]}]}
lrs[s] is the learning rate torch's LambdaLR gives the optimizer for its update number s
(scheduler.get_last_lr() after s calls of optimizer.step(); scheduler.step()), for
s = 0 .. total_steps. Values are printed with repr, so they read back as the same doubles.
"""
import json
import os

import torch
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "schedule.json")

# (name, type, base_lr, warmup, total, min_lr_ratio)
CASES = [
    ("cosine_warmup", "cosine", 3e-4, 10, 100, 0.0),
    ("cosine_no_warmup", "cosine", 1e-3, 0, 50, 0.0),
    ("cosine_odd", "cosine", 2.2e-4, 7, 33, 0.0),
    ("cosine_warmup_is_total", "cosine", 5e-5, 12, 12, 0.0),
    ("cosine_min_lr", "cosine", 3e-4, 5, 37, 0.1),
    ("cosine_min_lr_no_warmup", "cosine", 1e-5, 0, 29, 0.25),
    ("linear_warmup", "linear", 5e-5, 7, 60, 0.0),
    ("linear_no_warmup", "linear", 1e-3, 0, 20, 0.0),
    ("constant_warmup", "constant", 2e-4, 10, 30, 0.0),
    ("constant_no_warmup", "constant", 1e-4, 0, 5, 0.0),
]


def make(kind, opt, warmup, total, min_ratio):
    if kind == "cosine" and min_ratio == 0.0:
        return get_cosine_schedule_with_warmup(opt, warmup, total)
    if kind == "cosine":
        return get_cosine_with_min_lr_schedule_with_warmup(opt, warmup, total, min_lr_rate=min_ratio)
    if kind == "linear":
        return get_linear_schedule_with_warmup(opt, warmup, total)
    return get_constant_schedule_with_warmup(opt, warmup)


def main():
    cases = []
    for name, kind, base_lr, warmup, total, min_ratio in CASES:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=base_lr)
        sched = make(kind, opt, warmup, total, min_ratio)
        lrs = [sched.get_last_lr()[0]]
        for _ in range(total):
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr()[0])
        cases.append(
            dict(name=name, type=kind, base_lr=base_lr, warmup_steps=warmup, total_steps=total,
                 min_lr_ratio=min_ratio, lrs=[float(x) for x in lrs])
        )
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"cases": cases}, f)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
