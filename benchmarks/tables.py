"""Regenerate the results tables of README.md and docs/ from ``benchmarks/results/*.json``.

    python -m benchmarks.tables            # rewrite every generated table
    python -m benchmarks.tables --check    # exit 1, naming each stale file; write nothing

A generated table sits in a Markdown file (README.md or any docs/*.md) between two markers::

    <!-- results:NAME:start -->
    ...generated, never edited by hand...
    <!-- results:NAME:end -->

where NAME is a key of :data:`TABLES`; README.md's summary is the unnamed
``<!-- results:start -->`` ... ``<!-- results:end -->`` (NAME ``summary``). Links inside a table
are relative to the file it sits in. ``benchmarks/results/finetune.md`` is generated whole.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from benchmarks.harness import FORGETTING_SETS, REPO, RESULTS

MARKER = re.compile(r"<!-- results(?::(?P<name>[\w-]+))?:start -->\n(?P<body>.*?)<!-- results(?::(?P<end>[\w-]+))?:end -->", re.S)
SO762 = "speechocean762"


class TableError(Exception):
    """A marker or a results file is wrong; the message names the file."""


def load(name: str) -> Any:
    path = RESULTS / name
    if not path.is_file():
        raise TableError(f"{path.relative_to(REPO)}: not found (run the benchmark that writes it)")
    return json.loads(path.read_text(encoding="utf-8"))


def pct(fraction: float, digits: int = 2) -> str:
    """0.24169 -> ``24.17 %``."""
    return f"{100 * fraction:.{digits}f} %"


def ci(pair: list[float], scale: float = 100) -> str:
    return f"[{scale * pair[0]:.2f}, {scale * pair[1]:.2f}]"


def table(head: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A Markdown table; ``align`` per column: ``"l"`` or ``"r"``."""
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in (align or ["l"] * len(head)))
    lines = ["| " + " | ".join(cells) + " |" for cells in [head, *rows]]
    return "\n".join([lines[0], rule, *lines[1:]]) + "\n"


def link(root: str, script: str) -> str:
    """A link to a benchmark script from a file ``root`` away from the repository root."""
    return f"[`{script}`]({root}benchmarks/{script}.py)"


# --- bench_finetune ------------------------------------------------------------------------------


def latest_finetune_rows() -> list[dict]:
    """The newest record of each row, rows in the order they first appeared, grouped by model."""
    rows = load("finetune.json")["rows"]
    latest = {r["row"]: r for r in rows}  # a later record of a row replaces the earlier one
    names = list(dict.fromkeys(r["row"] for r in rows))
    models = list(dict.fromkeys(latest[n]["settings"]["model"] for n in names))
    return [latest[n] for m in models for n in names if latest[n]["settings"]["model"] == m]


def tuned_scores(record: dict) -> tuple[dict, str]:
    """The tuned model's scores and which folder they are of (``final/`` when the guard refused it)."""
    if record.get("final_refused_by_guard"):
        return record["final_refused_by_guard"], "`final/` (refused by the guard)"
    return record["after"], "`best/`"


def recipe(settings: dict) -> str:
    """What trains on what, e.g. ``tiny.en: decoder + top 2 enc; train + train-extra``."""
    model = settings["model"].split("whisper-")[-1]
    trains = "decoder" + (f" + top {settings['encoder_top']} enc" if settings.get("encoder_top") else "")
    data = [Path(t).stem for t in settings["train"]] + [f"eSpeak({Path(t).stem})" for t in settings.get("synth", ())]
    scored = "" if settings.get("score_engine", "hf") == "hf" else f"; scored with {settings['score_engine']}"
    return f"{model}: {trains}; {' + '.join(data)}{scored}"


def finetune_table(root: str) -> str:
    """Untuned and tuned WER per row: speechocean762 test with its CI, the forgetting sets with their rise."""
    head = ["row", "what trains, on what", "train min / steps", "so762 test [95 % CI]", "libri-40 (rise)", "lj-32 (rise)",
            "guard WER", "utts/s (HF recipe)"]
    rows, untuned_done = [], set()
    for r in latest_finetune_rows():
        model, before = r["settings"]["model"], r["before"]
        if model not in untuned_done:
            untuned_done.add(model)
            engine = r["settings"].get("score_engine", "hf")
            rows.append([f"untuned {model.split('/')[-1]}" + ("" if engine == "hf" else f" (scored with {engine})"), "", "",
                         f"{pct(before[SO762]['wer'])} {ci(before[SO762]['ci95'])}",
                         *(pct(before[s]["wer"]) for s in FORGETTING_SETS), pct(r["guard"]["guard_base_wer"]), ""])
        scores, folder = tuned_scores(r)
        hf = r["hf_recipe"].get("utts_per_s")
        guard = r["guard"]["final_guard_wer"] if r.get("final_refused_by_guard") else r["guard"]["best_guard_wer"]
        rows.append([f"{r['row']}, {folder}", recipe(r["settings"]), f"{r['train_minutes']:.1f} / {r['steps']}",
                     f"{pct(scores[SO762]['wer'])} {ci(scores[SO762]['ci95'])}",
                     *(f"{pct(scores[s]['wer'])} ({100 * (scores[s]['wer'] - before[s]['wer']):+.2f})" for s in FORGETTING_SETS),
                     pct(guard), f"{r['utts_per_s']:.2f}" + (f" ({hf:.2f}: ×{r['speed_ratio']:.2f})" if hf else "")])
    return table(head, rows)


