"""The order utterances are trained in: deterministic per (seed, epoch), so a resume can
continue mid-epoch at exactly the next batch.

One manifest: each epoch is a fresh shuffle of it. Several manifests with ``--weights``
(replay, e.g. ``--train domain.jsonl --train general.jsonl --weights 0.9,0.1``): an epoch is one
pass over the FIRST (domain) manifest, and the others fill their weighted share of each epoch,
cycling through their own shuffles. Without ``--weights`` several manifests are simply pooled.

>>> plan = epoch_plan([4, 100], [0.8, 0.2], epoch=0, seed=0)
>>> len(plan), sum(1 for s, _ in plan if s == 0)
(5, 4)
"""

from __future__ import annotations

import numpy as np


def epoch_plan(sizes: list[int], weights: list[float] | None, epoch: int, seed: int) -> list[tuple[int, int]]:
    """``(source, index)`` pairs for one epoch, shuffled."""
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        pairs = [(s, i) for s, n in enumerate(sizes) for i in range(n)]
    else:
        epoch_len = sizes[0] / weights[0]
        pairs = []
        for s, (n, w) in enumerate(zip(sizes, weights)):
            if n == 0 or w == 0:
                continue
            count = sizes[0] if s == 0 else int(round(epoch_len * w))
            # Cycle through this source's own shuffle, continuing across epochs.
            start = epoch * count
            reps = (start + count) // n + 1
            order = np.concatenate([np.random.default_rng([seed, s, r]).permutation(n) for r in range(start // n, reps)])
            offset = start - (start // n) * n
            pairs += [(s, int(i)) for i in order[offset : offset + count]]
    perm = rng.permutation(len(pairs))
    return [pairs[i] for i in perm]


# Grouping looks at this many batches' worth of the shuffled plan at a time: large enough that
# batches hold similar durations, small enough that the epoch stays well mixed.
GROUP_WINDOW_BATCHES = 50


def group_by_duration(
    plan: list[tuple[int, int]], durations: list[list[float]], batch_size: int, epoch: int, seed: int
) -> list[tuple[int, int]]:
    """Reorder an epoch plan so each consecutive ``batch_size`` slice holds similar durations.

    Windows of ``GROUP_WINDOW_BATCHES`` batches are sorted by duration and cut into batches, and
    all batches are then shuffled (so a step is not always the longest). Padding, which costs
    compute in models that read raw audio (CTC), drops sharply. Deterministic per (seed, epoch),
    like :func:`epoch_plan`, so a resume continues at the same batch. ``durations[source][i]``
    is the duration of utterance ``i`` of source ``source``.

    >>> plan = [(0, i) for i in range(8)]
    >>> grouped = group_by_duration(plan, [[1, 9, 2, 8, 3, 7, 4, 6]], batch_size=2, epoch=0, seed=0)
    >>> sorted(sorted(durs) for durs in ([[1, 9, 2, 8, 3, 7, 4, 6][i] for _, i in grouped[k:k + 2]] for k in range(0, 8, 2)))
    [[1, 2], [3, 4], [6, 7], [8, 9]]
    """
    if batch_size <= 1 or len(plan) <= batch_size:
        return list(plan)
    window = batch_size * GROUP_WINDOW_BATCHES
    batches: list[list[tuple[int, int]]] = []
    for start in range(0, len(plan), window):
        chunk = sorted(plan[start : start + window], key=lambda p: durations[p[0]][p[1]])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng = np.random.default_rng([seed, epoch, 7])
    order = rng.permutation(len(batches))
    return [pair for b in order for pair in batches[b]]
