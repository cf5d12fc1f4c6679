"""``lnstaging dataset check DIR``: list every problem of a cohort folder (docs/DATASET.md)."""

from __future__ import annotations

import sys


def register(sub):
    parser = sub.add_parser("dataset", help="inspect a cohort folder (docs/DATASET.md)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="report every problem, one per line; exit non-zero if any",
                               description="Check a cohort folder against docs/DATASET.md: files, image types, grids, "
                                           "labels, splits, candidate lists and patient labels.")
    check.add_argument("dir", help="cohort folder holding dataset.json and cases/")
    check.set_defaults(func=main_check)


def main_check(args) -> int:
    from ..dataset.check import check_dataset

    report = check_dataset(args.dir)
    for problem in report.problems:
        print(problem)
    if report.problems:
        print(f"lnstaging dataset check: {len(report.problems)} problem(s) in {args.dir}", file=sys.stderr)
        return 1
    print(f"OK: {report.summary()}")
    return 0
