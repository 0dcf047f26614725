"""Normaliser cases that move WER by points when scoring is careless."""

import pytest

from asrtune.errors import ConfigError
from asrtune.text import NORMALIZER_NAMES, get_normalizer


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("fifty", "50"),
        ("FIFTY FIVE", "55"),
        ("It's raining", "it is raining"),
        ("I won't go, I can't.", "i will not go i can not"),
        ("Uh, hello [noise] (laughs) world", "hello world"),
        ("ten percent", "10%"),
        ("fifty dollars", "$50"),
        ("Mr. Smith", "mister smith"),
        ("COUNSELLED", "counseled"),  # British -> American spelling map
        ("the colour grey", "the color gray"),
        ("  spaced\tout \n text ", "spaced out text"),
    ],
)
def test_whisper_en_cases(raw, expected):
    assert get_normalizer("whisper-en")(raw) == expected


def test_whisper_en_makes_spoken_and_written_forms_equal():
    norm = get_normalizer("whisper-en")
    assert norm("It's fifty-five degrees.") == norm("it is 55 degrees")


def test_basic_keeps_words_drops_punctuation_and_case():
    norm = get_normalizer("basic")
    assert norm("Hola, ¿qué tal?  [ruido]") == "hola qué tal"
    assert norm("fifty") == "fifty"  # no number rewriting outside English


def test_none_only_collapses_whitespace():
    assert get_normalizer("none")("  Hello,\n  World ") == "Hello, World"


def test_names_and_versions_are_recorded():
    import transformers

    for name in NORMALIZER_NAMES:
        norm = get_normalizer(name)
        assert norm.name == name
        assert norm.version
        assert norm.describe()["name"] == name
    version = get_normalizer("whisper-en").version
    assert f"transformers=={transformers.__version__}" in version
    assert "english.json" in version  # the spelling map was found and is identified


def test_unknown_name_is_one_clear_error():
    with pytest.raises(ConfigError, match="whisper-en, basic, none"):
        get_normalizer("whisper-fr")
