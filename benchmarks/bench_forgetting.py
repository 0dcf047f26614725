#!/usr/bin/env python
"""Forgetting study: which remedy keeps speechocean762's gain while general English stays put.

Every row fine-tunes whisper-tiny.en's decoder on speechocean762 train (1,200 utterances) with
the same budget - 150 steps of 16 utterances, lr 4e-5, seed 0, encoder cached - and one remedy
(``asrtune train --help``, "keeping general English"):

==============  =============================================================================
row             remedy
==============  =============================================================================
plain           none
l2sp-300        --l2-sp 300 (each step pulls every weight back 300 x lr of its distance to the base)
l2sp-1000       --l2-sp 1000
distill-0.3     --distill-base 0.3 (KL to the frozen base decoder, T = 2)
distill-0.5     --distill-base 0.5
distill-1       --distill-base 1
distill-4       --distill-base 4
replay-20       --replay-text general-english --replay-share 0.2 (the sentences asrtune ships)
replay-40       the same at --replay-share 0.4
distill-0.5+    --distill-base 0.5 with replay-20 (the base is distilled on the replayed general
replay-20       English too, which the domain's audio never shows the decoder)
distill-0.3+    the same at --distill-base 0.3
replay-20
distill-0.15+   the same at --distill-base 0.15
replay-20
==============  =============================================================================

The budget is equal in steps, not in minutes: on a shared machine the minutes depend on the
load; each row records its wall time (distillation costs one more decoder forward a step).
The guard (general-English dev sets, 0.5 points) and ``--merge-alphas auto`` choose ``best/``
as in any run. Each run gives two rows: ``final/`` (the tune itself) and ``best/`` (what the
guard kept: a checkpoint, a WiSE-FT merge or the base). Each is scored (hf engine, greedy) on
speechocean762 test (500), librispeech-test-clean-40 and ljspeech-32 - never trained or selected
on - with 95 % bootstrap CIs and a paired bootstrap against the plain tune's ``final/``:

* ``gain_kept``: (base WER - row WER) / (base WER - plain final/ WER) on speechocean762 test;
* ``librispeech_rise``, ``ljspeech_rise``: row WER - base WER, in points;
* ``admissible``: both rises <= 0.5 points.

Usage::

    python -m benchmarks.bench_forgetting --rows plain,distill-1      # train (or reuse) and score
    python -m benchmarks.bench_forgetting --rows all
    python -m benchmarks.bench_forgetting --rows pair --pair "--distill-base 1 --l2-sp 1000"
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from benchmarks.harness import (FORGETTING_SETS, WORK, append_record, data_root, describe_hardware, guard_manifest,
                                parser, run_child, scored_manifests, utc_now, write_result_raw)

MODEL = "openai/whisper-tiny.en"
STEPS = 150
LR = 4e-5
BATCH = 16
EVAL_EVERY = 50
GUARD_MARGIN_PTS = 0.5
REPLAY_TEXT = "general-english"  # the sentences asrtune ships
ROWS: dict[str, list[str]] = {
    "plain": [],
    "l2sp-300": ["--l2-sp", "300"],
    "l2sp-1000": ["--l2-sp", "1000"],
    "distill-0.3": ["--distill-base", "0.3"],
    "distill-0.5": ["--distill-base", "0.5"],
    "distill-1": ["--distill-base", "1"],
    "distill-4": ["--distill-base", "4"],
    "replay-20": ["--replay-text", REPLAY_TEXT, "--replay-share", "0.2"],
    "replay-40": ["--replay-text", REPLAY_TEXT, "--replay-share", "0.4"],
    "distill-0.5+replay-20": ["--distill-base", "0.5", "--replay-text", REPLAY_TEXT, "--replay-share", "0.2"],
    "distill-0.3+replay-20": ["--distill-base", "0.3", "--replay-text", REPLAY_TEXT, "--replay-share", "0.2"],
    "distill-0.15+replay-20": ["--distill-base", "0.15", "--replay-text", REPLAY_TEXT, "--replay-share", "0.2"],
}
SO762 = "speechocean762"
PCT = 100.0


def train_run(name: str, extra: list[str], data: Path, runs: Path) -> dict[str, Any]:
    """``asrtune train`` for one row (own process), reused when its result.json exists."""
    run_dir = runs / name
    if (run_dir / "result.json").exists():
        return json.loads((run_dir / "result.json").read_text())
    so = data / SO762
    cmd = [sys.executable, "-m", "asrtune", "train", "--model", MODEL, "--train", str(so / "train.jsonl"),
           "--dev", str(so / "dev.jsonl"), "--guard-dev", str(guard_manifest(data, runs)),
           "--guard-margin", f"{GUARD_MARGIN_PTS:g}", "--out", str(run_dir), "--force", "--batch-size", str(BATCH),
           "--lr", f"{LR:g}", "--warmup-steps", "5", "--max-steps", str(STEPS), "--eval-every", str(EVAL_EVERY),
           "--save-every", str(EVAL_EVERY), "--threads", "2", "--freeze-token-embeddings", "--no-progress", "--json", *extra]
    print("running:", shlex.join(cmd), flush=True)
    child = run_child(cmd, runs / f"{name}.log")
    if child.exit_code != 0:
        raise SystemExit(f"asrtune train failed (see {runs / f'{name}.log'})")
    return json.loads((run_dir / "result.json").read_text())


def train_minutes(run_dir: Path) -> float:
    """Minutes from the run's start to its last step (metrics.jsonl), the encoder-cache build included."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return round(max((json.loads(line).get("elapsed_s", 0) for line in lines if line.strip()), default=0) / 60, 2)


