"""The learning-curve figure (matplotlib, Agg): training loss, dev WER and, with ``--guard-dev``,
the guard WER against steps, and the ``--merge-alphas`` interpolations with the one ``best/`` holds."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asrtune.extras import install_hint
from asrtune.fileio import atomic_open

PERCENT = 100.0
log = logging.getLogger("asrtune.train")


@dataclass
class CurveData:
    """What the figure draws, read from ``metrics.jsonl`` (WERs in %)."""

    loss: list[tuple[int, float]] = field(default_factory=list)  # (step, train loss)
    dev: list[tuple[int, float]] = field(default_factory=list)  # (step, dev WER)
    guard: list[tuple[int, float]] = field(default_factory=list)  # (step, guard WER)
    guard_base: float | None = None  # the base model's guard WER (step 0)
    merges: list[dict[str, Any]] = field(default_factory=list)  # {alpha, step, dev, guard, ok}
    chosen_merge: float | None = None  # the alpha of the merge best/ holds


def curve_data(metrics_path: str | Path, chosen_merge: float | None = None) -> CurveData:
    """Read the series of ``metrics.jsonl``. The merge ``best/`` holds is ``chosen_merge``, or else
    the one ``best/asrtune_training.json`` beside the metrics names."""
    metrics_path = Path(metrics_path)
    data = CurveData(chosen_merge=chosen_merge if chosen_merge is not None else _saved_merge(metrics_path.parent))
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        event = r.get("event")
        if "loss" in r and event is None:
            data.loss.append((r["step"], r["loss"]))
        if event is None and r.get("dev_wer") is not None:
            data.dev.append((r["step"], PERCENT * r["dev_wer"]))
            if r.get("guard_wer") is not None:
                data.guard.append((r["step"], PERCENT * r["guard_wer"]))
        if event == "guard-base" and r.get("guard_wer") is not None:
            data.guard_base = PERCENT * r["guard_wer"]
        if event is None and r.get("guard_base_wer") is not None:
            data.guard_base = PERCENT * r["guard_base_wer"]
        if event == "merge" and r.get("merge_dev_wer") is not None:
            guard = r.get("guard_wer")
            data.merges.append({"alpha": r["alpha"], "step": r["step"], "dev": PERCENT * r["merge_dev_wer"],
                                "guard": None if guard is None else PERCENT * guard, "ok": r.get("guard_ok", True)})
    return data


def _saved_merge(run_dir: Path) -> float | None:
    try:
        alpha = json.loads((run_dir / "best" / "asrtune_training.json").read_text(encoding="utf-8")).get("merge_alpha")
    except (OSError, ValueError, AttributeError):
        return None
    return float(alpha) if alpha is not None else None


def plot_learning_curve(metrics_path: str | Path, out_png: str | Path, chosen_merge: float | None = None) -> Path | None:
    """Draw ``metrics.jsonl`` to ``out_png``: loss per logged step on the left axis; dev WER, the
    guard WER (with the base's as a dotted line) and the merges (the chosen one starred and
    labelled) on the right. Returns None, drawing nothing, when there are no metrics or matplotlib
    is not installed (the [plots] extra; metrics.jsonl holds the same numbers)."""
    try:
        import matplotlib  # optional extra [plots]: without it the run has no learning_curve.png
    except ImportError:
        log.warning("no learning_curve.png: it needs matplotlib (%s)", install_hint("plots"))
        return None

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt  # optional extra [plots]; after matplotlib.use picks the backend

    metrics_path = Path(metrics_path)
    if not metrics_path.exists():
        return None
    data = curve_data(metrics_path, chosen_merge)
    fig, ax = plt.subplots(figsize=(7, 4.6))
    if data.loss:
        ax.plot(*zip(*data.loss), color="tab:blue", label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("train loss", color="tab:blue")
    if data.dev or data.guard or data.merges:
        ax2 = ax.twinx()
        _plot_wers(ax2, data)
        ax2.set_ylabel("WER (%, normalised)", color="tab:red")
        handles = ax.get_legend_handles_labels()
        more = ax2.get_legend_handles_labels()
        # below the axes: the merges sit at the right edge, where a legend inside would cover them
        ax2.legend(handles[0] + more[0], handles[1] + more[1], fontsize="small", loc="upper center",
                   bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
        if data.merges:  # room for the alpha labels right of the last step
            left, right = ax.get_xlim()
            ax.set_xlim(left, right + 0.12 * (right - left))
    ax.set_title("learning curve")
    fig.tight_layout()
    with atomic_open(out_png, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return Path(out_png)


def _plot_wers(ax: Any, data: CurveData) -> None:
    if data.dev:
        ax.plot(*zip(*data.dev), "o-", color="tab:red", label="dev WER")
    if data.guard:
        ax.plot(*zip(*data.guard), "s-", color="tab:green", label="guard WER")
    if data.guard_base is not None:
        ax.axhline(data.guard_base, color="tab:green", linestyle=":", linewidth=1, label="guard WER of the base")
    for m in data.merges:
        chosen = data.chosen_merge is not None and abs(m["alpha"] - data.chosen_merge) < 1e-9
        ax.plot([m["step"]], [m["dev"]], "*" if chosen else "D", color="tab:red", markersize=14 if chosen else 6,
                markerfacecolor="tab:red" if chosen else "none")
        if m["guard"] is not None:
            ax.plot([m["step"]], [m["guard"]], "*" if chosen else "D", color="tab:green", markersize=14 if chosen else 6,
                    markerfacecolor="tab:green" if chosen else "none")
        ax.annotate(f"a={m['alpha']:g}" + (" (best/)" if chosen else ""), (m["step"], m["dev"]),
                    textcoords="offset points", xytext=(6, 0), fontsize="x-small", color="tab:red")
    if data.merges:
        ax.plot([], [], "D", color="tab:red", markerfacecolor="none", label="merges with the base (dev, guard)")
