"""The Whisper fine-tuning recipes that more than one benchmark trains with.

``bench_timestamps`` tunes each of :data:`TUNES` on speechocean762 train; ``bench_align_finetune``
tunes the ``mixed`` recipe on aligned segments, so both compare like with like.
"""

from __future__ import annotations

MODEL = "openai/whisper-tiny.en"
TUNES = {  # run name -> the TrainConfig options that make the recipe
    # every example <|notimestamps|>, no prompts, no no-speech clips
    "plain": {"timestamp_fraction": 0.0, "prompt_fraction": 0.0, "no_speech_fraction": 0.0},
    # asrtune's defaults: timestamped targets, previous-utterance prompts, generated no-speech clips
    "mixed": {"timestamp_fraction": 0.5, "prompt_fraction": 0.3, "no_speech_fraction": 0.05},
    # the mix, trained on the clips plus the same clips packed into <= 30 s windows (asrtune manifest pack)
    "packed": {"timestamp_fraction": 0.5, "prompt_fraction": 0.3, "no_speech_fraction": 0.05},
    # the packed recipe in one step (--pack-windows) with vocabulary prompts (--prompt-terms auto: random
    # subsets of the training transcripts' 100 most frequent words) in place of the previous utterance
    "packed-terms": {"timestamp_fraction": 0.5, "prompt_fraction": 0.3, "no_speech_fraction": 0.05, "prompt_terms": "auto",
                     "pack_windows": True},
}
