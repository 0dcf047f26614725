"""Median filtering and dynamic time warping for attention-based word alignment.

The DTW is vectorised along each row: with ``c[j] = x[j] + min(a[j], c[j-1])`` (``a`` = best of
the diagonal and vertical predecessors) the row is a running minimum over prefix sums, so a
100-token x 1500-frame matrix takes a hundred numpy calls instead of 150 000 Python steps.
"""

from __future__ import annotations

import numpy as np

MEDIAN_FILTER_WIDTH = 7  # frames (20 ms each), openai-whisper's and CTranslate2's default


def median_filter(x: np.ndarray, width: int = MEDIAN_FILTER_WIDTH) -> np.ndarray:
    """Median over a sliding window of ``width`` along the last axis, edges mirrored.

    >>> median_filter(np.array([1.0, 1.0, 9.0, 1.0, 1.0]), 3).tolist()  # a one-frame spike is removed
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    if width <= 1 or x.shape[-1] <= width // 2:
        return x
    pad = width // 2
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.median(windows, axis=-1)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path through ``cost`` (rows x columns) from the top-left to the
    bottom-right corner, moving right, down or diagonally. Returns (row indices, column indices).

    >>> rows, cols = dtw(np.array([[0.0, 5.0, 5.0], [5.0, 0.0, 0.0]]))
    >>> rows.tolist(), cols.tolist()
    ([0, 1, 1], [0, 1, 2])
    """
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    # trace: 0 = diagonal, 1 = from above, 2 = from the left
    trace = np.zeros((n + 1, m + 1), dtype=np.int8)
    for i in range(1, n + 1):
        x = cost[i - 1].astype(np.float64)
        diag, up = acc[i - 1, :-1], acc[i - 1, 1:]
        best_prev = np.minimum(diag, up)  # a[j] for column j+1
        prefix = np.concatenate([[0.0], np.cumsum(x)])  # prefix[j] = x[0] + ... + x[j-1]
        entry = best_prev - prefix[:-1]  # path enters the row at column j from above/diagonal
        running = np.minimum.accumulate(entry)
        acc[i, 1:] = prefix[1:] + running
        from_left = np.concatenate([[False], entry[1:] > running[:-1]])
        trace[i, 1:] = np.where(from_left, 2, np.where(diag <= up, 0, 1))
    return _backtrace(trace)


def _backtrace(trace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = trace.shape[0] - 1, trace.shape[1] - 1
    trace[0, :] = 2
    trace[:, 0] = 1
    rows, cols = [], []
    while i > 0 or j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        step = trace[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    path = np.array([rows[::-1], cols[::-1]])
    return path[0], path[1]
