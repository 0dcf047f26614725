"""Deterministic train/dev/test splits, optionally speaker-disjoint.

    split_manifest("data/all.jsonl", "data/", ratios=(0.8, 0.1, 0.1), by_speaker=True, seed=0)
    # -> data/train.jsonl, data/dev.jsonl, data/test.jsonl; no speaker in two of them

The same manifest, ratios and seed always give the same split (the random generator is seeded
and speakers are sorted before shuffling, so the input's line order within a speaker does not
matter). Within each output, lines keep their input order.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from asrtune.data.manifest import Utterance, load_manifest, write_manifest
from asrtune.errors import AsrtuneError, ConfigError

SPLIT_NAMES = ("train", "dev", "test")


def parse_ratios(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"0.8,0.1,0.1"`` → ``(0.8, 0.1, 0.1)``; 2 or 3 non-negative numbers summing to 1."""
    try:
        ratios = tuple(float(x) for x in (text.split(",") if isinstance(text, str) else text))
    except ValueError:
        raise ConfigError(f"--ratios must be comma-separated numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(ratios) not in (2, 3):
        raise ConfigError(f"--ratios needs 2 (train,dev) or 3 (train,dev,test) numbers, got {len(ratios)}")
    if any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"--ratios must be >= 0 and sum to 1, got {','.join(map(str, ratios))} (sum {sum(ratios):g})")
    return ratios


def assign_splits(utterances: list[Utterance], ratios: Sequence[float], by_speaker: bool = False, seed: int = 0) -> list[int]:
    """The split index (0=train, 1=dev, 2=test) of every utterance, deterministically.

    Without ``by_speaker`` utterances are shuffled and cut at the ratio boundaries (exact counts).
    With it, whole speakers are shuffled and each goes to the split whose share of the total
    utterance count contains the middle of that speaker's block, so counts come close to the
    ratios while no speaker straddles two splits.
    """
    ratios = parse_ratios(ratios)
    rng = random.Random(seed)
    n = len(utterances)
    bounds = [sum(ratios[: i + 1]) for i in range(len(ratios))]
    if not by_speaker:
        order = list(range(n))
        rng.shuffle(order)
        result = [0] * n
        cuts = [round(b * n) for b in bounds]
        for rank, index in enumerate(order):
            result[index] = next(s for s, cut in enumerate(cuts) if rank < cut or s == len(cuts) - 1)
        return result
    groups: dict[str, list[int]] = defaultdict(list)
    missing = [u.line_no or i + 1 for i, u in enumerate(utterances) if u.speaker is None]
    if missing:
        raise AsrtuneError(
            f"--by-speaker needs a 'speaker' field on every line; {len(missing)} line(s) lack one (first: line {missing[0]})"
        )
    for i, u in enumerate(utterances):
        groups[u.speaker].append(i)
    speakers = sorted(groups)
    rng.shuffle(speakers)
    result = [0] * n
    done = 0
    for spk in speakers:
        middle = (done + len(groups[spk]) / 2) / n
        split = next(s for s, b in enumerate(bounds) if middle < b or s == len(bounds) - 1)
        for i in groups[spk]:
            result[i] = split
        done += len(groups[spk])
    return result


def split_manifest(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    ratios: str | Sequence[float] = (0.8, 0.1, 0.1),
    by_speaker: bool = False,
    seed: int = 0,
) -> dict[str, int]:
    """Write ``out_dir/train.jsonl``, ``dev.jsonl`` (and ``test.jsonl``); return counts per split.

    Audio paths are re-rooted relative to ``out_dir``. A split whose ratio is > 0 but that ends up
    empty (too few utterances or speakers) is an error rather than a silently empty file.
    """
    ratios = parse_ratios(ratios)
    utterances = load_manifest(manifest)
    if not utterances:
        raise AsrtuneError(f"{manifest}: no utterances to split")
    assignment = assign_splits(utterances, ratios, by_speaker, seed)
    counts = {SPLIT_NAMES[s]: assignment.count(s) for s in range(len(ratios))}
    empty = [name for (name, c), r in zip(counts.items(), ratios) if c == 0 and r > 0]
    if empty:
        unit = "speakers" if by_speaker else "utterances"
        have = len({u.speaker for u in utterances}) if by_speaker else len(utterances)
        raise AsrtuneError(f"{manifest}: split(s) {', '.join(empty)} would be empty with {have} {unit} and ratios {','.join(map(str, ratios))}")
    out_dir = Path(out_dir)
    for s, name in enumerate(SPLIT_NAMES[: len(ratios)]):
        write_manifest(out_dir / f"{name}.jsonl", (u for u, a in zip(utterances, assignment) if a == s))
    return counts


__all__ = ["SPLIT_NAMES", "assign_splits", "parse_ratios", "split_manifest"]
