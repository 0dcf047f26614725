"""Model cards: a ``README.md`` in the Hugging Face format beside every model a run writes.

``write_model_card(model_dir, info)`` puts YAML metadata (``base_model``, ``language``,
``pipeline_tag``, ``library_name``, ``tags`` and a ``model-index`` with the WER of every evaluated
set, its normaliser named) over prose: the training data, the recipe, base vs tuned WER, the
forgetting check on general sets, and how to load the model with transformers, faster-whisper
and asrtune. The metadata is built with ``huggingface_hub.ModelCardData`` so the hub reads it.

>>> info = ModelCardInfo(base_model="openai/whisper-tiny.en", model_name="acc", dev_set="data/dev.jsonl",
...                      eval_results=[{"set": "data/dev.jsonl", "utterances": 200, "base_wer": 0.41,
...                                     "tuned_wer": 0.30, "delta": -0.11}])
>>> print(results_table(info).splitlines()[2])
| data/dev (domain dev set) | 200 | 41.00 | 30.00 | -11.00 |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from asrtune.data.stats import manifest_stats
from asrtune.evaluation.report import fmt_p
from asrtune.fileio import write_text_atomic

CARD_FILE = "README.md"
PIPELINE_TAG = "automatic-speech-recognition"
DEFAULT_NORMALIZER = "whisper-en"
PERCENT = 100.0
#: config keys shown under "options" in the recipe when set (plus any ``*_fraction`` key)
RECIPE_OPTIONS = ("text_policy", "adapter", "lora_r", "unfreeze_after", "unfreeze_top_layers", "encoder_lr",
                  "spec_augment", "speed_perturb", "noise_snr_db", "extend_vocab", "weights", "language",
                  "lr_schedule", "warmup_steps", "precision", "max_train_minutes", "epochs", "prompt_terms",
                  "merge_alphas", "recipe", "l2_sp", "distill_base", "replay_text")
#: shown only beside the option they qualify
DEPENDENT_OPTIONS = {"distill_temperature": "distill_base", "replay_share": "replay_text"}


@dataclass
class DataStats:
    """One manifest's size, as ``asrtune manifest stats`` reports it."""

    manifest: str
    hours: float
    utterances: int
    speakers: int | None = None


@dataclass
class ModelCardInfo:
    """Everything a card says, filled from a run (see :meth:`from_run`) or by hand."""

    base_model: str
    model_name: str
    family: str = "whisper"  # whisper | ctc
    export: str = "transformers"  # transformers (best/, final/) | ctranslate2 | ggml | onnx | openai-whisper (asrtune export)
    language: list[str] = field(default_factory=lambda: ["en"])
    license: str | None = None
    tags: list[str] = field(default_factory=list)
    normalizer: str = DEFAULT_NORMALIZER
    train_data: list[DataStats] = field(default_factory=list)
    dev_data: DataStats | None = None
    recipe: dict[str, Any] = field(default_factory=dict)  # freeze, steps, lr, batch, trainable parameters, options
    eval_results: list[dict[str, Any]] = field(default_factory=list)  # rows {set, utterances, base_wer, tuned_wer, delta}
    dev_set: str | None = None  # the eval row that is the domain dev set; the others are general sets
    checkpoint: str = "best"  # best | final
    best_step: int | None = None
    best_dev_wer: float | None = None
    base_dev_wer: float | None = None  # the base model's dev WER, when the run scored it (step 0)
    merge_alpha: float | None = None  # best/ is (1 - a) * base + a * final/ (train --merge-alphas)
    guard_set: str | None = None  # train --guard-dev: the general set every checkpoint was scored on
    guard_margin: float | None = None  # ... the rise over the base allowed for best/, in percentage points
    guard_base_wer: float | None = None
    guard_wer: float | None = None  # this checkpoint's guard WER
    repo_id: str | None = None  # where the model will live on the hub, for the loading examples

    @classmethod
    def from_run(cls, config: Mapping[str, Any], result: Mapping[str, Any], data_stats: Mapping[str, Any] | None = None,
                 *, checkpoint: str = "best", export: str = "transformers", family: str = "whisper",
                 normalizer: str = DEFAULT_NORMALIZER, repo_id: str | None = None) -> "ModelCardInfo":
        """A card's info from a run's ``config`` dict, ``RunResult.to_dict()`` and per-manifest stats.

        ``data_stats`` maps a manifest path to ``ManifestStats.to_dict()`` (hours, utterances,
        speakers); manifests missing from it are measured here.
        """
        stats = dict(data_stats or {})
        train = [_stats(path, stats) for path in config.get("train", [])]
        dev = _stats(config["dev"], stats) if config.get("dev") else None
        language = config.get("language") or "en"
        recipe = {
            "freeze": config.get("freeze"), "steps": result.get("steps"), "lr": config.get("lr"),
            "batch_size": config.get("batch_size"), "grad_accum": config.get("grad_accum"),
            "trainable_parameters": result.get("trainable_parameters"), "total_parameters": result.get("total_parameters"),
            "stopped": result.get("stopped"),
            "options": {k: v for k, v in config.items() if (k in RECIPE_OPTIONS or k.endswith("_fraction")
                                                               or config.get(DEPENDENT_OPTIONS.get(k, "")))
                        and v not in (None, False, [], "none") and not (k == "merge_alphas" and v == "auto")},
        }
        return cls(
            base_model=str(config.get("model", "")), model_name=Path(str(config.get("out") or "asrtune-model")).name,
            family=family, export=export, language=[language], normalizer=normalizer, train_data=train, dev_data=dev,
            recipe=recipe, eval_results=list(result.get("eval_results") or []), dev_set=config.get("dev"),
            checkpoint=checkpoint, best_step=result.get("best_step"), best_dev_wer=result.get("best_dev_wer"),
            base_dev_wer=_base_dev_wer(result),
            merge_alpha=result.get("best_merge_alpha") if checkpoint == "best" else None, repo_id=repo_id,
            guard_set=config.get("guard_dev"), guard_margin=config.get("guard_margin"),
            guard_base_wer=result.get("guard_base_wer"),
            guard_wer=result.get("best_guard_wer" if checkpoint == "best" else "final_guard_wer"),
        )


