"""Demo training script: linear regression by gradient descent with numpy.

Reads /dataset/train.csv (features..., target), writes the weights and metrics to /model
(harvested as a model version) and a training log to output/ beside the code (kept with
the job as its outputs).
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()

    data = np.loadtxt("/dataset/train.csv", delimiter=",", skiprows=1)
    features, target = data[:, :-1], data[:, -1]
    features = np.hstack([features, np.ones((len(features), 1))])
    weights = np.zeros(features.shape[1])
    Path("output").mkdir(exist_ok=True)
    with open("output/train.log", "w") as log:
        for epoch in range(1, args.epochs + 1):
            error = features @ weights - target
            loss = float(np.mean(error ** 2))
            weights -= args.lr * 2 * features.T @ error / len(target)
            if epoch % 50 == 0 or epoch == 1:
                line = f"epoch {epoch:4d}  mse {loss:.6f}"
                print(line, flush=True)
                log.write(line + "\n")
    np.save("/model/weights.npy", weights)
    Path("/model/metrics.json").write_text(json.dumps(
        {"mse": loss, "epochs": args.epochs, "weights": weights.round(4).tolist(),
         "job": os.environ.get("GW_JOB_ID")}, indent=2))
    print(f"done: mse {loss:.6f}, weights {weights.round(3).tolist()}")


if __name__ == "__main__":
    main()
