"""Report speed: summary + HTML of a synthetic run of a few hundred dialogues (no model).

Builds the same run as the report tests (5 cultures x 30 scenarios x 2 samples, 6 turns each) in a
temporary directory, then times `build_summary` and `render_html` over --repeat runs.

    python benchmarks/bench_report.py
    python benchmarks/bench_report.py --scenarios 60 --repeat 5

The LAST line is `seconds=<median seconds for summary + HTML>` (the target: under 2 s on a laptop CPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from report_fixtures import build_run  # noqa: E402

from clca.report import build_summary, render_html  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=30, help="scenarios per culture")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = build_run(
            Path(tmp) / "run",
            cultures=("CHN", "DEU", "GBR", "MEX", "JPN"),
            scenarios_per_culture=args.scenarios,
            samples=2,
            turns=6,
        )
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            html = render_html(build_summary(store))
            times.append(time.perf_counter() - t)
        store.close()
    print(f"episodes={5 * (args.scenarios * 2 - 1)} html_bytes={len(html)} runs={[round(x, 3) for x in times]}")
    print(f"seconds={statistics.median(times):.3f}")


if __name__ == "__main__":
    main()
