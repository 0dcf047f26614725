"""`asrtune train` (placeholder until built)."""

from asrtune.cli import add_subparser, not_yet_built


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "train", summary, "Not yet built.", "  asrtune train --help")
    p.set_defaults(func=not_yet_built("train"))
