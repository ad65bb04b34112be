"""CI's last step: compare the smoke run's metrics with the committed ones.

Prints `dvc metrics diff --md` and `dvc plots diff` (output paths), then fails if a committed metric
disappeared or a metric is NaN/null. The numbers themselves are not asserted: smoke-sized models are noise.

    python .ci/check_metrics.py SMOKE_REPO_DIR
"""

import json
import math
import subprocess
import sys
from pathlib import Path


def dvc(*args: str, cwd: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def main(repo: Path) -> int:
    print(dvc("metrics", "diff", "--md", "--all", cwd=repo))
    print("plots (dvc plots diff):")
    plots = json.loads(dvc("plots", "diff", "--json", cwd=repo) or "{}")
    for name in sorted(plots):
        print(f"  {name}")
    diff = json.loads(dvc("metrics", "diff", "--json", "--all", cwd=repo) or "{}")
    problems = []
    for file, entries in diff.items():
        for key, change in entries.items():
            new = change.get("new")
            if new is None:
                problems.append(f"{file}:{key} disappeared or is null (was {change.get('old')!r})")
            elif isinstance(new, float) and not math.isfinite(new):
                problems.append(f"{file}:{key} is {new}")
    for p in problems:
        print(f"METRIC PROBLEM: {p}")
    print(f"{len(problems)} metric problem(s) in {sum(map(len, diff.values()))} compared metrics")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