def write_model_card(model_dir: Path, info: ModelCardInfo) -> Path:
    """Write ``model_dir/README.md`` (atomically) and return its path."""
    from huggingface_hub import ModelCard  # heavy: huggingface_hub's hub client (httpx, yaml)

    card = ModelCard(f"---\n{card_data(info).to_yaml()}\n---\n\n{card_body(info)}")
    path = Path(model_dir) / CARD_FILE
    write_text_atomic(path, str(card))
    return path


def card_data(info: ModelCardInfo):
    """The YAML metadata as ``huggingface_hub.ModelCardData`` (model-index: tuned WER per set, in %)."""
    # heavy: huggingface_hub's hub client (httpx, yaml)
    from huggingface_hub import EvalResult, ModelCardData

    scored = [(row["set"], float(row["tuned_wer"])) for row in info.eval_results]
    if not scored and _dev_only(info):
        scored = [(info.dev_set, float(info.best_dev_wer))]
    results = [
        EvalResult(task_type=PIPELINE_TAG, task_name="Speech Recognition", dataset_type=set_label(path),
                   dataset_name=set_label(path), dataset_split=Path(path).stem, metric_type="wer",
                   metric_value=round(PERCENT * wer, 2),
                   metric_name=f"WER (%, {info.normalizer} normaliser)", metric_config=info.normalizer)
        for path, wer in scored
    ]
    tags = list(dict.fromkeys(["asrtune", info.family, "fine-tuned", *EXPORT_TAGS.get(info.export, ()), *info.tags]))
    return ModelCardData(
        base_model=info.base_model or None, language=info.language, license=info.license, pipeline_tag=PIPELINE_TAG,
        library_name=EXPORT_LIBRARIES.get(info.export, "transformers"), tags=tags, metrics=["wer"],
        model_name=info.model_name, eval_results=results or None,
    )


