"""`clca wvs aggregate` on a file the size of the full WVS-7 release: time and peak memory.

Writes a synthetic official-format numeric CSV (default 97,000 respondents x 600 columns, 64 countries, the 44
bundled items with valid or negative codes, the persona columns, weights, filler columns) to a temporary
directory, then measures side by side in one run, each in its own process (peak RSS from wait4):

1. `clca wvs aggregate FILE --out ref.json` (streaming: only the needed columns are kept, row by row);
2. the naive way: `pandas.read_csv(FILE)` of the whole file (what a script that loads the release does);
3. with --sav: the same data as SPSS .sav (pyreadstat, read in column-selected chunks) through `clca wvs aggregate`.

    python benchmarks/bench_wvs_aggregate.py                   # 97,000 x 600
    python benchmarks/bench_wvs_aggregate.py --rows 20000 --sav

The LAST line is `ratio=<peak RSS of clca aggregate / peak RSS of the whole-file pandas load>`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_file(path: Path, rows: int, cols: int, seed: int = 0) -> list[str]:
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(ROOT / "src"))
    from clca.wvs import default_questionnaire

    rng = np.random.default_rng(seed)
    countries = [("EGY", 818), ("USA", 840), ("DEU", 276), ("JPN", 392), ("CHN", 156), ("MEX", 484), ("GBR", 826)]
    extra = [32, 36, 50, 68, 76, 104, 124, 152, 158, 170, 196, 203, 218, 231, 300, 320, 344, 356, 360, 364, 368,
             398, 400, 404, 410, 417, 422, 434, 446, 458, 462, 496, 504, 528, 554, 558, 566, 586, 604, 608, 616, 630,
             642, 643, 688, 702, 703, 704, 716, 752, 762, 764, 788, 792, 804, 858, 860]  # fmt: skip
    import pycountry

    countries += [(pycountry.countries.get(numeric=f"{n:03d}").alpha_3, n) for n in extra]
    k = rng.integers(0, len(countries), rows)
    data: dict[str, object] = {
        "B_COUNTRY": np.array([countries[i][1] for i in range(len(countries))])[k],
        "B_COUNTRY_ALPHA": np.array([countries[i][0] for i in range(len(countries))])[k],
        "W_WEIGHT": np.round(rng.uniform(0.2, 3.0, rows), 6),
    }
    for item in default_questionnaire():
        codes = np.array(item.codes + [-1, -2])
        data[item.id] = codes[rng.integers(0, len(codes), rows)]
    demo = {"H_URBRURAL": 2, "Q260": 2, "Q275": 9, "Q279": 8, "Q287": 5, "Q288": 10, "Q289": 10}
    for col, n in demo.items():
        data[col] = rng.integers(0 if col in ("Q275", "Q289") else 1, n + 1, rows)
    data["Q262"] = rng.integers(18, 90, rows)
    data["N_REGION_ISO"] = data["B_COUNTRY"] * 1000 + rng.integers(1, 20, rows)  # type: ignore[operator]
    j = 0
    while len(data) < cols:
        j += 1
        data[f"X{j:03d}"] = rng.integers(-5, 11, rows)
    df = pd.DataFrame(data)
    df.to_csv(path, index=False)
    return list(df.columns)


# Run in the child: its own peak RSS (VmHWM) is printed at exit. (wait4's ru_maxrss would include the RSS the
# child inherits from this process at fork, which has numpy/pandas loaded.)
_PEAK = """
import atexit, sys
def _peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            print('PEAK_KB', line.split()[1], file=sys.stderr, flush=True)
atexit.register(_peak)
"""


def measure(code: str) -> tuple[float, float, str]:
    """(seconds, peak RSS in MiB, output) of `python -c CODE` in a fresh process."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK + code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})  # fmt: skip
    secs = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{code!r} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
    peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK_KB")]
    return secs, int(peak[-1]) / 1024, proc.stdout


def cli(*args: str) -> str:
    run = "runpy.run_module('clca.cli.main', run_name='__main__')"
    return f"import sys, runpy; sys.argv = ['clca', *{list(args)!r}]; {run}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=97_000)
    ap.add_argument("--cols", type=int, default=600)
    ap.add_argument("--sav", action="store_true", help="also aggregate the same data written as SPSS .sav")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-wvs-agg-") as tmp:
        f = Path(tmp) / "wvs7_synthetic.csv"
        t = time.perf_counter()
        make_file(f, args.rows, args.cols)
        print(f"wrote {args.rows} x {args.cols} CSV, {f.stat().st_size / 2**20:.0f} MiB, in "
              f"{time.perf_counter() - t:.0f} s")  # fmt: skip
        base_s, base_mb, _ = measure("import clca.wvs, clca.cli.main")
        print(f"python + clca imports: {base_s:.1f} s, peak {base_mb:.0f} MiB")
        ref = str(Path(tmp) / "ref.json")
        a_s, a_mb, out = measure(cli("wvs", "aggregate", str(f), "--out", ref, "--quiet"))
        countries = next((line for line in out.splitlines() if " countries;" in line), "?")
        print(f"clca wvs aggregate (CSV): {a_s:.1f} s, peak {a_mb:.0f} MiB ({countries})")
        p_s, p_mb, _ = measure(f"import pandas as pd; df = pd.read_csv({str(f)!r}); print(df.shape)")
        print(f"pandas.read_csv whole file: {p_s:.1f} s, peak {p_mb:.0f} MiB")
        if args.sav:
            import pandas as pd
            import pyreadstat

            sav = f.with_suffix(".sav")
            pyreadstat.write_sav(pd.read_csv(f), sav)
            s_s, s_mb, _ = measure(cli("wvs", "aggregate", str(sav), "--out", ref, "--quiet"))
            print(f"clca wvs aggregate (.sav, {sav.stat().st_size / 2**20:.0f} MiB): {s_s:.1f} s, peak {s_mb:.0f} MiB")
        print(f"ratio={a_mb / p_mb:.3f}")


if __name__ == "__main__":
    main()
