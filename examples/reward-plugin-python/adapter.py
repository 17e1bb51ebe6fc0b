#!/usr/bin/env python3
"""adapter.py — runs a TRL-style reward function as a posttrain subprocess reward.

Usage (in a rewards file; paths relative to where posttrain runs):
    {"name": "steps", "type": "subprocess", "timeout": 30,
     "command": ["python3", "examples/reward-plugin-python/adapter.py",
                 "examples/reward-plugin-python/reward_fn.py:reward_fn"]}

The function is called as TRL calls reward functions:
    reward_fn(prompts=[...], completions=[...], **columns) -> list[float | None]
where each dataset column (e.g. answer) arrives as a list with one entry per completion (None
where an example lacks it), plus completion_tokens (list of int | None). None means "no score"
(masked, not zero).

Protocol (rewards/reward_subprocess.c): one JSON request line per batch on stdin,
{"items": [{"prompt", "completion", "columns", "completion_tokens"?}, ...]}, one reply line on
stdout, {"scores": [x | null, ...]}, or {"error": "..."} when the function raises (the batch is
then counted as failed, never as zeros). Anything the function prints goes to stderr, so it
cannot corrupt the protocol.
"""
import importlib.util
import json
import math
import os
import sys
import traceback


def load_function(spec):
    path, _, name = spec.rpartition(":")
    if not path or not name:
        sys.exit(f"adapter.py: expected FILE.py:FUNCTION, got {spec!r}")
    module_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def score_batch(fn, request):
    items = request["items"]
    columns = {}
    for i, item in enumerate(items):
        for key, value in (item.get("columns") or {}).items():
            columns.setdefault(key, [None] * len(items))[i] = value
    columns["completion_tokens"] = [item.get("completion_tokens") for item in items]
    scores = fn(prompts=[item["prompt"] for item in items],
                completions=[item["completion"] for item in items], **columns)
    scores = list(scores)
    if len(scores) != len(items):
        raise ValueError(f"reward function returned {len(scores)} scores for {len(items)} completions")
    out = []
    for s in scores:
        if s is None:
            out.append(None)
        else:
            s = float(s)
            out.append(s if math.isfinite(s) else None)
    return {"scores": out}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: adapter.py FILE.py:FUNCTION")
    protocol_out = sys.stdout
    sys.stdout = sys.stderr  # prints inside the reward function must not reach the protocol stream
    fn = load_function(sys.argv[1])
    stdin = open(sys.stdin.fileno(), "r", encoding="utf-8", errors="replace", closefd=False)
    while True:
        line = stdin.readline()
        if not line:
            return
        try:
            reply = score_batch(fn, json.loads(line))
        except Exception as e:  # the batch failed: say so instead of inventing scores
            traceback.print_exc(file=sys.stderr)
            reply = {"error": f"{type(e).__name__}: {e}"[:200]}
        protocol_out.write(json.dumps(reply) + "\n")
        protocol_out.flush()


if __name__ == "__main__":
    main()
