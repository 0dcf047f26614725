"""Write a scored evaluation: report.json, utterances.jsonl, report.md and report.html.

Each file is written atomically (temporary sibling, then rename); report.json goes last, so a
folder with a report.json holds a complete report. The HTML page is self-contained: plots are
PNGs drawn with matplotlib's Agg backend and embedded as base64, so it can be mailed or
attached to a ticket as one file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from asrtune.evaluation.bootstrap import PairedResult
from asrtune.evaluation.labels import model_rows, speed_rows
from asrtune.evaluation.schema import EvalReport, FieldRow, SetScores, TermReport
from asrtune.evaluation.scoring import Report
from asrtune.extras import install_hint
from asrtune.fileio import atomic_open, write_json_atomic, write_text_atomic

REPORT_FILES = ("report.json", "utterances.jsonl", "report.md", "report.html")
WORST_SHOWN = 25
SCATTER_CLIP = 150.0  # % per-utterance WER beyond which the before/after scatter clips points  # utterances with most errors listed in report.md / report.html


def _clean(obj: Any) -> Any:
    """JSON-safe copy of a per-utterance record: non-finite floats (undefined rates) become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _clean(obj.item())
    return obj


def pct(x: float | None, digits: int = 2) -> str:
    """A fraction as a percentage string; '-' for undefined."""
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def fmt_p(p: float, n_resamples: int) -> str:
    """A paired test's p-value; at the resolution floor 1/(B+1) it reads '< 1/B' instead.

    >>> fmt_p(0.42, 1000), fmt_p(1 / 1001, 1000)
    ('0.4200', '< 0.001')
    """
    return f"< {1 / n_resamples:.4g}" if p <= 1 / (n_resamples + 1) + 1e-12 else f"{p:.4f}"


def _ci_text(low: float | None, high: float | None, sep: str = " - ") -> str:
    return f"{pct(low)}{sep}{pct(high)}"


