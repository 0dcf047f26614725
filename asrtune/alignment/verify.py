"""A second opinion on rejected stretches: did the recogniser mishear, or is the text not there?

The word match (:mod:`asrtune.alignment.segmenter`) rejects a stretch when too few transcript
words equal the recognised ones. On clean speech that means the transcript does not match the
audio; on accented, noisy or domain speech it mostly means the *recogniser* was wrong, exactly
the speech a fine-tune needs most (speechocean762 through tiny.en: 19 % of the transcript words
rejected, nearly all correct text; ``benchmarks/bench_align_finetune.py``).

So each rejected stretch that has recognised speech (reasons ``MISMATCH`` and ``LOW_SCORE``) and
fits one Whisper window is checked by forced alignment (:meth:`Recognizer.force_align`): the
model scores, on the stretch's audio, its own hypothesis and the transcript's text. The gap in
mean log-probability per token (``hypothesis - transcript``, in nats) is small when the
transcript is a plausible reading of the audio that the model merely ranked lower, and large
when the text belongs elsewhere. Measured with tiny.en on the 89 stretches of speechocean762
train that the word match rejects (``benchmarks/bench_align_finetune.py --row gap``; every one is
correct text): the gap of the stretch's own transcript has median 2.11 nats (5-95 %: 0.57-4.74),
that of another stretch's transcript 4.75 (2.91-7.87). At the default 2.5
(``SegmentRules.max_logprob_gap``) 55 of 89 correct transcripts are kept and 1 of 89 wrong ones;
at 2.0, 42 and 1; at 3.0, 65 and 6. A stretch within the gap becomes a
segment (its ``logprob_gap`` recorded); the others stay rejected, with the gap in the reason.
Stretches with nothing recognised (text not in the audio) and speech the transcript lacks are
never rescued: there is nothing to compare.

The transcript is scored as Whisper writes: an all-capitals transcript (LibriSpeech,
speechocean762, many call-centre exports) in sentence case, since Whisper finds capitals
improbable whatever was said.
"""

from __future__ import annotations

from dataclasses import replace

from asrtune.alignment.limits import TokenCounter
from asrtune.alignment.segmenter import LOW_SCORE, MISMATCH, AlignedSegment, RejectedStretch, SegmentRules, speech_limits
from asrtune.alignment.text_align import MATCH, SUBSTITUTED, TextAlignment
from asrtune.data.audio import load_audio

RESCUABLE = (MISMATCH, LOW_SCORE)  # reasons with recognised speech to compare against


def scoring_text(text: str) -> str:
    """The transcript as Whisper would write it, for scoring: all-capitals text in sentence case.

    >>> scoring_text("ANN IS FROM GERMANY"), scoring_text("Ann is from Germany."), scoring_text("I'M OK. YES")
    ('Ann is from germany', 'Ann is from Germany.', "I'm ok. Yes")
    """
    letters = [c for c in text if c.isalpha()]
    if not letters or any(c.islower() for c in letters):
        return text
    out, start = [], True
    for c in text.lower():
        out.append(c.upper() if start and c.isalpha() else c)
        if c.isalpha():
            start = False
        elif c in ".!?":
            start = True
    # "i" alone is always capital in English
    return " ".join("I" + w[1:] if w == "i" or w.startswith("i'") else w for w in "".join(out).split(" "))


