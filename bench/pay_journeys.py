"""How long a buyer waits, per way of paying: "Buy" tapped → the provider's page (another
origin, a fake provider speaking the real protocol) → paid → back on faka → the key visible,
in the system's Chromium on a phone (360×800, Chinese). Runs the browser journeys of
tests/slow/test_pay_journeys.py RUNS times each (default 5) on SQLite and prints the median, the
fastest and the slowest of each, with JavaScript on and off.

    .venv/bin/python bench/pay_journeys.py [--runs 5] [--busy]

--busy keeps one core burning (a second process spinning) for the whole run, as on a
loaded machine. Times are wall-clock seconds on this machine: compare ways of paying within
one run, not runs on different days.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def burn() -> None:
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    args = parser.parse_args()

    burner = multiprocessing.Process(target=burn, daemon=True) if args.busy else None
    if burner:
        burner.start()
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as times:
        env = {
            **os.environ,
            "FAKA_TEST_DATABASE": "sqlite",
            "FAKA_JOURNEY_RUNS": str(args.runs),
            "FAKA_JOURNEY_TIMES": times.name,
        }
        env.setdefault("FAKA_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/slow/test_pay_journeys.py"],
            cwd=ROOT,
            env=env,
        )
        rows = [json.loads(line) for line in Path(times.name).read_text().splitlines() if line]
    if burner:
        burner.terminate()

    seconds = defaultdict(list)
    for row in rows:
        seconds[(row["way"], row["javascript"])].append(row["seconds"])
    print(f'\n"Buy" → key visible, seconds ({args.runs} runs each{", one core kept busy" if args.busy else ""}):\n')
    print("| way of paying | JavaScript | median | fastest | slowest | runs |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for (way, javascript), values in seconds.items():
        print(
            f"| {way} | {'on' if javascript else 'off'} | {statistics.median(values):.2f} | {min(values):.2f} | "
            f"{max(values):.2f} | {len(values)} |"
        )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