def write_report(report: Report, out_dir: str | os.PathLike) -> dict[str, str]:
    """Write all report files into ``out_dir`` (created if needed); returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = report.summary
    paths = {name: str(out / name) for name in REPORT_FILES}
    with atomic_open(paths["utterances.jsonl"]) as f:
        for rec in report.utterances:
            f.write(json.dumps(_clean(rec), ensure_ascii=False) + "\n")
    write_text_atomic(paths["report.md"], render_markdown(summary, report.utterances))
    write_text_atomic(paths["report.html"], render_html(summary, report.utterances))
    write_json_atomic(paths["report.json"], summary.to_dict())
    return paths


# ----------------------------------------------------------------------------- text tables


def summary_rows(summary: EvalReport) -> list[list[str]]:
    """Rows of the headline table: view, WER, 95 % CI, CER, S, D, I, hits, ref words."""
    rows = []
    views = (("orthographic", summary.orthographic, summary.confidence_interval.orthographic),
             (f"normalised ({summary.normalizer.name})", summary.normalized, summary.confidence_interval.normalized))
    for label, b, ci in views:
        rows.append([label, pct(b.wer), _ci_text(ci.low, ci.high), pct(b.cer), str(b.substitutions), str(b.deletions),
                     str(b.insertions), str(b.hits), str(b.ref_words)])
    return rows


SUMMARY_HEADER = ["scoring", "WER", "95% CI", "CER", "sub", "del", "ins", "hits", "ref words"]


def format_table(summary: EvalReport) -> str:
    """The short plain-text table the CLI prints."""
    rows = [SUMMARY_HEADER] + summary_rows(summary)
    widths = [max(len(r[c]) for r in rows) for c in range(len(SUMMARY_HEADER))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    extra = [f"{summary.n_utterances} utterances; normaliser {summary.normalizer.name} ({summary.normalizer.version})"]
    if summary.flags.counts:
        extra.append("flags: " + ", ".join(f"{k} {v}" for k, v in summary.flags.counts.items()))
    if summary.failed:
        extra.append(f"failed to decode: {len(summary.failed)} (listed in report.json 'failed')")
    speed = summary.speed
    if speed is not None and speed.rtf is not None:
        extra.append(f"speed: {speed.audio_s / 3600:.3f} h audio in {speed.decode_s:.1f} s decode, RTF {speed.rtf:.3f}")
    cmp = summary.compare
    if cmp:
        c = cmp.normalized
        extra.append(
            f"vs {cmp.other_dir}: {pct(c.other_wer)} -> {pct(c.this_wer)} "
            f"(diff {pct(c.difference)}, 95% CI {_ci_text(c.low, c.high, ' .. ')}, p: {fmt_p(c.p_value, c.n_resamples)}, "
            f"{cmp.matched_utterances} matched)"
        )
    return "\n".join(lines + [""] + extra)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _field_rows(rows: tuple[FieldRow, ...]) -> list[list[str]]:
    return [
        [r.value, str(r.utterances), pct(r.wer), _ci_text(*r.wer_ci), pct(r.orthographic_wer), str(r.substitutions),
         str(r.deletions), str(r.insertions), str(r.ref_words)]
        for r in rows
    ]


FIELD_HEADER = ["value", "utts", "WER (norm)", "95% CI", "WER (orth)", "sub", "del", "ins", "ref words"]


def _term_rows(terms: TermReport) -> list[list[str]]:
    o = terms.overall
    rows = [["(all terms)", str(o.ref), str(o.hyp), str(o.found), pct(o.recall, 1), pct(o.precision, 1)]]
    for t in terms.per_term:
        rows.append([t.term, str(t.ref), str(t.hyp), str(t.found), pct(t.recall, 1), pct(t.precision, 1)])
    return rows


def _per_manifest_rows(per_manifest: dict[str, SetScores]) -> list[list[str]]:
    rows = []
    for path, m in per_manifest.items():
        ci = m.confidence_interval.normalized
        rows.append([path, str(m.n_utterances), pct(m.normalized.wer), _ci_text(ci.low, ci.high),
                     pct(m.orthographic.wer), pct(m.normalized.cer)])
    return rows


PER_MANIFEST_HEADER = ["manifest", "utts", "WER (norm)", "95% CI", "WER (orth)", "CER (norm)"]


def _compare_rows(views: tuple[tuple[str, PairedResult], ...]) -> list[list[str]]:
    return [[view, pct(c.other_wer), pct(c.this_wer), pct(c.difference), _ci_text(c.low, c.high, " .. "),
             fmt_p(c.p_value, c.n_resamples)] for view, c in views]


COMPARE_HEADER = ["scoring", "other WER", "this WER", "difference", "95% CI", "p (two-sided)"]


def _ci_method(summary: EvalReport) -> str:
    ci = summary.confidence_interval.normalized
    return f"{ci.method}, {ci.n_resamples} resamples, seed {ci.seed}"


TERM_HEADER = ["term", "in refs", "in hyps", "found", "recall", "precision"]


def _worst(utterances: list[dict], n: int = WORST_SHOWN) -> list[dict]:
    return sorted(utterances, key=lambda r: (-(r["normalized"]["substitutions"] + r["normalized"]["insertions"]
                                               + r["normalized"]["deletions"]), r["id"]))[:n]


def render_markdown(summary: EvalReport, utterances: list[dict]) -> str:
    """report.md: the same numbers as report.json, for a pull request or a wiki page."""
    s = summary
    lines = [
        f"# ASR evaluation: {s.model.title}",
        "",
        f"- utterances: {s.n_utterances}; manifests: {', '.join(m.path for m in s.manifests) or '-'}",
        f"- normaliser: **{s.normalizer.name}** version `{s.normalizer.version}` — {s.normalizer.description}",
        f"- orthographic scoring: {s.orthographic_description}",
        f"- CI: {_ci_method(s)}",
        "",
        "## Summary",
        "",
        _md_table(SUMMARY_HEADER, summary_rows(s)),
        "",
        "## Model and decoding",
        "",
        _md_table(["setting", "value"], [list(row) for row in model_rows(s.model)]),
        "",
    ]
    if s.per_manifest:
        lines += ["## Per manifest", "", _md_table(PER_MANIFEST_HEADER, _per_manifest_rows(s.per_manifest)), ""]
    if s.speed:
        lines += ["## Speed", "", _md_table(["measure", "value"], [list(row) for row in speed_rows(s.speed)]), ""]
    cmp = s.compare
    if cmp:
        other = cmp.other_model.title if cmp.other_model else "-"
        lines += ["## Comparison (this - other)", "", f"Other report: `{cmp.other_dir}`; other model: `{other}`. "
                  f"The other hypotheses were re-scored with this report's normaliser. Matched utterances: "
                  f"{cmp.matched_utterances} (only here: {cmp.only_in_this}, only there: {cmp.only_in_other}).", ""]
        rows = _compare_rows((("normalized", cmp.normalized), ("orthographic", cmp.orthographic)))
        lines += [_md_table(COMPARE_HEADER, rows), "",
                  f"Per utterance: {cmp.improved} improved, {cmp.worsened} worsened, {cmp.unchanged} unchanged.", ""]
    if s.terms:
        lines += ["## Domain terms", "", f"Method: {s.terms.method}.", "", _md_table(TERM_HEADER, _term_rows(s.terms)), ""]
    flags = s.flags
    lines += ["## Failure flags", ""]
    lines += [f"- **{k}** ({flags.definitions[k]}): {v}" for k, v in flags.counts.items()]
    for f in flags.utterances[:WORST_SHOWN]:
        lines.append(f"  - `{f.id}`: {', '.join(f.flags)} — hyp: {f.hyp[:200]!r}")
    lines.append("")
    if s.failed:
        lines += ["## Failed to decode (skipped)", ""] + [f"- `{f.audio_filepath}`: {f.error}" for f in s.failed] + [""]
    for key, rows in s.by_field.items():
        lines += [f"## WER by {key}", "", _md_table(FIELD_HEADER, _field_rows(rows)), ""]
    lines += ["## Utterances with the most errors (normalised)", ""]
    for r in _worst(utterances):
        lines += [f"`{r['id']}` — {r['normalized']['substitutions']}S {r['normalized']['deletions']}D "
                  f"{r['normalized']['insertions']}I / {r['normalized']['ref_words']} words", "", "```", *r["alignment"], "```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots


def _png(fig) -> str:
    import matplotlib.pyplot as plt  # optional extra [plots]: called only with a figure from _pyplot

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    """pyplot on the Agg backend, or None without matplotlib (the [plots] extra): the page then has no figures."""
    try:
        import matplotlib  # optional extra [plots]: without it the page has no figures
    except ImportError:
        return None
    matplotlib.use("Agg")  # no display: draw to memory
    import matplotlib.pyplot as plt  # optional extra [plots]; after matplotlib.use picks the backend

    return plt


def plot_error_types(summary: EvalReport) -> str | None:
    """Bars of substitutions / deletions / insertions, orthographic vs normalised."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    kinds = ["substitutions", "deletions", "insertions"]
    width = 0.38
    views = (("orthographic", summary.orthographic, "#bbbbbb"), ("normalized", summary.normalized, "#3b75af"))
    for k, (view, score, color) in enumerate(views):
        vals = [getattr(score, kind) for kind in kinds]
        xs = [i + (k - 0.5) * width for i in range(len(kinds))]
        ax.bar(xs, vals, width, label=view, color=color)
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_ylabel("word errors")
    ax.set_title("Error types")
    ax.legend()
    return _png(fig)