def merge_table(rows: list[dict]) -> str:
    """The WiSE-FT studies as a Markdown table: one line per alpha (0 = base, 1 = ``final/``)."""
    if not any(r.get("merges") for r in rows):
        return ""
    head = ["row", "alpha", "dev WER", "guard WER (base)", "so762 test WER [95 % CI]", "libri-40 (rise)", "lj-32 (rise)", "chosen"]
    lines = []
    for r in rows:
        study = r.get("merges")
        if not study:
            continue
        final = r.get("final_refused_by_guard") or r["after"]
        points = ([{"alpha": 0.0, "dev": study["base_dev_wer"], "guard": r["guard"]["guard_base_wer"], "scores": r["before"]}]
                  + study["alphas"] + [{"alpha": 1.0, "dev": r["dev_wer_final"], "guard": r["guard"]["final_guard_wer"],
                                        "scores": final}])
        for m in points:
            so = m["scores"][SO762]
            rises = [f"{100 * m['scores'][s]['wer']:.2f} ({100 * (m['scores'][s]['wer'] - r['before'][s]['wer']):+.2f})"
                     for s in FORGETTING_SETS]
            lines.append([r["row"], f"{m['alpha']:g}", f"{100 * m['dev']:.2f}",
                          f"{100 * m['guard']:.2f} ({100 * r['guard']['guard_base_wer']:.2f})",
                          f"{100 * so['wer']:.2f} {ci(so['ci95'])}", *rises, "yes" if m["alpha"] == study["chosen"] else ""])
    return table(head, lines)


def _cell(r: dict, key: str, name: str) -> str:
    v = r[key][name]
    return f"{100 * v['wer']:.1f}" + (f" [{100 * v['ci95'][0]:.1f}, {100 * v['ci95'][1]:.1f}]" if key == "before" or
                                       name == SO762 else "")


def _guard_cell(r: dict) -> str:
    """``best/``'s step and guard WER; what ``final/`` scored when the guard refused it."""
    g = r["guard"]
    cell = f"step {r['best_step']}, guard {100 * g['guard_base_wer']:.1f} -> {100 * g['best_guard_wer']:.1f}"
    final = r.get("final_refused_by_guard")
    if final:
        cell += (f"; final/ refused (guard {100 * g['final_guard_wer']:.1f}): so762 {100 * final[SO762]['wer']:.1f}, "
                 + ", ".join(f"{s.split('-')[0]} {100 * final[s]['wer']:.2f}" for s in FORGETTING_SETS))
    return cell


