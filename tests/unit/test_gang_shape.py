"""The gang shape's pieces that need no cluster: resources, limits, the failing rank."""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import pytest

from gateway.common.errors import InvalidInput
from gateway.common.specs import Resources, check_against_partitions, parse_resources
from gateway.jobs.layout import JobLayout
from gateway.jobs.shapes import shape_for
from gateway.jobs.shapes.gang import GangShape
from gateway.slurm.adapter import PartitionLimits

DEFAULTS = {"cpus": 1, "gpus": 0, "mem": "1G", "shm": "64M", "time": "1:00:00",
            "partition": ""}


def resources(**given):
    return parse_resources(**{"cpus": None, "gpus": None, "mem": None, "shm": None,
                              "time": None, "partition": None, "defaults": DEFAULTS,
                              **given})


def test_tasks_per_node_default_to_the_gpus_on_several_nodes_only():
    assert resources(nodes=2, gpus="4").tasks_per_node == 4
    assert resources(nodes=2).tasks_per_node == 1
    assert resources(gpus="2").tasks == 1          # one node: the command uses its GPUs
    assert resources(gpus="2", tasks_per_node=2).tasks == 2
    assert resources(nodes=3, tasks_per_node=2).tasks == 6


def test_torchrun_runs_one_task_per_node():
    assert resources(nodes=2, gpus="8", one_task_per_node=True).tasks_per_node == 1
    with pytest.raises(InvalidInput, match="torchrun starts the node's ranks itself"):
        resources(nodes=2, tasks_per_node=2, one_task_per_node=True)


@pytest.mark.parametrize("given, message", [
    ({"nodes": 0}, "invalid --nodes 0"),
    ({"tasks_per_node": 0}, "invalid --tasks-per-node 0")])
def test_bad_counts_are_refused(given, message):
    with pytest.raises(InvalidInput, match=message):
        resources(**given)


def test_shape_follows_the_ranks():
    assert shape_for(resources(), None) == "single"
    assert shape_for(resources(), None, "array") == "array"
    assert shape_for(resources(nodes=2), None) == "gang"
    assert shape_for(resources(), "torchrun") == "gang"


def test_partition_limits_name_nodes_and_cpus_per_node():
    parts = {"debug": PartitionLimits("debug", 2, 20000, 0, True, True, nodes=2)}
    base = {"cpus": 1, "gpus": 0, "mem_mib": 1024, "shm_mib": 64, "time_seconds": 60,
            "partition": ""}
    assert check_against_partitions(Resources(**base, nodes=2, tasks_per_node=2),
                                    parts) == "debug"
    with pytest.raises(InvalidInput, match=r"--nodes 3 .* \(2 nodes\)"):
        check_against_partitions(Resources(**base, nodes=3), parts)
    with pytest.raises(InvalidInput, match="--tasks-per-node 3 asks for 3 CPUs"):
        check_against_partitions(Resources(**base, nodes=2, tasks_per_node=3), parts)


def gang_job(tmp_path, ranks=3):
    layout = JobLayout(tmp_path)
    for rank in range(ranks):
        layout.unit_dir(rank).mkdir(parents=True)
        (layout.unit_dir(rank) / "node").write_text(f"node{rank}\n")
    return SimpleNamespace(layout=layout, spec=SimpleNamespace(
        resources={"nodes": ranks, "tasks_per_node": 1}, extra={}))


def test_the_rank_that_failed_first_is_named(tmp_path):
    job = gang_job(tmp_path)
    shape = GangShape()
    assert shape.failed_ranks(job) == ""
    (job.layout.unit_dir(2) / "exit").write_text("1 1700000005.5\n")
    (job.layout.unit_dir(1) / "exit").write_text("3 1700000001.25\n")
    assert shape.failed_ranks(job) == ("rank 1 on node1 exited with status 3, the first of "
                                       "2 ranks that failed")
    assert shape.nodes(job) == ["node0", "node1", "node2"]


def test_a_torn_exit_file_still_names_the_rank(tmp_path):
    job = gang_job(tmp_path, ranks=2)
    (job.layout.unit_dir(1) / "exit").write_text("9")
    assert GangShape().failed_ranks(job) == "rank 1 on node1 exited with status 9"


def test_rank_out_of_range_is_refused(tmp_path):
    job = gang_job(tmp_path, ranks=2)
    job.id, job.slurm_job_id, job.state, job.reason = 5, "9", "RUNNING", ""
    with pytest.raises(InvalidInput, match="ranks 0 to 1; no rank 2"):
        GangShape().unit(None, job, 2)
    assert GangShape().unit(None, job, 1).label == "rank 1 on node1"


def test_a_flavor_of_several_nodes_fits_where_each_node_has_its_share():
    from gateway.home.flavors import available_now
    from gateway.slurm.adapter import NodeFree

    class Config(dict):
        sources: ClassVar[dict[str, str]] = {}

    config = Config({"cpus": 1, "gpus": 0, "mem": "1G", "shm": "64M", "time": "1:00:00",
              "partition": "", "exclusive": False,
              "flavors": {"pair": {"nodes": 2, "tasks_per_node": 2, "cpus": 2, "mem": "1G"}}})
    nodes = [NodeFree(f"n{i}", "debug", cpus, 100000, 0, "idle")
             for i, cpus in enumerate((8, 4, 3))]
    parts = {"debug": PartitionLimits("debug", 8, 100000, 0, True, True, nodes=3)}
    gw = SimpleNamespace(config=config, slurm=SimpleNamespace(
        nodes_free=lambda: nodes, partitions=lambda: parts))
    shown = {f["name"]: f for f in available_now(gw)}
    # 4 CPUs a node for each job's share: n0 holds 2 shares, n1 one, n2 none -> one job
    assert shown["pair"]["fits_now"] == 1
    assert shown["pair"]["nodes"] == 2 and shown["pair"]["tasks_per_node"] == 2
