"""The one end decision: from what is known of a unit (its spool record, Slurm's word,
the time) to its final state, or "ask again later"; and finishing a one-unit job.

A unit is a whole job of one task or one task of an array (gateway/jobs/shapes/); ingest
(spool files) and reconciliation (Slurm) decide every unit's end here, with one set of
grace periods. The function is pure: it reads no file and asks no one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from gateway.jobs.states import ACTIVE

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.jobs.values import Unit
    from gateway.slurm.adapter import SlurmJobState
    from spool.format import SpoolRecord

# A unit Slurm calls COMPLETED gets this long for its spool file to show up (NFS delays).
SPOOL_GRACE_SECONDS = 60
# How long a unit whose end was not clean waits for Slurm's accounting to hold any record
# of it before the spool file's own word is taken (a cluster without accounting).
ACCOUNTING_GRACE_SECONDS = 120

SIGNAL_NAMES = {129: "SIGHUP", 130: "SIGINT", 134: "SIGABRT", 137: "SIGKILL", 139: "SIGSEGV",
                143: "SIGTERM"}
# Slurm's final words that are more precise than any exit status.
_SLURM_ENDS = ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")


class EndDecision(NamedTuple):
    """A final ``state`` with its ``reason``; ``state`` None: not decided, ask again later
    (``reason`` then says why). ``needs_slurm``: the record alone cannot settle it."""

    state: str | None
    reason: str
    needs_slurm: bool = False

    @property
    def final(self) -> bool:
        """Whether the unit's end is decided."""
        return self.state is not None


def failure_reason(exit_code: int) -> str:
    """Why a unit with this exit status failed, in words."""
    if exit_code in SIGNAL_NAMES:
        return f"killed by {SIGNAL_NAMES[exit_code]} (exit code {exit_code})"
    return f"the command exited with code {exit_code}"


def decide_end(record: SpoolRecord | None, said: SlurmJobState | None, now: float, *,
               slurm_asked: bool = True, memory_killed: bool = False) -> EndDecision:
    """How a unit ended.

    ``record``: its spool file (None: it wrote none). ``said``: Slurm's record of it (None:
    Slurm has none). ``slurm_asked``: whether Slurm was asked at all (ingest decides a clean
    end before asking). ``memory_killed``: its log ends with Slurm's memory-kill line.
    """
    if record is not None:
        if record.clean and record.exit_code == 0:
            return EndDecision("COMPLETED", "")
        if record.clean and record.exit_code < 128:
            return EndDecision("FAILED", failure_reason(record.exit_code))
        if not slurm_asked:  # a signal or an interrupted end: Slurm knows better
            return EndDecision(None, "Slurm's accounting is asked how it ended",
                               needs_slurm=True)
        return _from_record_and_slurm(record, said, now)
    return _from_slurm_alone(said, now, memory_killed)


def _slurm_state(said: SlurmJobState | None) -> str:
    from gateway.jobs.model import state_from_slurm

    return state_from_slurm(said.slurm_state) if said else "UNKNOWN"


def _from_record_and_slurm(record: SpoolRecord, said: SlurmJobState | None,
                           now: float) -> EndDecision:
    state = _slurm_state(said)
    old = record.ended is None or now - record.ended > ACCOUNTING_GRACE_SECONDS
    if state in ACTIVE and (said is not None or not old):
        # Slurm still runs it (a killed slurmstepd), or has not written its end yet.
        return EndDecision(None, "Slurm has not recorded the end yet")
    if state in _SLURM_ENDS:
        assert said is not None
        return EndDecision(state, f"Slurm: {said.slurm_state}")
    if record.clean:
        return EndDecision("FAILED", failure_reason(record.exit_code))
    words = f"; Slurm: {said.slurm_state}" if said else "; Slurm has no record of its end"
    return EndDecision("FAILED", f"the job's end was interrupted before its command returned "
                                 f"(exit code {record.exit_code}){words}")


def _from_slurm_alone(said: SlurmJobState | None, now: float,
                      memory_killed: bool) -> EndDecision:
    if said is None:
        return EndDecision(None, "Slurm lists it neither in its queue nor in accounting")
    state = _slurm_state(said)
    if state in ACTIVE:
        return EndDecision(None, f"Slurm still has it {state}")
    if state == "COMPLETED":
        # Success is only what the unit's own spool file says; give it time to arrive.
        if said.end is not None and now - said.end < SPOOL_GRACE_SECONDS:
            return EndDecision(None, "waiting for its spool file")
        return EndDecision("FAILED", "Slurm says it completed, but the job wrote no end "
                                     "state (spool file)")
    if state == "FAILED" and said.exit_code == 128 + 9 and memory_killed:
        return EndDecision("OUT_OF_MEMORY", "Slurm killed it: over its memory limit (--mem)")
    return EndDecision(state, f"Slurm: {said.slurm_state}")


def finish_job(gw: Gateway, job: Job, state: str, reason: str, record: SpoolRecord | None,
               unit: Unit, **facts: Any) -> bool:
    """Finish a one-unit job (the shapes call it): run the kind's end handler for its only
    ``unit``, then move the job to ``state``; returns whether this call finished it (False
    when someone else had). The handler runs first and must be repeatable (harvest is), so
    a crash between the two, or a second ingester, ends with one result; the state change
    is a compare-and-set from the unfinished states, so the first to finish a job wins."""
    from gateway.jobs.kinds import kind_of
    from gateway.jobs.values import JobEnd

    if not job.active:
        return False
    note = kind_of(job).on_end(gw, job, unit, JobEnd(state, record))
    full_reason = "; ".join(part for part in (reason, note) if part)
    return gw.jobs.transition(job.id, ACTIVE, state, reason=full_reason[:1000], **facts)
