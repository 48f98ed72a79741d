"""Slurm's final records of units, in as few calls as there are arrays plus one.

A unit's Slurm id is a job's (``123``) or an array task's (``123_4``): plain ids are asked
in one ``sacct``, each array's tasks in one ``sacct`` for the array.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.slurm.adapter import SlurmJobState


def final_records(gw: Gateway, slurm_ids: Iterable[str]) -> dict[str, SlurmJobState]:
    """Accounting's records of these units, keyed by the ids asked (SlurmError passes)."""
    ids = sorted(set(slurm_ids))
    plain = [i for i in ids if "_" not in i]
    arrays = sorted({i.split("_")[0] for i in ids if "_" in i})
    found = dict(gw.slurm.query_finished(plain)) if plain else {}
    for array in arrays:
        found.update(gw.slurm.query_array(array))
    return {i: found[i] for i in ids if i in found}


def base_slurm_id(slurm_id: str) -> str:
    """The id a job was submitted as (``1234`` for array task ``1234_5``)."""
    return slurm_id.split("_")[0]
