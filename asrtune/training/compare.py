"""Dev WER and the forgetting check, decoded by the recognisers ``asrtune eval`` uses.

Training never decodes with code of its own: dev WER wraps the live model in the family's
recogniser (``adapter.recognizer``: ``WhisperHFRecognizer`` with its prompt and suppress list,
or the greedy ``CTCRecognizer``), and :func:`compare_base_and_tuned` loads the base model and
``best/`` through :func:`asrtune.inference.load_recognizer`, as ``asrtune eval`` does. The
normaliser fits the language (:func:`asrtune.text.normalizers.normalizer_for_language`).

After training, ``--eval-sets a.jsonl,b.jsonl`` transcribes each set (and the dev set) with the
base model and with ``best/`` and writes ``RUN_DIR/eval_results.json``. A fine-tune that helps
the domain but hurts general English shows up as a positive change on the general sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from asrtune.data.audio import load_audio
from asrtune.data.manifest import Utterance, load_manifest
from asrtune.fileio import write_json_atomic
from asrtune.text.normalizers import normalizer_for_language


def score(refs: list[str], hyps: list[str], language: str | None) -> float:
    """Corpus WER with the normaliser that fits ``language``.

    >>> score(["Hello, world."], ["hello world"], None), score(["a b"], ["a c"], "de")
    (0.0, 0.5)
    """
    from asrtune.evaluation.metrics import corpus_wer

    return float(corpus_wer(refs, hyps, normalizer=normalizer_for_language(language)))


def utterance_audio(utt: Utterance) -> np.ndarray:
    """The utterance's clip, 16 kHz mono float32."""
    return load_audio(utt.audio_filepath, offset=utt.offset, duration=utt.duration or None)


def compare_base_and_tuned(base: Any, tuned: Path, sets: list[str], config: Any, device: str,
                           say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Rows ``{set, utterances, base_wer, tuned_wer, delta}`` for each manifest in ``sets``;
    printed through ``say`` and written to ``tuned``'s run dir as ``eval_results.json``."""
    from asrtune.inference import load_recognizer

    data = {s: load_manifest(s) for s in sets}
    audio = {s: [utterance_audio(u) for u in utts] for s, utts in data.items()}
    rows = {s: {"set": s, "utterances": len(utts)} for s, utts in data.items()}
    for label, model in (("base", base), ("tuned", str(tuned))):
        recognizer = load_recognizer(model, engine="hf", device=device, batch_size=config.eval_batch_size,
                                     language=config.language)
        for s, utts in data.items():
            rows[s][f"{label}_wer"] = score([u.text for u in utts], recognizer.transcribe(audio[s]), config.language)
        del recognizer  # one model in memory at a time
    out = [{**row, "delta": row["tuned_wer"] - row["base_wer"]} for row in rows.values()]
    write_json_atomic(Path(tuned).parent / "eval_results.json", out)
    say(format_table(out))
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as a fixed-width text table (one line per set)."""
    lines = [f"{'set':<40} {'utts':>5} {'base WER':>9} {'tuned WER':>10} {'change':>8}"]
    for r in rows:
        name = Path(r["set"]).parent.name + "/" + Path(r["set"]).name
        lines.append(f"{name:<40} {r['utterances']:>5} {100 * r['base_wer']:>8.2f}% "
                     f"{100 * r['tuned_wer']:>9.2f}% {100 * r['delta']:>+7.2f}")
    return "\n".join(lines)
