"""Forgetting check: base vs tuned model on the domain dev set and general sets, side by side.

After training, ``--eval-sets a.jsonl,b.jsonl`` transcribes each set with the base model and
with ``best/`` (greedy) and reports normalised WER for both, the change, and writes
``RUN_DIR/eval_results.json``. A fine-tune that helps the domain but hurts general English shows
up here as a positive delta on the general sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asrtune.data.manifest import load_manifest
from asrtune.fileio import write_json_atomic


def compare_base_and_tuned(trainer: Any, resolved_base: Any) -> list[dict[str, Any]]:
    """Rows ``{set, utterances, base_wer, tuned_wer, delta}``; also printed and saved as JSON."""
    from asrtune.models import resolve_model
    from asrtune.training.trainer import _adapter_class, dev_wer

    cfg = trainer.config
    sets = ([cfg.dev] if cfg.dev else []) + [s for s in cfg.eval_sets if s != cfg.dev]
    data = {s: load_manifest(s) for s in sets}
    audio = {s: [trainer._load_audio(u) for u in utts] for s, utts in data.items()}
    rows: dict[str, dict[str, Any]] = {s: {"set": s, "utterances": len(u)} for s, u in data.items()}
    for label, model_ref in (("base", resolved_base), ("tuned", resolve_model(str(trainer.run_dir / "best")))):
        adapter = _adapter_class(model_ref.family).from_resolved(model_ref, cfg)
        adapter.model.to(trainer.device)
        for s, utts in data.items():
            hyps = adapter.transcribe(audios=audio[s], batch_size=cfg.eval_batch_size)
            rows[s][f"{label}_wer"] = dev_wer([u.text for u in utts], hyps)
        del adapter
    out = []
    for row in rows.values():
        row["delta"] = row["tuned_wer"] - row["base_wer"]
        out.append(row)
    write_json_atomic(Path(trainer.run_dir) / "eval_results.json", out)
    trainer.say(format_table(out))
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'set':<40} {'utts':>5} {'base WER':>9} {'tuned WER':>10} {'change':>8}"]
    for r in rows:
        lines.append(
            f"{Path(r['set']).parent.name + '/' + Path(r['set']).name:<40} {r['utterances']:>5} "
            f"{100 * r['base_wer']:>8.2f}% {100 * r['tuned_wer']:>9.2f}% {100 * r['delta']:>+7.2f}"
        )
    return "\n".join(lines)