def rescue_stretches(
    recognizer,
    audio_path: str,
    alignment: TextAlignment,
    segments: list[AlignedSegment],
    rejected: list[RejectedStretch],
    rules: SegmentRules,
    count_tokens: TokenCounter,
    audio_duration: float | None = None,
) -> tuple[list[AlignedSegment], list[RejectedStretch]]:
    """Move rejected stretches whose transcript the model finds plausible into ``segments``."""
    if rules.max_logprob_gap is None or not getattr(recognizer, "can_force_align", False):
        return segments, rejected
    limits = speech_limits(alignment, audio_duration)
    candidates, bounds = [], []
    for r in rejected:
        span = _bounds(r, alignment, rules, limits) if _rescuable(r, rules, count_tokens) else None
        if span is not None:
            candidates.append(r)
            bounds.append(span)
    if not candidates:
        return segments, rejected
    clips = [load_audio(audio_path, offset=start, duration=end - start) for start, end in bounds]
    heard = recognizer.decode(clips)
    texts = [scoring_text(r.text) for r in candidates]
    forced = recognizer.force_align(clips + clips, texts + [h.text or "" for h in heard])
    n = len(candidates)
    kept, still = list(segments), []
    for i, r in enumerate(candidates):
        if not heard[i].text.strip():  # the model hears nothing there: not a misrecognition
            still.append(r)
            continue
        gap = round(forced[n + i].avg_logprob - forced[i].avg_logprob, 3)
        if gap <= rules.max_logprob_gap:
            start, end = bounds[i]
            kept.append(AlignedSegment(r.source, round(start, 3), round(end, 3), r.text, _matched_share(alignment, r),
                                       r.first_word, r.last_word, logprob_gap=gap))
        else:
            still.append(replace(r, reason=f"{r.reason}; forced alignment: transcript {gap:.2f} nats/token "
                                          f"less likely than the recogniser's text (> {rules.max_logprob_gap})"))
    others = [r for r in rejected if not any(r is c for c in candidates)]
    return _without_overlaps(sorted(kept, key=lambda s: s.first_word), alignment), sorted(others + still, key=lambda r: (r.first_word, r.start))


def _rescuable(r: RejectedStretch, rules: SegmentRules, count_tokens: TokenCounter) -> bool:
    return (r.reason.startswith(RESCUABLE) and bool(r.text.strip()) and r.end > r.start
            and r.end - r.start <= rules.max_duration_s and count_tokens(r.text) <= rules.max_tokens)


def _bounds(r: RejectedStretch, alignment: TextAlignment, rules: SegmentRules, limits) -> tuple[float, float] | None:
    """The audio of a rejected stretch as a segment would take it (None: nothing recognised in it).

    A low-score stretch was a segment already. A mismatched run takes the segmenter's own edge
    rule (its first and last *recognised* words, ``pad_s`` either side, at most half-way to the
    recognised speech outside), so it meets its neighbours half-way.
    """
    if r.reason.startswith(LOW_SCORE):
        return r.start, r.end
    heard = [w for w in alignment.words[r.first_word : r.last_word] if w.status in (MATCH, SUBSTITUTED)]
    if not heard:
        return None
    first, last = heard[0], heard[-1]
    start = max(first.start - rules.pad_s, limits.start_limit(first.start), 0.0)
    end = max(min(last.end + rules.pad_s, limits.end_limit(last.end)), last.end)
    return (start, end) if end - start <= rules.max_duration_s else None


def _without_overlaps(segments: list[AlignedSegment], alignment: TextAlignment) -> list[AlignedSegment]:
    """Neighbours whose padded edges overlap (words with no pause between them) meet half-way
    between the last word of one and the first of the other."""
    out: list[AlignedSegment] = []
    for seg in segments:
        if out and out[-1].end > seg.start:
            prev = out[-1]
            cut = (alignment.words[prev.last_word - 1].end + alignment.words[seg.first_word].start) / 2
            cut = round(min(max(cut, seg.start, prev.start), prev.end, seg.end), 3)
            out[-1] = replace(prev, end=cut)
            seg = replace(seg, start=cut)
        out.append(seg)
    return out


def _matched_share(alignment: TextAlignment, r: RejectedStretch) -> float:
    scored = [w for w in alignment.words[r.first_word : r.last_word] if w.scored]
    return round(sum(w.status == MATCH for w in scored) / len(scored), 4) if scored else 0.0


__all__ = ["RESCUABLE", "rescue_stretches", "scoring_text"]
