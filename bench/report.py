"""Shared by the benchmark scripts: describe the machine and write a section of docs/benchmarks.md.

Each script owns one section between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` markers and
rewrites only that section, so the scripts can run in any order.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def command() -> str:
    """The command as run from the repository root, wherever it was started."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), BENCHMARKS.parent.parent)
    return "python " + " ".join([script, *sys.argv[1:]])


def read_section(name: str, path: Path = BENCHMARKS) -> str | None:
    """The section `name` of a page as write_section left it (markers included), or None: a
    script that rewrites a whole page keeps the sections other scripts own."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else ""
    found = re.search(re.escape(start) + ".*?" + re.escape(end), text, re.DOTALL)
    return found.group(0) if found else None


def write_section(name: str, title: str, body: str, path: Path = BENCHMARKS) -> None:
    """Write (or replace) section `name` of `path`, docs/benchmarks.md by default."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = (
        f"{start}\n## {title}\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}.\n"
        f"Command: `{command()}`\n\n{body.strip()}\n{end}"
    )
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote section {name!r} of {path}")
