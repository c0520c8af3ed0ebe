"""What the dashboard's pictures cost a search: the same seeded default search with figures on and off.

With figures on, every finished trial gets its LR/loss picture (matplotlib SVG, uploaded as an Optuna
artifact, plus a trial note) and the study's figures and note are refreshed every 5 s in a background
thread. Each variant runs `lrsearch optimize` in this process on its own fresh SQLite file, one at a
time (`--stack 1`) and stacked (auto), alternating on and off to even out drift.

    python benchmarks/figures.py [--trials 50] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from typer.testing import CliRunner

from lrsearch.cli import app


def run(folder: Path, name: str, stack: str, figures: bool, trials: int) -> float:
    config = folder / f"{name}.yaml"
    study = {"storage": f"sqlite:///{folder}/{name}.db", "figures": figures, "seed": 0, "trials": trials}
    config.write_text(yaml.safe_dump({"study": study}))
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["optimize", "--config", str(config), "--stack", stack])
    elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    run(Path(tempfile.mkdtemp()), "warm-up", "1", True, 2)  # imports and first plots out of the timing

    print(f"{'variant':<28}{'search':>9}{'per trial':>11}{'overhead':>10}{'ratio':>8}")
    for stack in ("1", "auto"):
        times: dict[bool, list[float]] = {False: [], True: []}
        with tempfile.TemporaryDirectory() as folder:
            for repeat in range(args.repeats):
                for figures in (False, True):
                    name = f"s{stack}-f{int(figures)}-{repeat}"
                    times[figures].append(run(Path(folder), name, stack, figures, args.trials))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        label = "one at a time" if stack == "1" else "stacked (auto)"
        for figures, seconds in ((False, off), (True, on)):
            overhead = "" if not figures else f"{(on - off) / args.trials * 1000:7.0f} ms"
            print(
                f"{label + (', figures on' if figures else ', figures off'):<28}{seconds:8.2f}s"
                f"{seconds / args.trials * 1000:8.0f} ms{overhead:>10}{seconds / off:7.2f}x"
            )


if __name__ == "__main__":
    main()