def card_body(info: ModelCardInfo) -> str:
    """The prose of the card, in Markdown."""
    parts = [
        f"# {info.model_name}\n",
        f"{_what(info)} fine-tuned from [{info.base_model}](https://huggingface.co/{info.base_model}) with "
        f"asrtune ({info.checkpoint} checkpoint{_which_step(info)}"
        + (f", interpolated with the base model: {1 - info.merge_alpha:g} x base + {info.merge_alpha:g} x tuned"
           if info.merge_alpha is not None else "") + ").\n",
        "## Results\n",
        f"Word error rate in % after the `{info.normalizer}` text normaliser (greedy decoding); "
        "change in percentage points, negative is better.\n",
        results_table(info) if info.eval_results else dev_only_text(info),
        "\n## Forgetting check\n",
        forgetting_text(info),
        "\n## Training data\n",
        data_table(info),
        "\n## Training recipe\n",
        recipe_text(info),
        "\n## How to use\n",
        usage_text(info),
    ]
    return "\n".join(parts) + "\n"


def set_label(path: str) -> str:
    """``/data/speechocean762/test.jsonl`` -> ``speechocean762/test``.

    >>> set_label("../shared/data/speechocean762/test.jsonl")
    'speechocean762/test'
    """
    p = Path(path)
    return f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem


def results_table(info: ModelCardInfo) -> str:
    """Base vs tuned per set; with the comparison's paired test (``train --eval-sets``), the 95 %
    interval of the change and its p-value too."""
    tested = all(row.get("delta_ci") and row.get("p_value") is not None for row in info.eval_results)
    rows = ["| set | utterances | base WER | tuned WER | change |"
            + (" 95 % CI of change | paired test |" if tested else ""),
            "|---|---:|---:|---:|---:|" + ("---:|---:|" if tested else "")]
    for row in info.eval_results:
        label = set_label(row["set"]) + (" (domain dev set)" if _is_dev(info, row) else "")
        delta = row.get("delta", row["tuned_wer"] - row["base_wer"])
        line = (f"| {label} | {row['utterances']} | {PERCENT * row['base_wer']:.2f} | "
                f"{PERCENT * row['tuned_wer']:.2f} | {PERCENT * delta:+.2f} |")
        if tested:
            line += f" {_ci_text(row['delta_ci'])} | {_p_text(row)} |"
        rows.append(line)
    return "\n".join(rows)


def _ci_text(ci: list[float]) -> str:
    """``[-13.10, -9.40]`` (percentage points)."""
    return f"[{PERCENT * ci[0]:+.2f}, {PERCENT * ci[1]:+.2f}]"


def _p_text(row: Mapping[str, Any]) -> str:
    """``p = 0.4210`` or, at the bootstrap's resolution, ``p < 0.001``."""
    p = fmt_p(row["p_value"], row.get("n_resamples", 1000))
    return f"p {p}" if p.startswith("<") else f"p = {p}"


def dev_only_text(info: ModelCardInfo) -> str:
    """The results section before (or without) ``--eval-sets``: the dev WER that picked this checkpoint.

    >>> info = ModelCardInfo(base_model="m", model_name="x", dev_set="d/dev.jsonl", best_dev_wer=0.25, best_step=40)
    >>> print(dev_only_text(info).splitlines()[0])
    Dev set d/dev: 25.00 % at step 40, the evaluation that picked this checkpoint.
    """
    if not _dev_only(info):
        return "No evaluation sets were scored in this run."
    where = f"for the merge with alpha {info.merge_alpha:g}" if info.merge_alpha is not None else f"at step {info.best_step}"
    return (f"Dev set {set_label(info.dev_set)}: {PERCENT * info.best_dev_wer:.2f} % {where}, "
            "the evaluation that picked this checkpoint.\n"
            + (f"The base model scored {PERCENT * info.base_dev_wer:.2f} % on it at step 0 "
               f"({PERCENT * (info.best_dev_wer - info.base_dev_wer):+.2f} points); "
               "`asrtune train --eval-sets` adds confidence intervals and a paired test."
               if info.base_dev_wer is not None
               else "The base model was not scored here; `asrtune train --eval-sets` compares base and tuned."))


def _which_step(info: ModelCardInfo) -> str:
    """The step a best checkpoint comes from; step 0 is the base model's weights, said plainly.

    >>> _which_step(ModelCardInfo(base_model="m", model_name="x", best_step=0, dev_set="d.jsonl", guard_set="g.jsonl"))
    ', step 0: the base model unchanged, as no tuned checkpoint beat it on the dev set within the forgetting guard'
    """
    if info.best_step is None or info.checkpoint != "best":
        return ""
    if info.best_step == 0 and info.merge_alpha is None and info.dev_set:
        return (", step 0: the base model unchanged, as no tuned checkpoint beat it on the dev set"
                + (" within the forgetting guard" if info.guard_set else ""))
    return f", step {info.best_step}"


