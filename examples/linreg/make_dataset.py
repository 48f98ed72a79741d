"""Generate the demo dataset: y = 3*x1 - 2*x2 + 0.5 + noise, as train.csv in OUT_DIR."""

import random
import sys
from pathlib import Path


def main(out_dir: str, rows: int = 2000) -> None:
    rng = random.Random(42)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["x1,x2,y"]
    for _ in range(rows):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        lines.append(f"{x1:.6f},{x2:.6f},{3 * x1 - 2 * x2 + 0.5 + rng.gauss(0, 0.05):.6f}")
    (out / "train.csv").write_text("\n".join(lines) + "\n")
    (out / "README.txt").write_text("Synthetic regression data: y = 3*x1 - 2*x2 + 0.5.\n")


if __name__ == "__main__":
    main(sys.argv[1])
