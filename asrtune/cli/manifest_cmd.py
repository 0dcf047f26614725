"""`asrtune manifest` (placeholder until built)."""

from asrtune.cli import add_subparser, not_yet_built


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "manifest", summary, "Not yet built.", "  asrtune manifest --help")
    p.set_defaults(func=not_yet_built("manifest"))
