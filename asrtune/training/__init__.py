"""Fine-tuning: ``TrainConfig``, one ``Trainer`` loop, model adapters (whisper, ctc), encoder cache.

>>> from asrtune.training import TrainConfig, train          # doctest: +SKIP
>>> result = train(TrainConfig(model="openai/whisper-tiny.en", train=["train.jsonl"],
...                            dev="dev.jsonl", out="runs/acc"))  # doctest: +SKIP
>>> result.best_dev_wer                                       # doctest: +SKIP
"""

from asrtune.training.config import TrainConfig


def train(config, on_step=None):
    """Run (or resume) a fine-tuning run described by ``config``; returns a ``RunResult``.

    ``on_step(trainer)``, when given, is called after every optimiser step (and its checkpoint)."""
    from asrtune.training.trainer import train as _train  # heavy: torch; TrainConfig stays light

    return _train(config, on_step)


__all__ = ["TrainConfig", "train"]
