"""The benchmark command: ``python -m attn_course.bench flash|linear|sparse [options]``.

It parses the options of the chosen suite, runs it, prints the record's table (unless
``--quiet``) and writes the JSON record to ``--out``. The command line recorded in the
record is the one given here (``main``'s ``argv``), for every suite.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from attn_course.bench import flash, linear, sparse
from attn_course.bench.records import record_label, results_table, write_record

__all__ = ["SUITES", "main"]

#: Each suite module has HELP, DESCRIPTION, add_arguments(parser) and run(args, command=...).
SUITES = {"flash": flash, "linear": linear, "sparse": sparse}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m attn_course.bench",
        description="Benchmark attention implementations and write a JSON record.",
    )
    sub = parser.add_subparsers(dest="benchmark", required=True)
    for name, suite in SUITES.items():
        suite_parser = sub.add_parser(name, help=suite.HELP, description=suite.DESCRIPTION)
        suite.add_arguments(suite_parser)
        suite_parser.add_argument("--out", type=Path, default=None, help="JSON record path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``python -m attn_course.bench`` + ``argv`` (default: ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    command = "python -m attn_course.bench " + shlex.join(argv)
    try:
        record = SUITES[args.benchmark].run(args, command=command)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"{record_label(record)} (kernels: {record.get('kernel_mode', 'n/a')})")
        print(results_table(record))
    if args.out:
        print(f"wrote {write_record(record, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
