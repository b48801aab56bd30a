"""How a command slows down on a busy machine: its wall time idle and beside CPU hogs.

A job on a shared node should slow down in proportion to the CPU it gets (two hogs on two
cores: about 2x), not collapse because its threads outnumber the cores or spin while they
wait. Each command runs alternately idle and beside ``--hogs`` busy-looping processes (default:
one per core this process may use), ``--repeats`` times; the table gives the median wall time
of each and the ratio hogged / idle, measured in the same run, and the median CPU time (user +
system) of the command: threads that spin while they wait show as CPU time that grows under
load, whereas a command that only gets a smaller share of the cores keeps its CPU time (a
useful check on a machine whose other load comes and goes). Several commands (``--cmd``,
repeatable) are timed side by side in the same rounds, e.g. this scurate against an older
install.

Usage::

    python benchmarks/bench_under_load.py --repeats 3 \\
        --cmd "new=.venv/bin/scurate bench DATA --holdout X=Y --label cell_type \\
               -o /tmp/b1 --overwrite" \\
        --cmd "old=/tmp/old/bin/scurate bench DATA --holdout X=Y --label cell_type -o /tmp/b2"

Never run in CI.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time


def hog() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def timed(command: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(shlex.split(command), check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cmd", action="append", required=True, help="NAME=COMMAND")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hogs", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    commands = dict(c.split("=", 1) for c in args.cmd)
    times: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    for r in range(args.repeats):
        for loaded in (False, True) if r % 2 == 0 else (True, False):
            hogs = [mp.Process(target=hog, daemon=True) for _ in range(args.hogs if loaded else 0)]
            for h in hogs:
                h.start()
            try:
                for name, command in commands.items():
                    seconds, cpu = timed(command)
                    times.setdefault((name, "hogged" if loaded else "idle"), []).append(seconds)
                    cpus.setdefault((name, "hogged" if loaded else "idle"), []).append(cpu)
                    state = f"beside {args.hogs} hogs" if loaded else "idle"
                    print(
                        f"round {r + 1}: {name} {state}: {seconds:.1f} s ({cpu:.1f} CPU s)",
                        file=sys.stderr,
                    )
            finally:
                for h in hogs:
                    h.terminate()
                    h.join()
    print(f"\n{os.cpu_count()} cores, {args.hogs} hogs, {args.repeats} alternating rounds\n")
    print(
        "| command | idle median s | hogged median s | hogged / idle | CPU s idle | CPU s hogged |"
        "\n|---|---:|---:|---:|---:|---:|"
    )
    for name in commands:
        idle = statistics.median(times[(name, "idle")])
        hogged = statistics.median(times[(name, "hogged")])
        cpu_idle = statistics.median(cpus[(name, "idle")])
        cpu_hogged = statistics.median(cpus[(name, "hogged")])
        print(
            f"| {name} | {idle:.1f} | {hogged:.1f} | {hogged / idle:.2f} | {cpu_idle:.1f} "
            f"| {cpu_hogged:.1f} |"
        )


if __name__ == "__main__":
    main()
