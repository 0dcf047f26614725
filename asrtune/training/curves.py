"""The learning-curve figure: training loss and dev WER against steps (matplotlib, Agg)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from asrtune.extras import install_hint

log = logging.getLogger("asrtune.train")


def plot_learning_curve(metrics_path: str | Path, out_png: str | Path) -> Path | None:
    """Draw ``metrics.jsonl`` (loss per logged step, dev WER per evaluation) to ``out_png``.

    Returns None, drawing nothing, when there are no metrics or matplotlib is not installed (the
    [plots] extra; metrics.jsonl holds the same numbers).
    """
    try:
        import matplotlib
    except ImportError:
        log.warning("no learning_curve.png: it needs matplotlib (%s)", install_hint("plots"))
        return None

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    from asrtune.fileio import atomic_open

    metrics_path = Path(metrics_path)
    if not metrics_path.exists():
        return None
    loss, wer = [], []
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in r and "event" not in r:
            loss.append((r["step"], r["loss"]))
        if r.get("dev_wer") is not None:
            wer.append((r["step"], 100 * r["dev_wer"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    if loss:
        ax.plot(*zip(*loss), color="tab:blue", label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("train loss", color="tab:blue")
    if wer:
        ax2 = ax.twinx()
        ax2.plot(*zip(*wer), "o-", color="tab:red", label="dev WER")
        ax2.set_ylabel("dev WER (%, normalised)", color="tab:red")
    ax.set_title("learning curve")
    fig.tight_layout()
    with atomic_open(out_png, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return Path(out_png)
