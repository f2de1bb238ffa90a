"""`plba plugins list` start-up: its wall time as a ratio to `python -c "import typer"`, same run.

Run with `nox -s bench_cli` (or `python benchmarks/cli_startup.py [--runs N]`). Goal: at most 2.5.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall_time(command: list[str], runs: int) -> float:
    """Median seconds for `command` over `runs` runs, after one warm-up run."""
    subprocess.run(command, check=True, capture_output=True)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    """Time both commands and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    reference = wall_time([sys.executable, "-c", "import typer"], args.runs)
    plugins_list = wall_time([sys.executable, "-m", "plba", "plugins", "list"], args.runs)
    print(f"python -c 'import typer': {reference * 1000:7.1f} ms")
    print(f"plba plugins list:        {plugins_list * 1000:7.1f} ms")
    print(f"ratio: {plugins_list / reference:.2f} (goal: at most 2.5)")


if __name__ == "__main__":
    main()