def guard_text(info: ModelCardInfo) -> str | None:
    """The forgetting guard's numbers for this checkpoint (None without a guard).

    >>> print(guard_text(ModelCardInfo(base_model="m", model_name="x", guard_set="d/librivox.jsonl", guard_margin=0.5,
    ...                                guard_base_wer=0.1136, guard_wer=0.117)))
    - d/librivox (forgetting guard, scored at every evaluation; best/ may be at most 0.5 points above the base): 11.36 % -> 11.70 % (+0.34 points)
    """
    if not info.guard_set or info.guard_base_wer is None or info.guard_wer is None:
        return None
    delta = PERCENT * (info.guard_wer - info.guard_base_wer)
    margin = f"; best/ may be at most {info.guard_margin:g} points above the base" if info.guard_margin is not None else ""
    return (f"- {set_label(info.guard_set)} (forgetting guard, scored at every evaluation{margin}): "
            f"{PERCENT * info.guard_base_wer:.2f} % -> {PERCENT * info.guard_wer:.2f} % ({delta:+.2f} points)")


def forgetting_text(info: ModelCardInfo) -> str:
    general = [row for row in info.eval_results if not _is_dev(info, row)]
    guard = guard_text(info)
    if not general and guard is None:
        return ("No general-domain sets were evaluated, so forgetting was not measured; "
                "`asrtune train --eval-sets` scores base and tuned models on them.")
    lines = ["Base and tuned model on general sets the model was not trained for; a rise here is forgetting.\n"]
    if guard is not None:
        lines.append(guard)
    for row in general:
        delta = PERCENT * row.get("delta", row["tuned_wer"] - row["base_wer"])
        verdict = "worse" if delta > 0 else "better" if delta < 0 else "unchanged"
        tested = (f", 95 % CI {_ci_text(row['delta_ci'])}, {_p_text(row)}"
                  if row.get("delta_ci") and row.get("p_value") is not None else "")
        lines.append(f"- {set_label(row['set'])}: {PERCENT * row['base_wer']:.2f} % -> "
                     f"{PERCENT * row['tuned_wer']:.2f} % ({delta:+.2f} points, {verdict}{tested})")
    return "\n".join(lines)


def data_table(info: ModelCardInfo) -> str:
    rows = ["| role | manifest | hours | utterances | speakers |", "|---|---|---:|---:|---:|"]
    for role, stats in [("train", s) for s in info.train_data] + ([("dev", info.dev_data)] if info.dev_data else []):
        speakers = stats.speakers if stats.speakers else "n/a"
        rows.append(f"| {role} | {set_label(stats.manifest)} | {stats.hours:.2f} | {stats.utterances} | {speakers} |")
    return "\n".join(rows) if len(rows) > 2 else "The training data is not recorded for this model."