def hypotheses(model: str, key: str, sets: list[Path], runs: Path) -> dict[str, list[str]]:
    """Greedy hf hypotheses of ``model`` on each set, kept under ``runs/hyps/<key>.json``."""
    path = runs / "hyps" / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    import torch  # heavy: only when something is decoded

    from asrtune.data.manifest import load_manifest
    from asrtune.inference import load_recognizer
    from asrtune.training.compare import utterance_audio

    torch.set_num_threads(2)
    recognizer = load_recognizer(model, engine="hf", device="cpu", batch_size=16, threads=2)
    out = {m.parent.name: recognizer.transcribe([utterance_audio(u) for u in load_manifest(m)]) for m in sets}
    write_result_raw(path, out)
    return out


def word_counts(references: list[str], hyps: list[str]) -> dict[str, int]:
    """Errors and reference words behind a normalised WER (whisper-en normaliser)."""
    from asrtune.evaluation.metrics import align_words_batch
    from asrtune.text.normalizers import get_normalizer

    norm = get_normalizer("whisper-en")
    aligned = align_words_batch([norm(r) for r in references], [norm(h) for h in hyps])
    counts = [a.counts for a in aligned]
    return {"errors": sum(c.substitutions + c.insertions + c.deletions for c in counts),
            "words": sum(c.ref_words for c in counts)}


def paired(result: Any) -> dict[str, Any]:
    """The numbers of a paired bootstrap (this - other) that a row keeps."""
    return {"difference": result.difference, "low": result.low, "high": result.high, "p_value": result.p_value}


