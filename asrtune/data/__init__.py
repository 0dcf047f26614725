"""Data layer: manifests (the data model) and audio loading."""

from asrtune.data.audio import SAMPLE_RATE, audio_info, load_audio, resample
from asrtune.data.manifest import Utterance, load_manifest, read_manifest, write_manifest

__all__ = ["SAMPLE_RATE", "Utterance", "audio_info", "load_audio", "load_manifest", "read_manifest", "resample", "write_manifest"]
