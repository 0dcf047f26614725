"""Data layer: manifests (the data model), audio loading, importers, validation, stats, splits."""

from asrtune.data.audio import SAMPLE_RATE_HZ, audio_info, count_decodable_frames, load_audio, resample
from asrtune.data.importers import FORMATS as IMPORT_FORMATS
from asrtune.data.importers import import_manifest, iter_import
from asrtune.data.manifest import Utterance, load_manifest, read_manifest, write_manifest
from asrtune.data.split import assign_splits, split_manifest
from asrtune.data.stats import ManifestStats, manifest_stats, plot_duration_histogram
from asrtune.data.validate import Problem, ValidationReport, check_audio_file, validate_manifests

__all__ = [
    "IMPORT_FORMATS",
    "SAMPLE_RATE_HZ",
    "ManifestStats",
    "Problem",
    "Utterance",
    "ValidationReport",
    "assign_splits",
    "audio_info",
    "check_audio_file",
    "count_decodable_frames",
    "import_manifest",
    "iter_import",
    "load_audio",
    "load_manifest",
    "manifest_stats",
    "plot_duration_histogram",
    "read_manifest",
    "resample",
    "split_manifest",
    "validate_manifests",
    "write_manifest",
]