def score(name: str, checkpoint: str, hyps: dict[str, list[str]], base: dict[str, list[str]],
          plain: dict[str, list[str]], refs: dict[str, list[str]]) -> dict[str, Any]:
    """One row: WER with CIs on each set, paired tests against the plain tune, gain kept, rises."""
    from asrtune.evaluation.scoring import compare_hypotheses

    sets: dict[str, Any] = {}
    for s, references in refs.items():
        vs_plain = compare_hypotheses(references, hyps[s], plain[s])
        vs_base = compare_hypotheses(references, hyps[s], base[s])
        this = vs_plain.this.normalized
        sets[s] = {"wer": this.estimate, "ci95": [this.low, this.high], **word_counts(references, hyps[s]),
                   "base_wer": vs_base.other.normalized.estimate, "vs_plain": paired(vs_plain.normalized),
                   "vs_base": paired(vs_base.normalized)}
    plain_gain = sets[SO762]["base_wer"] - compare_hypotheses(refs[SO762], plain[SO762], base[SO762]).this.normalized.estimate
    rises = {s: PCT * (sets[s]["wer"] - sets[s]["base_wer"]) for s in FORGETTING_SETS}
    gain = sets[SO762]["base_wer"] - sets[SO762]["wer"]
    return {"row": f"{name} {checkpoint}", "run": name, "checkpoint": checkpoint, "sets": sets,
            "gain_kept": round(gain / plain_gain, 4) if plain_gain > 0 else None,
            "librispeech_rise": round(rises["librispeech-test-clean-40"], 2), "ljspeech_rise": round(rises["ljspeech-32"], 2),
            "admissible": all(r <= GUARD_MARGIN_PTS for r in rises.values())}


def what_best_holds(result: dict[str, Any]) -> str:
    if result.get("best_merge_alpha") is not None:
        return f"merge alpha {result['best_merge_alpha']:g}"
    return "the base model (guard refused every checkpoint)" if result.get("best_step") == 0 else f"step {result.get('best_step')}"


def run_rows(names: list[str], args: argparse.Namespace) -> None:
    from asrtune.data.manifest import load_manifest

    data, runs = data_root(args), Path(args.runs)
    sets = scored_manifests(data)
    refs = {m.parent.name: [u.text for u in load_manifest(m)] for m in sets}
    base = hypotheses(MODEL, "base", sets, runs)
    plain_result = train_run("plain", ROWS["plain"], data, runs)
    plain = hypotheses(str(runs / "plain" / "final"), "plain-final", sets, runs)
    for name in names:
        extra = shlex.split(args.pair) if name == "pair" else ROWS[name]
        result = plain_result if name == "plain" else train_run(name, extra, data, runs)
        for checkpoint in ("final", "best"):
            if checkpoint == "best" and result.get("best_step") == 0 and result.get("best_merge_alpha") is None:
                continue  # best/ is the base model: scored as "base"
            hyps = hypotheses(str(runs / name / checkpoint), f"{name}-{checkpoint}", sets, runs)
            row = score(name, checkpoint, hyps, base, plain, refs) | {
                "when": utc_now(), "hardware": describe_hardware(2), "options": extra, "steps": result["steps"],
                "train_minutes": train_minutes(runs / name), "best_holds": what_best_holds(result),
                "guard": {k: result.get(k) for k in ("guard_base_wer", "best_guard_wer", "final_guard_wer")},
                "dev_wer": {"base": result.get("base_dev_wer"), "best": result.get("best_dev_wer"),
                            "final": result.get("final_dev_wer")}}
            append_record(args.out, row, key=("row",))
            print(f"{row['row']:>22}: so762 {PCT * row['sets'][SO762]['wer']:.2f} % (gain kept {row['gain_kept']}), "
                  f"librispeech {row['librispeech_rise']:+.2f}, ljspeech {row['ljspeech_rise']:+.2f} "
                  f"{'admissible' if row['admissible'] else 'NOT admissible'}", flush=True)


def main() -> int:
    p = parser(__doc__, out="forgetting.json")
    p.add_argument("--rows", default="all", help=f"comma-separated rows ({', '.join(ROWS)}, pair) or all (default: %(default)s)")
    p.add_argument("--pair", default="", help="asrtune train options of the 'pair' row (the best two remedies together)")
    p.add_argument("--runs", type=Path, default=WORK / "forgetting", help="run dirs and hypotheses (default: %(default)s)")
    args = p.parse_args()
    names = list(ROWS) if args.rows == "all" else [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [n for n in names if n not in ROWS and n != "pair"]
    if unknown:
        p.error(f"--rows: unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}, pair")
    if "pair" in names and not args.pair:
        p.error("--rows pair needs --pair 'OPTIONS' (e.g. \"--distill-base 1 --l2-sp 1000\")")
    run_rows(names, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
