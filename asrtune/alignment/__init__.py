"""Word-level timestamps: one :class:`Word` type, one module per way of finding word times.

- :mod:`.words`: the :class:`Word` type and the token -> word grouping every Whisper method shares;
- :mod:`.dtw`: median filter and dynamic time warping over an attention matrix;
- :mod:`.cross_attention`: Whisper through transformers (DTW over the alignment heads' cross-attention);
- :mod:`.ct2`: Whisper through CTranslate2 (its built-in ``Whisper.align``);
- :mod:`.ctc`: CTC models (torchaudio's ``forced_align`` on the frame log-probabilities).
"""

from asrtune.alignment.words import Word

__all__ = ["Word"]
