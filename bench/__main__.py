"""`make bench` (python -m bench [module ...]): every benchmark module in turn, then a table of figures.

A benchmark module is a bench/<name>.py with a top-level `def main() -> list[dict]`; each
dict is one figure: {"figure", "measured", "ratio" (float or None), "target", "ok" (bool or
None)}. Each module runs in its own process (so that each may configure Django its own
way: its own database, broker and settings); what it prints is shown as it runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "BENCH-FIGURES "
RUNNER = (
    "import json, sys, importlib; figures = importlib.import_module('bench.' + sys.argv[1]).main(); "
    f"print({MARKER!r} + json.dumps(figures, default=str), flush=True)"
)


def modules() -> list[str]:
    found = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        if re.search(r"^def main\(", path.read_text(), re.MULTILINE):
            found.append(path.stem)
    return found


def run_module(name: str) -> list[dict]:
    print(f"\n=== bench.{name}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, name], cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    figures: list[dict] | None = None
    for line in process.stdout:
        if line.startswith(MARKER):
            figures = json.loads(line[len(MARKER):])
        else:
            print(line, end="", flush=True)
    process.wait()
    if process.returncode != 0 or figures is None:
        return [{"module": name, "figure": "(the module crashed)", "measured": f"exit {process.returncode}",
                 "ratio": None, "target": "", "ok": False, "crashed": True}]
    print(f"(bench.{name}: {time.monotonic() - started:.0f} s)", flush=True)
    return [{"module": name, **figure} for figure in figures]


def table(rows: list[dict]) -> str:
    header = ("module", "figure", "measured", "ratio", "target", "ok")
    cells = [header] + [
        (
            row.get("module", ""),
            row["figure"],
            str(row["measured"]),
            "" if row.get("ratio") is None else f"{row['ratio']:.2f}x",
            str(row.get("target", "")),
            {True: "yes", False: "MISSED", None: "-"}[row.get("ok")],
        )
        for row in rows
    ]
    widths = [max(len(cell[i]) for cell in cells) for i in range(len(header))]
    lines = ["  ".join(cell[i].ljust(widths[i]) for i in range(len(header))).rstrip() for cell in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> int:
    wanted = sys.argv[1:] or modules()
    rows = [row for name in wanted for row in run_module(name)]
    print("\n" + table(rows))
    return 1 if any(row.get("crashed") for row in rows) else 0  # a missed target shows in the table


if __name__ == "__main__":
    sys.exit(main())
