"""The two-node cluster the gang tests and benchmark run on: a second instance of the
project's local cluster (scripts/cluster.sh start --nodes 2) with its own directory, name,
ports and node network, so the one-node cluster of the rest of the suite stays as it is."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# GW_GANG_*: another instance's name, first port and network, so that the suite of another
# Slurm release (scripts/slurm-root.sh sets them) runs beside this one on one machine.
_NAME = os.environ.get("GW_GANG_CLUSTER_NAME", "gwgang")
_PORT = int(os.environ.get("GW_GANG_PORT_BASE", "6827"))
GANG_CLUSTER = {
    "GW_CLUSTER_DIR": f"/var/lib/gw-cluster-{_NAME[2:] or 'gang'}", "GW_CLUSTER_NAME": _NAME,
    "GW_SLURMCTLD_PORT": str(_PORT), "GW_SLURMD_PORT": str(_PORT + 1),
    "GW_SLURMDBD_PORT": str(_PORT + 2), "GW_MARIADB_PORT": str(_PORT - 3510),
    "GW_NODE_NET": os.environ.get("GW_GANG_NODE_NET", "10.232.0")}


def cluster_sh(*args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/cluster.sh for the two-node instance."""
    return subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), *args],
                          env={**os.environ, **GANG_CLUSTER}, capture_output=True,
                          text=True, check=True)


def start(nodes: int = 2) -> dict[str, str]:
    """Start it (or keep it running); returns the environment of its Slurm clients."""
    cluster_sh("start", "--nodes", str(nodes))
    return {"SLURM_CONF": f"{GANG_CLUSTER['GW_CLUSTER_DIR']}/etc/slurm.conf"}


def stop() -> None:
    """Stop its daemons and remove its namespaces and links."""
    cluster_sh("stop")