def recipe_text(info: ModelCardInfo) -> str:
    r = info.recipe
    lines = []
    if r.get("freeze"):
        lines.append(f"- freeze preset: `{r['freeze']}`")
    if r.get("steps") is not None:
        lines.append(f"- steps: {r['steps']}" + (f" (stopped by {r['stopped']})" if r.get("stopped") else ""))
    if r.get("lr") is not None:
        lines.append(f"- learning rate: {r['lr']:g}")
    if r.get("batch_size") is not None:
        accum = r.get("grad_accum") or 1
        lines.append(f"- batch: {r['batch_size']} utterances" + (f" x {accum} accumulation steps" if accum > 1 else ""))
    if r.get("trainable_parameters"):
        total = r.get("total_parameters") or 0
        share = f" of {total:,} ({PERCENT * r['trainable_parameters'] / total:.1f} %)" if total else ""
        lines.append(f"- trainable parameters: {r['trainable_parameters']:,}{share}")
    for key, value in (r.get("options") or {}).items():
        lines.append(f"- {key.replace('_', '-')}: {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return "\n".join(lines) or "The recipe is not recorded for this model."


def usage_text(info: ModelCardInfo) -> str:
    repo = info.repo_id or "path/to/this/model"
    if info.family == "ctc":
        hf = f'from transformers import pipeline\n\nasr = pipeline("automatic-speech-recognition", model="{repo}")\nprint(asr("audio.flac")["text"])'
    else:
        hf = (f'from transformers import pipeline\n\nasr = pipeline("automatic-speech-recognition", model="{repo}")\n'
              'print(asr("audio.flac", return_timestamps=True)["text"])')
    if info.export in EXPORT_USAGE and not _is_ct2(info):  # ct2 keeps faster-whisper + asrtune usage below
        return export_usage(info.export, repo)
    blocks = []
    if not _is_ct2(info):
        blocks += ["With transformers:\n", f"```python\n{hf}\n```\n"]
    if info.family == "whisper":
        source = repo if _is_ct2(info) else "path/to/ct2-export"
        note = "" if _is_ct2(info) else f"For faster-whisper, first export to CTranslate2: `asrtune convert hf-to-ct2 {repo} path/to/ct2-export --quantization int8`.\n"
        blocks += [f"With faster-whisper (CTranslate2):\n\n{note}",
                   f'```python\nfrom faster_whisper import WhisperModel\n\nmodel = WhisperModel("{source}", device="cpu", compute_type="int8")\n'
                   'segments, info = model.transcribe("audio.flac")\nprint(" ".join(s.text.strip() for s in segments))\n```\n']
    engine = " --engine ct2" if _is_ct2(info) else ""
    blocks += ["With asrtune (long audio, subtitles, an OpenAI-compatible server):\n",
               f"```bash\nasrtune transcribe recordings/ --model {repo}{engine} --out transcripts --format txt,srt\n"
               f"asrtune serve --model {repo}{engine} --port 8000\n```"]
    return "\n".join(blocks)


def _what(info: ModelCardInfo) -> str:
    kind = "A Whisper speech recogniser" if info.family == "whisper" else "A CTC speech recogniser"
    runtime = EXPORT_RUNTIMES.get(info.export)
    return kind + (f" ({runtime} export)" if runtime else "")


# --- exports (asrtune export, train --export) ----------------------------------------------------

#: ``ModelCardInfo.export`` -> the runtime it is for, its hub library name and tags
EXPORT_RUNTIMES = {"ctranslate2": "CTranslate2 (faster-whisper)", "ggml": "whisper.cpp (GGML)", "onnx": "ONNX Runtime",
                   "openai-whisper": "openai-whisper"}
EXPORT_LIBRARIES = {"ctranslate2": "ctranslate2", "ggml": "whisper.cpp", "onnx": "onnxruntime", "openai-whisper": "openai-whisper"}
EXPORT_TAGS = {"ctranslate2": ("ctranslate2", "faster-whisper"), "ggml": ("ggml", "whisper.cpp"), "onnx": ("onnx",),
               "openai-whisper": ("openai-whisper",)}
#: export format (``asrtune export --to``) -> the card's export name
CARD_EXPORT_NAMES = {"ct2": "ctranslate2", "ggml": "ggml", "onnx": "onnx", "openai-whisper": "openai-whisper"}
EXPORT_USAGE = {
    "ggml": ("With whisper.cpp (`whisper-cli`) or its Python binding pywhispercpp:\n\n"
             "```bash\nwhisper-cli -m {repo}/ggml-model.bin -f audio.wav\n```\n\n"
             "```python\nfrom pywhispercpp.model import Model\n\nmodel = Model(\"{repo}/ggml-model.bin\", n_threads=4)\n"
             "print(\" \".join(s.text for s in model.transcribe(\"audio.wav\")))\n```\n"),
    "onnx": ("With ONNX Runtime: `encoder_model.onnx` maps `input_features` [batch, n_mels, 3000] to `cross_kv` "
             "(every decoder layer's cross-attention keys and values); `decoder_model.onnx` maps `input_ids`, "
             "`self_kv` (empty on the first call) and `cross_kv` to `logits` and `present_kv`. The tokenizer, "
             "feature extractor and generation config (suppress tokens, alignment heads) are beside them.\n"),
    "openai-whisper": ("With openai-whisper:\n\n```python\nimport whisper\n\nmodel = whisper.load_model(\"{repo}/model.pt\")\n"
                       "print(model.transcribe(\"audio.flac\")[\"text\"])\n```\n\nThe checkpoint's `asrtune` entry holds the "
                       "alignment heads (`model.set_alignment_heads` takes them) and suppress tokens.\n"),
    "ctranslate2": ("With faster-whisper (CTranslate2):\n\n```python\nfrom faster_whisper import WhisperModel\n\n"
                    "model = WhisperModel(\"{repo}\", device=\"cpu\", compute_type=\"int8\")\n"
                    "segments, info = model.transcribe(\"audio.flac\")\nprint(\" \".join(s.text.strip() for s in segments))\n```\n"),
}
ASRTUNE_ENGINES = {"ctranslate2": "ct2", "ggml": "whispercpp", "onnx": "onnx"}


def export_usage(export: str, repo: str) -> str:
    """How to run an export: its runtime's own snippet, then asrtune's engine for it (when there is one).

    >>> "--engine whispercpp" in export_usage("ggml", "models/acc-ggml")
    True
    """
    text = EXPORT_USAGE[export].format(repo=repo)
    if export in ASRTUNE_ENGINES:
        text += ("\nWith asrtune (score it on your own data, transcribe long audio):\n\n"
                 f"```bash\nasrtune eval --model {repo} --engine {ASRTUNE_ENGINES[export]} --manifest data/test.jsonl --out reports/export\n"
                 f"asrtune transcribe recordings/ --model {repo} --engine {ASRTUNE_ENGINES[export]} --out transcripts\n```")
    return text


def write_export_card(dst: Path, fmt: str, quantization: str, source_name: str, source_folder: Path,
                      base_model: str | None = None, title: str | None = None) -> Path:
    """The card of an ``asrtune export`` folder: what it is, how to run it, then the source model's card if it has one."""
    # heavy: huggingface_hub's hub client (httpx, yaml)
    from huggingface_hub import ModelCard, ModelCardData

    export = CARD_EXPORT_NAMES[fmt]
    data = ModelCardData(base_model=base_model or source_name, pipeline_tag=PIPELINE_TAG,
                         library_name=EXPORT_LIBRARIES[export], tags=["asrtune", "whisper", *EXPORT_TAGS[export]])
    parts = [f"# {title or Path(dst).name}\n", f"`{source_name}` exported by asrtune for {EXPORT_RUNTIMES[export]} "
             f"(weights: {quantization}).\n", "## How to use\n", export_usage(export, "path/to/this/folder")]
    source_card = Path(source_folder) / CARD_FILE
    if source_card.is_file():
        body = ModelCard.load(source_card).text.strip()
        parts += ["\n## The source model\n", "The card of the model this export was made from:\n",
                  "\n".join(("#" + line) if line.startswith("#") else line for line in body.splitlines())]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts) + "\n")
    path = Path(dst) / CARD_FILE
    write_text_atomic(path, str(card))
    return path


