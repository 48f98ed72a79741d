import pytest

from gateway.slurm import adapter
from gateway.slurm.adapter import FIELD_SEP as S


def test_sbatch_output():
    assert adapter.parse_sbatch_output("42\n") == "42"
    assert adapter.parse_sbatch_output("42;cluster\n") == "42"
    assert adapter.parse_sbatch_output("sbatch: error: something\n") is None
    assert adapter.parse_sbatch_output("") is None


def test_states_are_mapped_in_the_job_model():
    from gateway.jobs.model import state_from_slurm

    assert state_from_slurm("CANCELLED by 0") == "CANCELLED"
    assert state_from_slurm("COMPLETING") == "RUNNING"
    assert state_from_slurm("OUT_OF_MEMORY") == "OUT_OF_MEMORY"
    assert state_from_slurm("WEIRD") == "UNKNOWN"
    assert state_from_slurm("") == "UNKNOWN"


def test_unavailable():
    assert adapter.is_unavailable("squeue: error: Unable to contact slurm controller (connect "
                                  "failure)")
    assert adapter.is_unavailable("sbatch: error: Socket timed out on send/recv operation")
    assert not adapter.is_unavailable("sbatch: error: Invalid partition name specified")


def test_squeue():
    out = f"12{S}RUNNING{S}node1{S}2026-11-23T10:00:00{S}None{S}gw:abc:3\n" \
          f"13{S}PENDING{S}{S}N/A{S}Resources{S}(null)\n"
    jobs = adapter.parse_squeue(out)
    assert jobs["12"].slurm_state == "RUNNING" and jobs["12"].node == "node1"
    assert jobs["12"].start is not None and jobs["12"].comment == "gw:abc:3"
    assert jobs["13"].slurm_state == "PENDING" and jobs["13"].reason == "Resources"
    assert jobs["13"].comment == ""


def test_sacct():
    out = "12|COMPLETED|0:0|node1|2026-11-23T10:00:00|2026-11-23T10:01:00|12|gw:abc:1\n" \
          "13|CANCELLED by 0|0:15|node1|2026-11-23T10:00:00|2026-11-23T10:00:30|13|\n" \
          "14|FAILED|3:0|node1|Unknown|Unknown|14|a|comment|with|bars\n" \
          "15|PENDING|0:0|None assigned|Unknown|Unknown|15|\n" \
          "21|COMPLETED|0:0|node1|Unknown|Unknown|20_1|gw:abc:4\n"
    jobs = adapter.parse_sacct(out)
    assert jobs["12"].slurm_state == "COMPLETED" and jobs["12"].exit_code == 0
    assert jobs["12"].end - jobs["12"].start == 60 and jobs["12"].comment == "gw:abc:1"
    assert jobs["13"].slurm_state == "CANCELLED by 0" and jobs["13"].exit_code == 143
    assert jobs["14"].comment == "a|comment|with|bars"
    assert jobs["14"].exit_code == 3 and jobs["14"].start is None
    assert jobs["15"].node == "" and jobs["15"].array_task == ""
    # A task of a job array: its own id, the array's id and the task in JobID.
    assert jobs["21"].array_task == "20_1" and jobs["21"].base_id == "20"
    assert jobs["12"].base_id == "12"


def test_array_task_indexes():
    assert adapter.array_task_indexes("20_3") == [3]
    assert adapter.array_task_indexes("20_[4-6,9%2]") == [4, 5, 6, 9]
    assert adapter.array_task_indexes("20_[0-1]") == [0, 1]
    assert adapter.array_task_indexes("20") == []


def test_array_tasks_from_accounting():
    """What sacct printed for an array of three whose task 1 ran when it was cancelled:
    the never-started remainder stands for its tasks; a task's own record wins."""
    out = ("1138|COMPLETED|0:0|vm|Unknown|Unknown|1137_0|c\n"
           "1139|CANCELLED by 0|0:0|vm|Unknown|Unknown|1137_1|c\n"
           "1137|CANCELLED by 0|0:0|None assigned|None|Unknown|1137_[1-2%1]|c\n")
    tasks = adapter.array_tasks(adapter.parse_sacct(out).values())
    assert sorted(tasks) == ["1137_0", "1137_1", "1137_2"]
    assert tasks["1137_1"].slurm_job_id == "1139" and tasks["1137_2"].slurm_job_id == "1137"
    assert tasks["1137_2"].slurm_state == "CANCELLED by 0"


def test_sinfo_and_gres():
    assert adapter.parse_gres_gpus("(null)") == 0
    assert adapter.parse_gres_gpus("gpu:4") == 4
    assert adapter.parse_gres_gpus("gpu:a100:4(S:0-1),gpu:v100:2") == 6
    out = f"debug*{S}2{S}20000{S}(null){S}infinite{S}up{S}(null)\n" \
          f"gpu{S}64{S}500000{S}gpu:a100:8{S}2-00:00:00{S}up{S}a100,ib\n" \
          f"gpu{S}32{S}250000{S}gpu:v100:4{S}2-00:00:00{S}up{S}v100\n"
    parts = adapter.parse_sinfo(out)
    assert parts["debug"].default and not parts["gpu"].default
    assert parts["debug"].max_time_seconds is None
    assert parts["gpu"].max_time_seconds == 2 * 86400
    assert (parts["gpu"].cpus, parts["gpu"].mem_mib, parts["gpu"].gpus) == (64, 500000, 8)
    assert parts["gpu"].gpu_types == {"a100", "v100"} and parts["debug"].gpu_types == set()
    assert parts["gpu"].features == {"a100", "ib", "v100"} and parts["debug"].features == set()


def test_nodes_free_and_test_only():
    out = "vm|debug*|1/1/0/2|21695|1024|(null)|(null)|mix|\n" \
          "g1|gpu|8/56/0/64|500000|100000|gpu:a100:8(S:0-1)|gpu:a100:3(IDX:0-2)|mix|\n"
    nodes = adapter.parse_nodes_free(out)
    assert [(n.node, n.partition, n.idle_cpus, n.free_mem_mib, n.idle_gpus) for n in nodes] \
        == [("vm", "debug", 1, 20671, 0), ("g1", "gpu", 56, 400000, 5)]
    said = adapter.parse_test_only("sbatch: Job 2351 to start at 2026-11-25T02:42:16 using "
                                   "1 processors on nodes vm in partition debug\n")
    assert said == {"start": "2026-11-25T02:42:16", "processors": "1", "nodes": "vm",
                    "partition": "debug"}
    assert adapter.parse_test_only("allocation failure: Invalid feature") is None


@pytest.mark.parametrize("text,seconds", [("infinite", None), ("UNLIMITED", None),
                                          ("30:00", 1800), ("1:00:00", 3600),
                                          ("2-00:00:00", 172800), ("1-12", 129600),
                                          ("45", 2700), ("n/a", None)])
def test_durations(text, seconds):
    assert adapter.parse_duration(text) == seconds