def plot_by_field(key: str, rows: tuple[FieldRow, ...]) -> str | None:
    """Normalised WER per value of one manifest field, with 95 % bootstrap intervals."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(rows) + 2), 3.2))
    xs = range(len(rows))
    wers = [100 * (r.wer or 0) for r in rows]
    lo = [max(0.0, w - 100 * (r.wer_ci[0] or 0)) for w, r in zip(wers, rows)]
    hi = [max(0.0, 100 * (r.wer_ci[1] or 0) - w) for w, r in zip(wers, rows)]
    ax.bar(xs, wers, yerr=[lo, hi], capsize=3, color="#3b75af")
    ax.set_xticks(list(xs), [r.value for r in rows], rotation=60 if len(rows) > 6 else 0, ha="right" if len(rows) > 6 else "center")
    ax.set_ylabel("WER (%)")
    ax.set_title(f"WER by {key} (normalised, 95% CI)")
    return _png(fig)


def plot_compare(utterances: list[dict]) -> str | None:
    """Per-utterance normalised WER before (other) vs after (this); points below the diagonal improved."""
    pts = [(r["compare"]["other_wer"], r["normalized"]["wer"]) for r in utterances if r.get("compare")]
    # Very short references make per-utterance WER explode (1 word, 4 insertions = 400 %):
    # clip so the bulk stays readable, and say so on the axis.
    pts = [(min(100 * a, SCATTER_CLIP), min(100 * b, SCATTER_CLIP)) for a, b in pts if a is not None and b is not None]
    if not pts:
        return None
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    a, b = zip(*pts)
    top = max(max(a), max(b), 1.0) * 1.05
    ax.plot([0, top], [0, top], color="#999999", lw=1, ls="--")
    ax.scatter(a, b, s=12, alpha=0.6, color="#3b75af")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel(f"other WER per utterance (%, clipped at {SCATTER_CLIP:.0f})")
    ax.set_ylabel(f"this WER per utterance (%, clipped at {SCATTER_CLIP:.0f})")
    ax.set_title("Before vs after (below diagonal = better)")
    return _png(fig)


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:90%}code{font-size:90%}
.meta{color:#555}img{max-width:100%}
table.pairs th{text-align:left;font-weight:600;background:#f7f7f7}table.pairs td{text-align:left}
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


NO_FIGURES = f"<p class='meta'>No figures: they need matplotlib ({html.escape(install_hint('plots'))}).</p>"


def _img(b64: str | None, alt: str) -> str:
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"></p>' if b64 else ""


def _html_pairs(rows: list[tuple[str, str]]) -> str:
    """A two-column table of labelled values (label in a row header)."""
    body = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>" for label, value in rows)
    return f"<table class='pairs'>{body}</table>"


def render_html(summary: EvalReport, utterances: list[dict]) -> str:
    """report.html: a single self-contained page with tables and embedded plots."""
    s = summary
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>ASR evaluation: {e(s.model.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>ASR evaluation: {e(s.model.title)}</h1>",
        "<ul class='meta'>",
        f"<li>{s.n_utterances} utterances from {e(', '.join(m.path for m in s.manifests) or '-')}</li>",
        f"<li>normaliser: <b>{e(s.normalizer.name)}</b> version <code>{e(s.normalizer.version)}</code> — "
        f"{e(s.normalizer.description)}</li>",
        f"<li>orthographic: {e(s.orthographic_description)}</li>",
        f"<li>confidence intervals: {e(_ci_method(s))}</li>",
        f"<li>created {e(s.created)} by asrtune {e(s.asrtune_version)}</li>",
        "</ul><h2>Summary</h2>",
        _html_table(SUMMARY_HEADER, summary_rows(s)),
        _img(plot_error_types(s), "error types") or NO_FIGURES,
        "<h2>Model and decoding</h2>",
        _html_pairs(model_rows(s.model)),
    ]
    if s.per_manifest:
        parts += ["<h2>Per manifest</h2>", _html_table(PER_MANIFEST_HEADER, _per_manifest_rows(s.per_manifest))]
    if s.speed:
        parts += ["<h2>Speed</h2>", _html_pairs(speed_rows(s.speed))]
    cmp = s.compare
    if cmp:
        other = f", model <code>{e(cmp.other_model.title)}</code>" if cmp.other_model else ""
        parts += [
            "<h2>Comparison (this − other)</h2>",
            f"<p>Other report <code>{e(cmp.other_dir)}</code>{other}, re-scored with this report's normaliser; "
            f"{cmp.matched_utterances} matched utterances: {cmp.improved} improved, {cmp.worsened} worsened, "
            f"{cmp.unchanged} unchanged.</p>",
            _html_table(COMPARE_HEADER, _compare_rows((("normalized", cmp.normalized), ("orthographic", cmp.orthographic)))),
            _img(plot_compare(utterances), "before vs after"),
        ]
    if s.terms:
        parts += ["<h2>Domain terms</h2>", f"<p>{e(s.terms.method)}</p>", _html_table(TERM_HEADER, _term_rows(s.terms))]
    flags = s.flags
    parts += ["<h2>Failure flags</h2><ul>"]
    parts += [f"<li><b>{e(k)}</b> ({e(flags.definitions[k])}): {v}</li>" for k, v in flags.counts.items()]
    parts += ["</ul>"]
    if flags.utterances:
        parts.append(_html_table(["id", "flags", "hypothesis"], [[f.id, ", ".join(f.flags), f.hyp[:300]]
                                                                 for f in flags.utterances[:WORST_SHOWN]]))
    if s.failed:
        parts += ["<h2>Failed to decode (skipped)</h2>", _html_table(["file", "error"], [[f.audio_filepath, f.error] for f in s.failed])]
    for key, rows in s.by_field.items():
        parts += [f"<h2>WER by {e(key)}</h2>", _img(plot_by_field(key, rows), f"WER by {key}"), _html_table(FIELD_HEADER, _field_rows(rows))]
    parts.append("<h2>Utterances with the most errors (normalised)</h2>")
    for r in _worst(utterances):
        n = r["normalized"]
        parts.append(f"<p><code>{e(r['id'])}</code> — {n['substitutions']}S {n['deletions']}D {n['insertions']}I / {n['ref_words']} words"
                     f"<br>ref: {e(r['ref'])}<br>hyp: {e(r['hyp'])}</p><pre>{e(chr(10).join(r['alignment']))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