def _is_ct2(info: ModelCardInfo) -> bool:
    return info.export == "ctranslate2"


def _dev_only(info: ModelCardInfo) -> bool:
    """A best checkpoint picked by a dev WER, with no base-vs-tuned rows to show instead."""
    return info.checkpoint == "best" and info.dev_set is not None and info.best_dev_wer is not None


def _is_dev(info: ModelCardInfo, row: Mapping[str, Any]) -> bool:
    return info.dev_set is not None and os.path.normpath(row["set"]) == os.path.normpath(info.dev_set)


def _base_dev_wer(result: Mapping[str, Any]) -> float | None:
    """The base model's dev WER: scored at step 0, or the best checkpoint is step 0 (the base itself)."""
    if result.get("base_dev_wer") is not None:
        return float(result["base_dev_wer"])
    if result.get("best_step") == 0 and result.get("best_merge_alpha") is None and result.get("best_dev_wer") is not None:
        return float(result["best_dev_wer"])
    return None


def _stats(path: str, known: Mapping[str, Any]) -> DataStats:
    entry = known.get(path)
    if entry is None:
        entry = manifest_stats(path).to_dict()
    return DataStats(manifest=str(path), hours=float(entry["hours"]), utterances=int(entry["utterances"]),
                     speakers=int(entry["speakers"]) if entry.get("speakers") else None)
