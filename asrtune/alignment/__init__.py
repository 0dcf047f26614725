"""Word timing and text-to-audio alignment: one :class:`Word` type, one module per method.

Word times:

- :mod:`.words`: the :class:`Word` type and the token -> word grouping every Whisper method shares;
- :mod:`.dtw`: median filter and dynamic time warping over an attention matrix;
- :mod:`.cross_attention`: Whisper through transformers (DTW over the alignment heads' cross-attention);
- :mod:`.ct2`: Whisper through CTranslate2 (its built-in ``Whisper.align``);
- :mod:`.ctc`: CTC models (torchaudio's ``forced_align`` on the frame log-probabilities).

Long recordings with a transcript become training segments:

- :mod:`.text_align`: carry hypothesis word times to the words of a reference transcript;
- :mod:`.segmenter`: cut a timed reference into <= 30 s / <= 448-token training segments, rejecting
  stretches where transcript and audio disagree;
- :mod:`.limits`: Whisper's training window limits and the token counter that enforces them;
- :mod:`.long_audio`: the ``asrtune manifest align`` driver (windowed decoding of long files).
"""

from asrtune.alignment.words import Word

__all__ = ["Word"]
