"""Fine-tuning: ``TrainConfig``, one ``Trainer`` loop, model adapters (whisper, ctc), encoder cache.

>>> from asrtune.training import TrainConfig, train          # doctest: +SKIP
>>> result = train(TrainConfig(model="openai/whisper-tiny.en", train=["train.jsonl"],
...                            dev="dev.jsonl", out="runs/acc"))  # doctest: +SKIP
>>> result.best_dev_wer                                       # doctest: +SKIP
"""

from asrtune.training.config import TrainConfig


def train(config):
    """Run (or resume) a fine-tuning run described by ``config``; returns a ``RunResult``."""
    from asrtune.training.trainer import train as _train

    return _train(config)


__all__ = ["TrainConfig", "train"]
