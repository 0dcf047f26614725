"""Optional extras: the one way a feature imports a package that ``pip install asrtune`` leaves out.

The core install carries what ``train``, ``eval``, ``transcribe`` and ``manifest align`` need;
everything else is a pip extra (pyproject.toml). A feature imports its extra's packages inside
:func:`needs_extra`, so a missing one is a single line naming the extra to install, raised
before the feature writes anything.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from asrtune.errors import MissingExtraError


def install_hint(extra: str) -> str:
    """The command that installs ``extra``.

    >>> install_hint("lm")
    "pip install 'asrtune[lm]'"
    """
    return f"pip install 'asrtune[{extra}]'"


@contextmanager
def needs_extra(extra: str, feature: str, packages: str) -> Iterator[None]:
    """Import an optional package inside this block; an ImportError becomes one line naming ``extra``.

    ``feature`` is what the user asked for (a command or an option), ``packages`` what it needs,
    as a person would name it.

    >>> with needs_extra("lm", "--lm beam search", "flashlight-text"):
    ...     import asrtune_no_such_module
    Traceback (most recent call last):
    asrtune.errors.MissingExtraError: --lm beam search needs flashlight-text (asrtune_no_such_module is not installed): pip install 'asrtune[lm]'
    """
    try:
        yield
    except ImportError as e:
        missing = e.name or str(e)
        raise MissingExtraError(f"{feature} needs {packages} ({missing} is not installed): {install_hint(extra)}") from None
