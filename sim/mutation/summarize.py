#!/usr/bin/env python3
"""Summarises cargo-mutants results for the report: counts per outcome, the kill rate, and each
surviving mutant with its source line.

    python3 sim/mutation/summarize.py /tmp/rafting-mutants/sim-raft-q0 [more result dirs...]

A result dir is what run-mutants.sh names `$MUTANTS_OUT/<mode>-<area>[-tag]` (it holds
`mutants.out/`), or a copied `sim/mutation/results/<name>/` with the four lists. Source lines
are read from this checkout, so run it on the commit that was tested.
"""

import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
LISTS = ("caught", "missed", "timeout", "unviable")


def read_lists(directory: pathlib.Path) -> dict:
    base = directory / "mutants.out" if (directory / "mutants.out").is_dir() else directory
    lists = {}
    for name in LISTS:
        path = base / f"{name}.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        lists[name] = [line for line in lines if line.strip()]
    return lists


def source_line(mutant: str) -> str:
    match = re.match(r"([^:]+):(\d+):\d+: ", mutant)
    if not match:
        return ""
    path = REPO / match.group(1)
    lines = path.read_text().splitlines() if path.exists() else []
    number = int(match.group(2))
    return lines[number - 1].strip() if 0 < number <= len(lines) else ""


def main() -> None:
    for argument in sys.argv[1:]:
        directory = pathlib.Path(argument)
        lists = read_lists(directory)
        counts = {name: len(lists[name]) for name in LISTS}
        viable = counts["caught"] + counts["missed"] + counts["timeout"]
        detected = counts["caught"] + counts["timeout"]
        rate = 100.0 * detected / viable if viable else 0.0
        print(f"## {directory.name}")
        print(", ".join(f"{name} {counts[name]}" for name in LISTS), end="")
        print(f"; detected (caught + timeout) {detected} of {viable} viable = {rate:.1f}%")
        for mutant in sorted(lists["missed"]):
            print(f"- `{mutant}`")
            print(f"  `{source_line(mutant)}`")
        print()


if __name__ == "__main__":
    main()
