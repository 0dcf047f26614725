"""``asrtune lm build``: domain text -> word n-gram LM + lexicon + tokens for CTC beam search."""

from __future__ import annotations

import argparse

from asrtune.cli import HelpFormatter, add_subparser
from asrtune.lm.build import build_lm

DESCRIPTION = """\
Build what a CTC model's beam search needs from plain domain text (one sentence or paragraph a
line): an ARPA word n-gram LM (interpolated modified Kneser-Ney, estimated by asrtune itself:
KenLM's lmplz is not on PyPI), a lexicon spelling each word in the model's characters, the
model's token list, and lm/lm.json describing them. Decode with it through
`asrtune eval/transcribe --model CTC_MODEL --lm DIR`.

Text is cleaned like CTC training targets: --char-map rewrites characters, case follows the
model's vocabulary (--tokens-from; lower case without it), punctuation splits words. Terms
(--terms, one per line, multi-word allowed) join the LM text and are boosted as hotwords at
decode time (+--hotword-boost log10 units on their LM score).
"""

EXAMPLES = """\
  asrtune lm build --text domain.txt --out lm/
  asrtune lm build --text domain.txt --text manuals.txt --order 4 --terms terms.txt \\
      --tokens-from facebook/wav2vec2-base-960h --out lm/
  asrtune eval --model runs/w2v2/best --manifest test.jsonl --lm lm/ --out reports/lm
"""


def register(subparsers, summary: str) -> None:
    p = add_subparser(subparsers, "lm", summary, DESCRIPTION, EXAMPLES)
    sub = p.add_subparsers(dest="lm_command", metavar="ACTION")
    b = sub.add_parser(
        "build", help="build an LM folder from domain text", description=DESCRIPTION,
        epilog="examples:\n" + EXAMPLES, formatter_class=HelpFormatter,
    )
    b.add_argument("--text", action="append", required=True, help="plain-text file of domain text (repeatable)")
    b.add_argument("--out", required=True, help="output folder (lm.arpa, lexicon.txt, tokens.txt, lm.json)")
    b.add_argument("--order", type=int, default=3, help="n-gram order (2-6)")
    b.add_argument("--terms", help="file of terms to boost, one per line")
    b.add_argument("--tokens-from", help="CTC model (name, folder, run dir) or vocab.json whose characters the lexicon uses")
    b.add_argument("--char-map", help="rewrite/drop characters, e.g. \"é=e,’=',—=\"")
    b.add_argument("--hotword-boost", type=float, default=2.0, help="log10 bonus added to a hotword's LM score")
    b.set_defaults(func=run_build)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def run_build(args: argparse.Namespace) -> int:
    info = build_lm(
        args.text, args.out, order=args.order, terms=args.terms, tokens_from=args.tokens_from,
        char_map=args.char_map, hotword_boost=args.hotword_boost,
    )
    print(
        f"wrote {args.out}: {info['order']}-gram LM over {info['vocabulary']} words "
        f"({info['sentences']} sentences, {info['words']} words), {len(info['hotwords'])} hotwords, case {info['case']}"
    )
    if info["unspellable_words"]:
        chars = "".join(info["unspellable_chars"])
        print(
            f"note: {info['unspellable_words']} word(s) use characters the model cannot write ({chars!r}); "
            "they stay in the LM but not in the lexicon (map them with --char-map)"
        )
    return 0
