"""asrtune: adapt pretrained speech recognisers to a domain and prove the gain.

The Python API mirrors the CLI, layer by layer::

    from asrtune.data import read_manifest, load_audio        # data
    from asrtune.models import resolve_model                  # models
    from asrtune.training import train, TrainConfig           # training
    from asrtune.evaluation import evaluate                   # evaluation
    from asrtune.transcription import transcribe              # transcription
"""

__version__ = "0.1.0"
