"""README command 1's demo flow: a debootstrap image with numpy trains a real model."""

from __future__ import annotations

import json
import os
import subprocess

from tests.conftest import REPO, run_gw


def test_demo_trains_linreg_model(flow_home, tmp_path):
    env = {**os.environ, **flow_home, "GW_HOME": str(tmp_path / "demo-home")}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "done: mse" in proc.stdout
    model_env = {"GW_HOME": env["GW_HOME"], "SLURM_CONF": env["SLURM_CONF"]}
    shown = json.loads(run_gw("model", "show", "linreg", "--json", env=model_env).stdout)
    assert shown["ref"] == "linreg@v1" and shown["algo"] == "linreg@v1"
    assert shown["dataset"] == "linreg-data@v1"
    metrics = json.loads(run_gw("model", "cat", "linreg@v1", "metrics.json",
                                env=model_env).stdout)
    assert [round(w, 1) for w in metrics["weights"]] == [3.0, -2.0, 0.5]
