"""Summarise py-spy's raw (collapsed) stacks: where the server spends its time.

    .venv/bin/python bench/stacks.py /tmp/ingest-0.txt [--within batch_or_transaction]
    .venv/bin/python bench/stacks.py /tmp/search.txt --tree _search --depth 4

Each line of the raw format is `frame;frame;...;frame count`, a frame being
`function (file:line)`. Functions are counted without line numbers: "self" is time in
the function itself, "inclusive" time with everything it called (recursion counted
once). Percentages are of the samples kept (by default those inside the Bundle
handler, so that idle event-loop time and startup do not dilute them). `--tree F`
prints instead what F called, as a tree of shares of F's samples (F's first frame on
each stack; branches under 1% left out).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_SITE_PACKAGES = re.compile(r".*/site-packages/")
_PROJECT = re.compile(r".*/(?=health/)")


@dataclass
class Profile:
    samples: int
    self_time: Counter[str]
    inclusive: Counter[str]


def frame_name(frame: str) -> str:
    """`function (short/file.py)`: the line number dropped, long prefixes shortened."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = _PROJECT.sub("", _SITE_PACKAGES.sub("", match.group("file")))
    return f"{match.group('function')} ({file})"


def stacks(lines: list[str]) -> Iterator[tuple[list[str], int]]:
    """Each stack's frames, outermost first, and its number of samples."""
    for line in lines:
        stack_text, _, count_text = line.rstrip().rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        frames = [frame_name(f) for f in stack_text.split(";") if f]
        # py-spy --subprocesses puts "process 123:..." first: not a function.
        yield [f for f in frames if not f.startswith("process ")], int(count_text)


def summarise(lines: list[str], within: str | None) -> Profile:
    profile = Profile(0, Counter(), Counter())
    for frames, count in stacks(lines):
        if within is not None and not any(f.startswith(f"{within} (") for f in frames):
            continue
        profile.samples += count
        if frames:
            profile.self_time[frames[-1]] += count
        for name in set(frames):
            profile.inclusive[name] += count
    return profile


def call_tree(lines: list[str], root: str, depth: int) -> tuple[int, Counter[tuple[str, ...]]]:
    """The samples through `root`, and per call path below it (up to `depth` frames)
    the samples through that path."""
    total = 0
    paths: Counter[tuple[str, ...]] = Counter()
    for frames, count in stacks(lines):
        starts = [i for i, f in enumerate(frames) if f.startswith(f"{root} (")]
        if not starts:
            continue
        total += count
        below = frames[starts[0] + 1 : starts[0] + 1 + depth]
        for end in range(1, len(below) + 1):
            paths[tuple(below[:end])] += count
    return total, paths


def print_tree(root: str, total: int, paths: Counter[tuple[str, ...]], console: Console) -> None:
    console.print(f"{root}: {total:,} samples")

    def branch(prefix: tuple[str, ...]) -> None:
        children = [
            (path, count)
            for path, count in paths.items()
            if len(path) == len(prefix) + 1 and path[:-1] == prefix
        ]
        for path, count in sorted(children, key=lambda item: -item[1]):
            if count / total < 0.01:
                continue
            console.print(f"{'  ' * len(path)}{count / total * 100:5.1f}% {path[-1]}")
            branch(path)

    branch(())


def print_profile(profile: Profile, top: int, console: Console) -> None:
    for title, counter in (("self", profile.self_time), ("inclusive", profile.inclusive)):
        table = Table(title=f"Top {top} by {title} time ({profile.samples:,} samples)")
        table.add_column("share", justify="right")
        table.add_column("function (file)")
        for name, count in counter.most_common(top):
            table.add_row(f"{count / profile.samples * 100:.1f}%", name)
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", type=Path, nargs="+", help="py-spy --format raw output files")
    parser.add_argument(
        "--within",
        default="batch_or_transaction",
        help="keep only stacks through this function ('' keeps all)",
    )
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--tree", metavar="FUNCTION", help="print what FUNCTION called, as a tree of shares"
    )
    parser.add_argument("--depth", type=int, default=4, help="levels of --tree")
    arguments = parser.parse_args(argv)
    lines = [line for path in arguments.raw for line in path.read_text().splitlines()]
    console = Console(width=None if sys.stdout.isatty() else 160)
    if arguments.tree:
        total, paths = call_tree(lines, arguments.tree, arguments.depth)
        if not total:
            print(f"No stack passes through {arguments.tree}", file=sys.stderr)
            return 1
        print_tree(arguments.tree, total, paths, console)
        return 0
    profile = summarise(lines, arguments.within or None)
    if not profile.samples:
        print("No samples matched", file=sys.stderr)
        return 1
    print_profile(profile, arguments.top, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
