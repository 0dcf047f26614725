"""Text layer: named, versioned normalisers used for scoring."""

from asrtune.text.normalizers import NORMALIZER_NAMES, Normalizer, collapse_whitespace, get_normalizer

__all__ = ["NORMALIZER_NAMES", "Normalizer", "collapse_whitespace", "get_normalizer"]
