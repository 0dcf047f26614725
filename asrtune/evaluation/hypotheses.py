"""Score transcripts made elsewhere: read a hypotheses file and match it to a manifest.

``asrtune eval --hypotheses FILE.jsonl`` scores without a model. The file is JSONL, one object
per utterance, in any of these shapes (the first key and text field found wins):

- ``{"id": ..., "text"|"hypothesis": ...}``: ``id`` as asrtune writes it (the audio path, plus
  ``@OFFSET`` for a segment of a longer file) or the manifest's own ``id``/``utt_id`` field;
- ``{"audio_filepath": ..., "offset": ..., "text": ...}``: relative paths resolve against the
  hypotheses file's folder, as in a manifest;
- an ``utterances.jsonl`` from an ``asrtune eval`` report (``id``, ``hyp``);
- the ``transcripts.jsonl`` of ``asrtune transcribe`` (``file``, ``text``).

Every manifest utterance needs exactly one hypothesis and every hypothesis must belong to an
utterance; otherwise one :class:`AsrtuneError` line names the first ids missing or unknown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from asrtune.data.manifest import Utterance
from asrtune.data.textfile import iter_json_lines
from asrtune.errors import AsrtuneError, ManifestError

TEXT_FIELDS = ("hypothesis", "hyp", "text")
ID_FIELDS = ("id", "file")  # "file": transcripts.jsonl of asrtune transcribe
MANIFEST_ID_FIELDS = ("id", "utt_id")  # fields of a manifest line a hypothesis id may name
MAX_LISTED_IDS = 3  # ids quoted in an error message


def read_hypotheses(path: str | os.PathLike) -> dict[str, str]:
    """Hypothesis text by utterance key, from a JSONL file (see the module docstring).

    >>> read_hypotheses("transcripts/transcripts.jsonl")  # doctest: +SKIP
    {'/data/a.flac': 'hello world', '/data/long.flac@30.000': 'and then'}
    """
    path = Path(path)
    if not path.is_file():
        raise AsrtuneError(f"--hypotheses {path}: file not found")
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line_no, obj in iter_json_lines(path):  # not UTF-8 text or not JSON: one error naming the line
        key, text = _key(obj, path, line_no), _text(obj, path, line_no)
        if key in out:
            raise ManifestError(str(path), line_no, f"second hypothesis for {key!r} (first on line {first_line[key]})")
        out[key], first_line[key] = text, line_no
    if not out:
        raise AsrtuneError(f"--hypotheses {path}: no hypotheses in the file")
    return out


def _key(obj: Any, path: Path, line_no: int) -> str:
    if not isinstance(obj, dict):
        raise ManifestError(str(path), line_no, f"expected a JSON object, got {type(obj).__name__}")
    for name in ID_FIELDS:
        if isinstance(obj.get(name), str) and obj[name]:
            return obj[name]
    audio = obj.get("audio_filepath")
    if isinstance(audio, str) and audio:
        if not os.path.isabs(audio) and "://" not in audio:
            audio = os.path.normpath(os.path.join(path.parent.resolve(), audio))
        try:
            offset = float(obj.get("offset") or 0.0)
        except (TypeError, ValueError):
            raise ManifestError(str(path), line_no, "offset must be a number (seconds)") from None
        return Utterance(audio, "", 0.0, offset).id
    raise ManifestError(str(path), line_no, f"no utterance key: give one of {', '.join(ID_FIELDS)} or audio_filepath (+offset)")


def _text(obj: dict, path: Path, line_no: int) -> str:
    for name in TEXT_FIELDS:
        if name in obj:
            if not isinstance(obj[name], str):
                raise ManifestError(str(path), line_no, f"{name!r} must be a string, got {type(obj[name]).__name__}")
            return obj[name].strip()
    raise ManifestError(str(path), line_no, f"no hypothesis text: give one of {', '.join(TEXT_FIELDS)}")


def utterance_keys(utt: Utterance) -> list[str]:
    """The keys a hypothesis may use for ``utt``: its asrtune id and its manifest ``id``/``utt_id``.

    >>> utterance_keys(Utterance("/d/a.flac", "HI", 1.0, extra={"utt_id": "a-1"}))
    ['/d/a.flac', 'a-1']
    """
    keys = [utt.id]
    keys += [str(utt.extra[f]) for f in MANIFEST_ID_FIELDS if f in utt.extra and str(utt.extra[f]) not in keys]
    return keys


def match_hypotheses(utterances: Sequence[Utterance], hypotheses: Mapping[str, str], source: str = "--hypotheses") -> list[str]:
    """The hypothesis for each utterance, in manifest order; one error line names missing/unknown ids.

    >>> utts = [Utterance("/d/a.flac", "HI", 1.0), Utterance("/d/b.flac", "YO", 1.0, extra={"id": "b"})]
    >>> match_hypotheses(utts, {"/d/a.flac": "hi", "b": "yo"})
    ['hi', 'yo']
    >>> match_hypotheses(utts, {"/d/a.flac": "hi", "c": "x"}, "h.jsonl")
    Traceback (most recent call last):
    asrtune.errors.AsrtuneError: h.jsonl: no hypothesis for 1 of 2 manifest utterance(s) (b); 1 hypothesis id(s) not in the manifest (c)
    """
    used: set[str] = set()
    hyps: list[str] = []
    missing: list[str] = []
    by_file = {canonical_key(k): k for k in hypotheses}  # the same file named through a symlink
    for utt in utterances:
        keys = utterance_keys(utt)
        key = next((k for k in keys if k in hypotheses), None) or by_file.get(canonical_key(utt.id))
        if key is None:
            missing.append(keys[-1])
            continue
        used.add(key)
        hyps.append(hypotheses[key])
    unknown = [k for k in hypotheses if k not in used]
    problems = []
    if missing:
        problems.append(f"no hypothesis for {len(missing)} of {len(utterances)} manifest utterance(s) ({_first(missing)})")
    if unknown:
        problems.append(f"{len(unknown)} hypothesis id(s) not in the manifest ({_first(unknown)})")
    if problems:
        raise AsrtuneError(f"{source}: " + "; ".join(problems))
    return hyps


def canonical_key(key: str) -> str:
    """``key`` with an existing file's path resolved (symlinks, ``..``), keeping any ``@OFFSET``:
    a manifest and a transcript may name one file by different paths.

    >>> canonical_key("/no/such/dir/../a.flac@30.000")
    '/no/such/dir/../a.flac@30.000'
    """
    path, at, offset = key.rpartition("@") if "@" in key else (key, "", "")
    if at and not offset.replace(".", "", 1).isdigit():
        path, at, offset = key, "", ""
    if "://" in path or not os.path.exists(path):
        return key
    return os.path.realpath(path) + at + offset


def _first(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_LISTED_IDS])
    return shown + (f", ... {len(ids) - MAX_LISTED_IDS} more" if len(ids) > MAX_LISTED_IDS else "")


def hypotheses_for(utterances: Sequence[Utterance], path: str | os.PathLike) -> list[str]:
    """Read ``path`` and return one hypothesis per utterance: the drop-in for decoding in eval.

    >>> hyps = hypotheses_for(utterances, "transcripts/transcripts.jsonl")  # doctest: +SKIP
    """
    return match_hypotheses(utterances, read_hypotheses(path), str(path))


def describe_hypotheses(path: str | os.PathLike) -> dict[str, Any]:
    """The report's ``model`` block when the hypotheses came from a file, not a model.

    >>> describe_hypotheses("out/hyps.jsonl")["engine"]
    'none (hypotheses file)'
    """
    return {"name": str(path), "engine": "none (hypotheses file)", "source": os.path.abspath(path), "family": None}


__all__ = ["canonical_key", "describe_hypotheses", "hypotheses_for", "match_hypotheses", "read_hypotheses", "utterance_keys"]
