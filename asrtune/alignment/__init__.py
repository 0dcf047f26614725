"""Word timing and text-to-audio alignment: long recordings with a transcript become training segments.

- ``text_align``: carry hypothesis word times to the words of a reference transcript.
- ``segmenter``: cut a timed reference into <= 30 s / <= 448-token training segments, rejecting
  stretches where transcript and audio disagree.
- ``limits``: Whisper's training window limits and the token counter that enforces them.
- ``long_audio``: the ``asrtune manifest align`` driver (windowed decoding of long files).
"""
