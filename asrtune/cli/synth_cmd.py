"""`asrtune synth` (placeholder until built)."""

from asrtune.cli import add_subparser, not_yet_built


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "synth", summary, "Not yet built.", "  asrtune synth --help")
    p.set_defaults(func=not_yet_built("synth"))
