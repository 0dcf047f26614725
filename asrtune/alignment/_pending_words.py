"""TEMPORARY: ``Word`` as the timing work defines it in ``asrtune/alignment/words.py``.

Identical fields (``text, start, end, probability``). When ``words.py`` lands, the imports of
this module switch to it and this file is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    """One recognised word with its time span in seconds.

    >>> Word(" Hello,", 0.5, 0.9, 0.98).end
    0.9
    """

    text: str
    start: float
    end: float
    probability: float
