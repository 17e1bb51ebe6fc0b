"""reward_fn.py — an example reward function with TRL's signature, served to posttrain by
adapter.py. It rewards step-by-step reasoning: lines that start a step ("Step 2:", "1.", "- ",
"First,", "Then", "Finally") count, and three or more steps earn the full 1.0.
Completions that are empty get None (no score) rather than 0.
"""
import re

STEP = re.compile(r"^\s*(step\s*\d+\s*[:.]|\d+[.)]\s|[-*]\s|first\b|second\b|next\b|then\b|finally\b)",
                  re.IGNORECASE | re.MULTILINE)


def reward_fn(prompts, completions, **columns):
    scores = []
    for completion in completions:
        if not completion.strip():
            scores.append(None)
            continue
        steps = len(STEP.findall(completion))
        scores.append(min(1.0, steps / 3.0))
    return scores
