"""Instructions per request of 重要なお知らせ and its two baselines, counted by valgrind's callgrind (information).

The pages module's CPU times are the judged figures; on a shared machine they move with the
other tenants by a tenth or more from run to run. Instruction counts do not, so they show
whether a change made the work smaller. The same three calls as bench/pages.py, on the same
kind of database, in one process under callgrind: instrumentation is switched on only around
them (callgrind_control), after warming up. Counts leave out what the CPU waits for (cache
misses, the database's answer), so their ratios are lower than the CPU-time ratios.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .databases import postgres_server_url
from .pages import TARGETS

CALLS, WARM_UP = 100, 30


def count_in_this_process() -> None:
    """Under callgrind: each call's instructions over CALLS calls, dumped to a file of its own."""
    from .pages import page_calls, portal_database

    def control(*arguments: str) -> None:
        subprocess.run(["callgrind_control", *arguments, str(os.getpid())], check=True, capture_output=True)

    with portal_database(postgres_server_url(), "instructions"):
        calls, _sent, _peer_sent = page_calls()
        for call in calls.values():
            for _ in range(WARM_UP):
                call()
        control("--instr=on")
        for name, call in calls.items():
            control("--zero")
            for _ in range(CALLS):
                call()
            control(f"--dump={name}")
        control("--instr=off")


def counted(out_dir: str) -> dict[str, float]:
    """Instructions per call of each dumped call, from callgrind's own summary lines."""
    per_call = {}
    for path in Path(out_dir).glob("callgrind.out.*"):
        text = path.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: dump (\w+)", text, re.MULTILINE)
        summary = re.search(r"^summary: (\d+)", text, re.MULTILINE)
        if trigger and summary:
            per_call[trigger.group(1)] = int(summary.group(1)) / CALLS
    return per_call


def main() -> list[dict]:
    skipped = None
    if postgres_server_url() is None:
        skipped = "skipped: no PostgreSQL"
    elif shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        skipped = "skipped: no valgrind (apt-get install valgrind)"
    if skipped:
        print(f"instructions bench {skipped}")
        return [{"figure": "important notices, instructions per request", "measured": skipped,
                 "ratio": None, "target": "", "ok": None}]
    out_dir = tempfile.mkdtemp(prefix="certportal-bench-instructions-")
    child = subprocess.run(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/callgrind.out.%p",
         sys.executable, "-c", "from bench.instructions import count_in_this_process; count_in_this_process()"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    if child.returncode != 0:
        print(child.stdout[-2000:], child.stderr[-4000:], sep="\n")
        raise RuntimeError(f"the process under callgrind failed (exit {child.returncode})")
    got = counted(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    notices, peer, floor = got["notices"], got["peer"], got["floor"]
    print(f"  instructions per request: notices {notices:,.0f}, peer {peer:,.0f}, floor {floor:,.0f}")
    return [
        {"figure": "important notices vs its fair peer, instructions per request (callgrind; information)",
         "measured": f"{notices / 1e6:.2f} M vs {peer / 1e6:.2f} M", "ratio": notices / peer,
         "target": f"(CPU: <= {TARGETS['peer']:.1f}x)", "ok": None},
        {"figure": "important notices vs its raw floor, instructions per request (callgrind; information)",
         "measured": f"{notices / 1e6:.2f} M vs {floor / 1e6:.2f} M", "ratio": notices / floor,
         "target": f"(CPU: <= {TARGETS['floor']:.1f}x)", "ok": None},
    ]


if __name__ == "__main__":
    for row in main():
        print(row)