def finetune_runs_table(rows: list[dict]) -> str:
    """Every recorded run, with when and on what hardware (WER in %, before -> after)."""
    head = ("| row | recipe | when (UTC) | hardware | steps | train min | so762 test WER before -> after [95 % CI] | "
            "libri-40 before -> after | lj-32 before -> after | utts/s | HF recipe utts/s | ratio | best/ step, guard |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if r.get("partial"):  # cut short: its JSON record says what is missing
            lines.append(f"| {r['row']} | {recipe(r['settings'])} | {r['when']} | partial: {r.get('missing', '')} |")
            continue
        hf = r["hf_recipe"].get("utts_per_s")
        cells = [
            r["row"], recipe(r["settings"]), r["when"], f"{r['hardware']['cpu']}, {r['hardware']['torch_threads']} threads, "
                                                        f"load {r['hardware'].get('load_average_1min', '?')}",
            str(r["steps"]), f"{r['train_minutes']:.1f}",
            f"{_cell(r, 'before', SO762)} -> {_cell(r, 'after', SO762)}",
            *(f"{100 * r['before'][s]['wer']:.2f} -> {100 * r['after'][s]['wer']:.2f}" for s in FORGETTING_SETS),
            f"{r['utts_per_s']:.2f}" if r["utts_per_s"] else "n/a", f"{hf:.2f}" if hf else "n/a",
            f"x{r['speed_ratio']:.2f}" if r.get("speed_ratio") else "n/a", _guard_cell(r),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def finetune_md() -> str:
    """The whole of ``benchmarks/results/finetune.md``: every run, then the merge studies."""
    rows = load("finetune.json")["rows"]
    return finetune_runs_table(rows) + "\n" + merge_table(rows)


# --- bench_timestamps, bench_word_timing, bench_align_finetune -----------------------------------


TIMESTAMP_MODELS = {"base": "base tiny.en", "tuned-plain": "tuned, plain", "tuned-mixed": "tuned, mix",
                    "tuned-packed": "tuned, mix + packed"}


def timestamps_table(root: str) -> str:
    """faster-whisper's timestamped decoding of each exported model, and asrtune eval's WER of each."""
    run = load("timestamps.json")["full_stop_policy"]
    stamps = {**run["timestamps"], **run["timestamps_packed"]}
    accuracy = {**run["accuracy"], **run["accuracy_packed"]}
    untuned = load("timestamps.json")["word_timing"]
    names = list(TIMESTAMP_MODELS)
    medians = {"tuned-mixed": run["word_timing"]["mixed"], "tuned-packed": run["word_timing"]["packed"],  # [hf, ct2]
               "base": [untuned["hf"]["results"][0], untuned["ct2"]["results"][0]]}

    def yes(n: int, files: int) -> str:
        return "yes" if n == files else f"{n} of {files}"

    rows = []
    lf = [stamps[f"{m}/longform"] for m in names]
    ls = [stamps[f"{m}/librispeech-test-clean-40"] for m in names]
    rows.append(["long-form file: segments / WER", *(f"{s['segments']} / {s['wer']:.2f} %" for s in lf)])
    rows.append(["long-form: times monotonic / inside the file", *(f"{yes(s['monotonic_files'], s['files'])} / "
                                                                   f"{yes(s['inside_files'], s['files'])}" for s in lf)])
    rows.append(["librispeech-40: segments / WER / files ending inside (+0.5 s)",
                 *(f"{s['segments']} / {s['wer']:.2f} % / {s['inside_files']}" for s in ls)])
    rows.append(["word timing on the long-form file, median error hf / ct2",
                 *(" / ".join(f"{r['median_s']:.3f}" for r in medians[m]) + " s" if m in medians else "" for m in names)])
    rows.append(["`asrtune eval` speechocean762 test (ct2, greedy) [95 % CI]",
                 *(f"{a['wer']:.2f} % {ci(a['ci95'], 1)}" for a in (accuracy[f"{m}/speechocean762-test"] for m in names))])
    rows.append(["`asrtune eval` librispeech-40", *(f"{accuracy[f'{m}/librispeech-test-clean-40']['wer']:.2f} %" for m in names)])
    rows.append([f"WER without → with a {len(run['prompting']['prompt'].split(', '))}-word domain prompt "
                 f"({run['prompting']['utterances']} so762 clips)",
                 *(f"{run['prompting'][f'{m}/no-prompt']:.2f} → {run['prompting'][f'{m}/prompt']:.2f} %" for m in names)])
    return table(["", *TIMESTAMP_MODELS.values()], rows)


WORD_TIMING_ROWS = (  # (label, results group in timestamps.json, index) for the word-timing table
    ("tiny.en", ("word_timing", "hf"), 0),
    ("tiny.en", ("word_timing", "ct2"), 0),
    ("tiny.en tuned, plain targets, no full stops", ("word_timing", "ct2_plain_and_aligned"), 0),
    ("tiny.en tuned, default mix, no full stops", ("word_timing", "hf"), 1),
    ("tiny.en tuned, default mix, no full stops", ("word_timing", "ct2"), 1),
    ("tiny.en tuned on `manifest align` segments, no full stops", ("word_timing", "ct2_plain_and_aligned"), 1),
    ("tiny.en tuned, default mix, full-stop targets", ("full_stop_policy", "word_timing", "mixed"), 0),
    ("tiny.en tuned, default mix, full-stop targets", ("full_stop_policy", "word_timing", "mixed"), 1),
    ("tiny.en tuned, mix + packed windows, full-stop targets", ("full_stop_policy", "word_timing", "packed"), 0),
    ("tiny.en tuned, mix + packed windows, full-stop targets", ("full_stop_policy", "word_timing", "packed"), 1),
)
ENGINE_NAMES = {"hf": "hf (cross-attention DTW)", "ct2": "ct2 (`Whisper.align`)"}


def word_timing_table(root: str) -> str:
    """Error of the first word's start and the last word's end per utterance of the long-form file."""
    data = load("timestamps.json")
    rows = []
    for label, keys, index in WORD_TIMING_ROWS:
        group: Any = data
        for key in keys:
            group = group[key]
        r = (group["results"] if isinstance(group, dict) else group)[index]
        rows.append([label, ENGINE_NAMES[r["engine"]], f"{r['median_s']:.3f} s", f"{r['p90_s']:.3f} s", f"{r['wall_s']:.0f} s"])
    return table(["model", "engine", "median error", "90th percentile", "wall time"], rows)


ALIGN_RUNS = {"word_match_only_30s": "word match only, segments <= 30 s",
              "second_opinion_30s": "with the forced-alignment second opinion, <= 30 s",
              "second_opinion_8s": "with the second opinion, <= 8 s (`--max-duration 8`)"}


def align_finetune_table(root: str) -> str:
    """Tuning on ``manifest align`` segments of joined recordings against tuning on the hand-cut clips."""
    data = load("align_finetune.json")
    rows = []
    for key, label in ALIGN_RUNS.items():
        align, score = data[key]["align"], data[key]["score"]
        diff = score["aligned_vs_handcut"]
        rows.append([label, f"{align['segments']} ({align['segment_s']['mean']:.1f} s mean)", f"{align['kept_speech_pct']:.1f} %",
                     f"{align['rtf']:.3f}", f"{score['aligned']['wer']:.2f} % {ci(score['aligned']['ci95'], 1)}",
                     f"{score['handcut']['wer']:.2f} %",
                     f"{100 * diff['difference']:+.2f} {ci([diff['low'], diff['high']])}, p = {diff['p_value']:.3f}"])
    return table(["aligned with", "segments", "speech kept", "align RTF", "so762 test WER, aligned [95 % CI]",
                  "hand-cut", "aligned - hand-cut (points) [95 % CI]"], rows)


# --- bench_eval, bench_transcribe, bench_serve ---------------------------------------------------


def eval_table(root: str) -> str:
    data = load("eval.json")
    rows = [[f"{r['engine']}", f"{r['utterances']}", f"{r['utterances_per_s']:.2f}"
             + (f" ({r['speedup']:.2f}× {r['speedup_baseline']})" if r.get("speedup") and r["engine"] != r["speedup_baseline"] else ""),
             f"{r['rtf']:.3f}", f"{pct(r['wer_normalized'])} {ci(r['wer_ci'])}"] for r in data["rows"]]
    return table(["engine", "utterances", "utterances/s", "real-time factor", "WER normalised [95 % CI]"], rows)


TRANSCRIBE_SYSTEMS = {"asrtune ct2 (int8)": "`asrtune transcribe --engine ct2` (int8)",
                      "faster-whisper batched (int8)": "faster-whisper `BatchedInferencePipeline` (int8)",
                      "asrtune hf (fp32)": "`asrtune transcribe --engine hf` (fp32)",
                      "transformers pipeline (fp32)": "transformers ASR pipeline (fp32, chunked)"}


def transcribe_table(root: str) -> str:
    data = load("transcribe.json")
    by = {(r["system"], r["set"]): r for r in data["results"]}

    def cells(r: dict) -> list[str]:
        errors = f" ({r['errors']})" if "errors" in r else ""
        return [f"{r['rtf']:.3f}", f"{pct(r['wer'])}{errors}"]

    rows = [[label, *cells(by[(system, "librispeech-40")]), *cells(by[(system, "longform-5min")])]
            for system, label in TRANSCRIBE_SYSTEMS.items() if (system, "librispeech-40") in by]
    return table(["system", "librispeech-40 RTF", "librispeech-40 WER", "long-form RTF", "long-form WER"], rows)


def term_biasing_table(root: str) -> str:
    entries = {e["list"]: e for e in load("transcribe.json")["terms"]}
    ocean, clinic = entries["speechocean762"], entries["clinic"]
    clinic_runs = {r["boost"]: r for r in clinic["runs"]}
    rows = []
    for r in ocean["runs"]:
        t = r["term_set"]
        rows.append(["none" if r["boost"] == 0 else f"{r['boost']:g}", f"{pct(t['found'] / t['occurrences'], 1)} ({t['found']})",
                     "-" if t["precision"] is None else pct(t["precision"], 1), pct(t["wer"]), pct(r["librispeech_wer"]), pct(clinic_runs[r["boost"]]["librispeech_wer"])])
    occurrences = ocean["runs"][0]["term_set"]["occurrences"]
    return table(["`--term-boost`", f"term recall (found/{occurrences})", "term precision", "speechocean762 test WER",
                  "librispeech-40 WER, speechocean list", "librispeech-40 WER, clinic list"], rows, ["r"] * 6)


def serve_table(root: str) -> str:
    data = load("serve.json")
    base = data["levels"][0]["requests_per_s"]
    rows = [[str(lv["concurrency"]), f"{lv['answered_200']} / {lv['requests']}", str(lv["mismatched"]), f"{lv['requests_per_s']:.2f}",
             f"{lv['latency_p50_s']:.2f} s" if lv.get("latency_p50_s") is not None else "",
             f"{lv['mean_batch_segments']:g}" if lv.get("mean_batch_segments") else "", f"{lv['requests_per_s'] / base:.2f}×"]
            for lv in data["levels"]]
    return table(["clients", "answered", "wrong answers", "requests/s", "p50 latency", "mean batch (segments)", "vs 1 client"],
                 rows)


# --- export_parity ------------------------------------------------------------------------------

EXPORT_SETS = (("speechocean762_test", "speechocean762 test"), ("librispeech_40", "librispeech-40"))


def export_table(root: str) -> str:
    """Every export of each model, decoded by its own runtime on the same clips as transformers."""
    data = load("export_parity.json")
    rows = []
    for r in data["rows"]:
        wers = [f"{r[f'wer_{key}']:.2f} %" for key, _ in EXPORT_SETS]
        deltas = " / ".join(f"{r[f'delta_{key}']:+.2f}" for key, _ in EXPORT_SETS)
        rows.append([r.get("label", r["model"]), f"{r['format']} {r['quantization']}", r["runtime"], f"{r['size_mb']:.1f} MB", *wers, deltas,
                     f"{r['rtf_2_threads']:.3f}", "yes" if r["lossless"] else "no"])
    head = ["model", "export", "runtime", "size", *(f"{name} WER" for _, name in EXPORT_SETS), "Δ vs transformers (points)",
            "RTF (2 threads)", "lossless"]
    notes = []
    for run in data["runs"]:
        label = run.get("label", run["model"])
        sets = "; ".join(f"{name}: {run['sets'][key]['clips']} clips ({run['sets'][key]['selection']})" for key, name in EXPORT_SETS)
        if sum(other["model"] == run["model"] for other in data["runs"]) > 1:  # the model's rows come from several runs
            label += " (" + ", ".join(r["key"] for r in data["rows"] if r["run"] == run["id"]) + ")"
        notes.append(f"{label}: {run['decoding']}, {run['normalizer']} normaliser; {sets}; "
                     f"{run['hardware']['cpu']}, {run['threads']} threads, 1-minute load average "
                     f"{run['hardware'].get('load_average_1min', 'n/a')} at the start (RTFs compare within one run only).")
        lf = run.get("longform")
        if lf:
            valid = "monotonic and inside the file" if lf["monotonic"] and lf["inside_file"] else "NOT valid"
            notes.append(f"{run.get('label', run['model'])}, long-form file ({lf['duration_s']:.0f} s) in whisper.cpp: {lf['whispercpp_segments']} segments, "
                         f"times {valid}; WER {lf['wer_whispercpp']:.2f} % (transformers {lf['wer_hf']:.2f} %).")
    return table(head, rows, ["l", "l", "l", "r", "r", "r", "r", "r", "l"]) + "\n" + "\n".join(notes) + "\n"


def export_summary_rows(root: str) -> list[list[str]]:
    """One README line per runtime: the export's WER change against transformers on each set."""
    data = load("export_parity.json")
    rows = []
    for fmt in ("ct2", "ggml", "onnx", "openai-whisper"):
        mine = [r for r in data["rows"] if r["format"] == fmt and r["model"] == "openai/whisper-tiny.en"]
        if not mine:
            continue
        cells = "; ".join(f"{r['quantization']}{' flash-attn' if 'flash-attn' in r['runtime'] else ''} {r['size_mb']:.0f} MB: "
                          + " / ".join(f"{r[f'delta_{key}']:+.2f}" for key, _ in EXPORT_SETS) for r in mine)
        rows.append([f"`asrtune export --to {fmt}` run by {mine[0]['runtime']} (tiny.en; WER change vs transformers, "
                     "speechocean762 / librispeech-40, points)", cells, link(root, "export_parity")])
    return rows


# --- bench_time_to_quality -----------------------------------------------------------------------


def time_to_quality_record() -> dict:
    return load("time_to_quality.json")["rows"][-1]


def _minutes(side: dict) -> str:
    hit = side["reached"]
    if hit is None:
        return "not reached"
    return f"{hit['seconds'] / 60:.1f} min (step {hit['step']}, dev {pct(hit['dev_wer'])})"


def time_to_quality_table(root: str, record: dict | None = None) -> str:
    """A time-to-quality run (default: the newest recorded): each side's minutes to the recipe's
    final dev WER, asrtune's parts, the test scores."""
    r = record or time_to_quality_record()
    test = r.get("test", {})

    def tested(name: str) -> str:
        return f"{pct(test[name]['wer'])} {ci(test[name]['ci95'])}" if name in test else "n/a"

    rows = [["Hugging Face `Seq2SeqTrainer` recipe", _minutes(r["hf_recipe"]), f"{r['hf_recipe']['total_s'] / 60:.1f} min",
             tested("hf_recipe")],
            ["`asrtune train`", _minutes(r["asrtune"]), f"{r['asrtune']['total_s'] / 60:.1f} min", tested("asrtune_best")]]
    parts = r["asrtune"].get("parts")
    split = ("" if parts is None else
             f" asrtune's time to it: encoder cache {parts['cache_build_s'] / 60:.1f} min ({parts['cache_utts']} utterances at "
             f"{parts['cache_utts_per_s']:.2f} utts/s), training steps {parts['training_s'] / 60:.1f} min, dev evaluations "
             f"{parts['evaluation_s'] / 60:.1f} min, start-up and the rest {parts['other_s'] / 60:.1f} min.")
    paired = test.get("asrtune_minus_recipe")
    if paired:
        split += (f" On test, asrtune's model minus the recipe's: {100 * paired['difference']:+.2f} points "
                  f"{ci(paired['ci95'])} (paired bootstrap, p {paired['p_value']:.3f}).")
    ratio = r["time_to_quality_ratio"]
    hw = r["hardware"]
    note = (f"\nTarget: the recipe's final dev WER, {pct(r['target_dev_wer'])}. **time_to_quality_ratio "
            f"{'n/a' if ratio is None else f'{ratio:.2f}'}** (goal at most {r['goal_ratio']:g}).{split} "
            f"{r['settings']['epochs']} epochs of speechocean762 train, dev every {r['settings']['eval_every']} steps; "
            f"{hw['cpu']}, {hw['cores']} cores, 1-minute load average {hw.get('load_average_1min', 'n/a')} at the start. "
            f"{link(root, 'bench_time_to_quality')}\n")
    return table(["side", "to the recipe's final dev WER", "whole run", "speechocean762 test WER"], rows) + note


def time_to_quality_levers_table(root: str) -> str:
    """Encoders that could fill the cache (speed, distance from float32) and the decoder step's two attention forms."""
    lv = load("time_to_quality.json")["levers"]
    encoders = table(["cache built by", "utterances/s", "output error vs torch float32 (relative L2)"],
                     [[e["encoder"], f"{e['utts_per_s']:.2f}", f"{100 * e['relative_error']:.2f} %"] for e in lv["cache_build"]])
    steps = table(["decoder training step (forward + backward)", "utterances/s"],
                  [[s["decoder_step"], f"{s['utts_per_s']:.2f}"] for s in lv["training_step"]])
    hw = lv["hardware"]
    return (f"{encoders}\n{steps}\nTargets of {lv['training_step'][0]['tokens']} tokens; {hw['cpu']}, {hw['cores']} cores, "
            f"{hw['torch_threads']} threads. {link(root, 'bench_time_to_quality')}\n")


def time_to_quality_summary_row(root: str) -> list[str]:
    r = time_to_quality_record()
    ratio = r["time_to_quality_ratio"]
    return ["Minutes to the Hugging Face recipe's final dev WER (tiny.en decoder, speechocean762 train; asrtune's "
            "time includes its encoder cache)",
            f"{_minutes(r['asrtune']).split(' (')[0]} vs {_minutes(r['hf_recipe']).split(' (')[0]} "
            f"(ratio {'n/a' if ratio is None else f'{ratio:.2f}'})", link(root, "bench_time_to_quality")]


# --- the README's summary ------------------------------------------------------------------------


def keep_general_summary_row(root: str) -> list[str]:
    """The forgetting study's final/ row trained with today's ``--recipe keep-general`` options."""
    from asrtune.training.config import KEEP_GENERAL, recipe_flags

    recipe = recipe_flags(KEEP_GENERAL)
    rows = [r for r in load("forgetting.json")["rows"]
            if r["checkpoint"] == "final" and dict(zip(r["options"][::2], r["options"][1::2])) == recipe]
    if not rows:
        raise SystemExit(f"forgetting.json has no row with --recipe {KEEP_GENERAL}'s options {recipe}: run bench_forgetting")
    row = rows[-1]
    return ["`--recipe keep-general` (tiny.en decoder, 150 steps): share of the plain tune's speechocean762 gain kept; "
            "general-English change",
            f"{100 * row['gain_kept']:.0f} % ({pct(row['sets'][SO762]['wer'])}); librispeech {row['librispeech_rise']:+.2f}, "
            f"ljspeech {row['ljspeech_rise']:+.2f} points", link(root, "bench_forgetting")]


def summary_table(root: str) -> str:
    """One line per benchmark: its headline number, linked to the script that measured it."""
    ft = {r["row"]: r for r in latest_finetune_rows()}
    decoder = ft["tiny-decoder"]
    scores, _ = tuned_scores(decoder)
    chosen = next(m for m in decoder["merges"]["alphas"] if m["alpha"] == decoder["merges"]["chosen"])
    rises = ", ".join(f"{s.split('-')[0]} {100 * (chosen['scores'][s]['wer'] - decoder['before'][s]['wer']):+.2f}"
                      for s in FORGETTING_SETS)
    stamps = load("timestamps.json")["full_stop_policy"]
    packed = stamps["timestamps_packed"]
    align = load("align_finetune.json")["second_opinion_8s"]["score"]
    words = load("timestamps.json")["word_timing"]
    ev = {r["engine"]: r for r in load("eval.json")["rows"]}
    tr = load("transcribe.json")
    fw = tr["speedups"]["librispeech-40"]["ct2 vs faster-whisper"]
    by = {(r["system"], r["set"]): r for r in tr["results"]}
    serve = load("serve.json")["levels"]
    hw = decoder["hardware"]
    rows = [
        ["Fine-tune Whisper tiny.en on accented English (speechocean762 test, normalised WER)",
         f"{pct(decoder['before'][SO762]['wer'])} → **{pct(scores[SO762]['wer'])}** in {decoder['train_minutes']:.0f} min "
         f"(decoder only)", link(root, "bench_finetune")],
        ["… merged with the base model (WiSE-FT, alpha chosen by the forgetting guard)",
         f"{pct(chosen['scores'][SO762]['wer'])} at alpha {chosen['alpha']:g}; general English {rises} points",
         link(root, "bench_finetune")],
        keep_general_summary_row(root),
        ["Training speed against the Hugging Face `Seq2SeqTrainer` recipe (same model, batch, trainable layers)",
         f"{decoder['utts_per_s']:.2f} vs {decoder['hf_recipe']['utts_per_s']:.2f} utterances/s (×{decoder['speed_ratio']:.2f})",
         link(root, "bench_finetune")],
        time_to_quality_summary_row(root),
        ["Timestamps after tuning with packed windows (faster-whisper on the exported model, 5-minute file)",
         f"WER {packed['tuned-packed/longform']['wer']:.2f} % (untuned {packed['base/longform']['wer']:.2f} %), "
         "every timestamp in order and inside the file", link(root, "bench_timestamps")],
        ["Tuning on `manifest align` segments of long recordings vs on hand-cut clips (so762 test)",
         f"{align['aligned']['wer']:.2f} % vs {align['handcut']['wer']:.2f} %", link(root, "bench_align_finetune")],
        ["Word timestamps, tiny.en (median error of utterance boundaries, hf / ct2)",
         f"{words['hf']['results'][0]['median_s']:.3f} / {words['ct2']['results'][0]['median_s']:.3f} s",
         link(root, "bench_word_timing")],
        ["`asrtune eval` speed, tiny.en (speechocean762 test, real-time factor hf / ct2)",
         f"{ev['hf']['rtf']:.3f} / {ev['ct2']['rtf']:.3f}", link(root, "bench_eval")],
        ["`asrtune transcribe --engine ct2` against faster-whisper (40 short files, real-time factor)",
         f"{by[('asrtune ct2 (int8)', 'librispeech-40')]['rtf']:.3f} vs "
         f"{by[('faster-whisper batched (int8)', 'librispeech-40')]['rtf']:.3f} (×{fw:.2f})", link(root, "bench_transcribe")],
        ["`asrtune serve` (tiny.en, ct2): requests/s with 1 / 4 / 16 clients, every answer its own",
         " / ".join(f"{lv['requests_per_s']:.2f}" for lv in serve), link(root, "bench_serve")],
        *export_summary_rows(root),
    ]
    note = f"\nMeasured on {hw['cpu']} with {hw['cores']} logical cores and no GPU.\n"
    return table(["what", "result", "benchmark"], rows) + note


def forgetting_table(root: str) -> str:
    """The forgetting study (bench_forgetting): one line per run and checkpoint."""
    rows = load("forgetting.json")["rows"]
    base = rows[0]["sets"]
    head = ["remedy", "model", f"{SO762} test", "gain kept", "librispeech-40", "ljspeech-32", "vs plain (p)", "≤ 0.5 pts"]
    body = [["untuned", "", f"{pct(base[SO762]['base_wer'])}", "", pct(base[FORGETTING_SETS[0]]["base_wer"]),
             pct(base[FORGETTING_SETS[1]]["base_wer"]), "", ""]]
    for r in rows:
        so = r["sets"][SO762]
        remedy = " ".join(r["options"]).replace(str(REPO) + "/", "") or "none (plain)"
        what = "final/" if r["checkpoint"] == "final" else f"best/: {r['best_holds']}"
        body.append([remedy, what, f"{pct(so['wer'])} {ci(so['ci95'])}", f"{100 * r['gain_kept']:.0f} %",
                     f"{r['librispeech_rise']:+.2f}", f"{r['ljspeech_rise']:+.2f}",
                     "" if r["run"] == "plain" and r["checkpoint"] == "final"
                     else f"{100 * so['vs_plain']['difference']:+.2f} ({so['vs_plain']['p_value']:.3f})",
                     "yes" if r["admissible"] else "no"])
    hw = rows[0]["hardware"]
    note = (f"\nWER in %, normalised (whisper-en), 95 % bootstrap CI; general-English columns: rise over the untuned "
            f"model in points; vs plain: paired bootstrap difference on {SO762} test against the plain tune's final/ "
            f"(p two-sided). Every row: {rows[0]['steps']} steps of 16, the same seed; {hw['cpu']}, {hw['cores']} cores. "
            f"{link(root, 'bench_forgetting')}\n")
    return table(head, body) + note


TABLES: dict[str, Callable[[str], str]] = {
    "forgetting": forgetting_table,
    "summary": summary_table,
    "finetune": finetune_table,
    "finetune-merge": lambda root: merge_table(load("finetune.json")["rows"]),
    "timestamps": timestamps_table,
    "word-timing": word_timing_table,
    "align-finetune": align_finetune_table,
    "eval": eval_table,
    "transcribe": transcribe_table,
    "term-biasing": term_biasing_table,
    "serve": serve_table,
    "export": export_table,
    "time-to-quality": time_to_quality_table,
    "time-to-quality-levers": time_to_quality_levers_table,
}
WHOLE_FILES: dict[Path, Callable[[], str]] = {RESULTS / "finetune.md": finetune_md}


# --- files ---------------------------------------------------------------------------------------


def fill(text: str, where: Path) -> str:
    """``text`` with every generated block rendered anew (links relative to ``where``'s folder)."""
    rel = os.path.relpath(REPO, where.parent)
    root = "" if rel == "." else rel + "/"

    def render(match: re.Match) -> str:
        name, end = match.group("name") or "summary", match.group("end") or "summary"
        if name != end:
            raise TableError(f"{where}: <!-- results:{name}:start --> closed by the end marker of {end}")
        if name not in TABLES:
            raise TableError(f"{where}: no table named {name!r} (known: {', '.join(TABLES)})")
        start = "<!-- results:start -->" if match.group("name") is None else f"<!-- results:{name}:start -->"
        stop = "<!-- results:end -->" if match.group("end") is None else f"<!-- results:{name}:end -->"
        try:
            rendered = TABLES[name](root)
        except (KeyError, IndexError, StopIteration, TypeError) as e:  # a result without a field the table shows
            raise TableError(f"{where}: table {name!r}: the results lack {type(e).__name__} {e}") from None
        return f"{start}\n\n{rendered}\n{stop}"

    return MARKER.sub(render, text)


def documents() -> list[Path]:
    """The Markdown files that may hold generated tables."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def stale() -> list[Path]:
    """Files whose generated text differs from what the results give now."""
    out = [p for p in documents() if p.is_file() and fill(p.read_text(encoding="utf-8"), p) != p.read_text(encoding="utf-8")]
    return out + [p for p, render in WHOLE_FILES.items() if not p.is_file() or p.read_text(encoding="utf-8") != render()]


def regenerate() -> list[Path]:
    """Rewrite every stale file; returns them."""
    from asrtune.fileio import write_text_atomic

    changed = stale()
    for path in changed:
        write_text_atomic(path, WHOLE_FILES[path]() if path in WHOLE_FILES else fill(path.read_text(encoding="utf-8"), path))
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="exit 1 when a generated table is out of date; write nothing")
    args = p.parse_args(argv)
    try:
        if args.check:
            out_of_date = stale()
            for path in out_of_date:
                print(f"{path.relative_to(REPO)} is out of date: run python -m benchmarks.tables", file=sys.stderr)
            return 1 if out_of_date else 0
        for path in regenerate():
            print(f"wrote {path.relative_to(REPO)}")
    except TableError as e:
        print(f"benchmarks.tables: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
