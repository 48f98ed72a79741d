"""Every SQL statement that touches the ``jobs`` and ``job_tasks`` tables, and nothing else
does.

State changes are compare-and-set: :meth:`JobRepository.transition` moves a job from one of
the states the caller expects to a new one in one statement inside one transaction
(``UPDATE ... WHERE id = ? AND state IN (...)``). A finished state is never among the
expected ones, so a late poll, a stale read or a second ingester cannot overwrite it: the
update matches no row and the caller learns it lost the race.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import NotFound
from gateway.home import database as db
from gateway.jobs.states import ACTIVE, TERMINAL

# In a render's spec: the shape its runs are recorded as (gateway/jobs/rendered_scripts.py).
RENDER_SHAPE = "render_shape"

if TYPE_CHECKING:
    from gateway.jobs.model import Job, JobSpec, JobTask

# Largest id SQLite stores; larger ids from the command line are simply not found.
MAX_ID = 2**63 - 1

# Facts a transition may record along with the state.
_FACTS = ("reason", "exit_code", "node", "started", "ended")

_SELECT = """
SELECT j.*, m.number AS model_number, mc.name AS model_coll
FROM jobs j
LEFT JOIN versions m ON m.id = j.model_version_id
LEFT JOIN collections mc ON mc.id = m.collection_id
"""

# What `gw job list` shows: no joins, no JSON (it is typed all day).
_SUMMARY_COLUMNS = ("id", "kind", "shape", "name", "state", "slurm_job_id", "submitted", "ended",
                    "node", "exit_code", "model_name", "model_version_id")


def _job(row: sqlite3.Row) -> Job:
    from gateway.jobs.model import Job, JobSpec  # built only when a job is read

    model_ref = f"{row['model_coll']}@v{row['model_number']}" if row["model_number"] else None
    return Job(id=row["id"], kind=row["kind"], shape=row["shape"], origin=row["origin"],
               name=row["name"],
               state=row["state"], reason=row["reason"], slurm_job_id=row["slurm_job_id"],
               node=row["node"], exit_code=row["exit_code"], submitted=row["submitted"],
               started=row["started"], ended=row["ended"], updated=row["updated"],
               job_dir=Path(row["job_dir"]), model_name=row["model_name"],
               spec=JobSpec.from_json(db.loads(row["spec_json"])),
               algo_version_id=row["algo_version_id"], data_version_id=row["data_version_id"],
               image_id=row["image_id"], model_version_id=row["model_version_id"],
               model_ref=model_ref)


def _checked_transition(expected: Iterable[str], facts: dict[str, Any]) -> tuple[str, ...]:
    """The expected states of a compare-and-set, refused if one is final (finished states
    never change) or if a fact is not one a job or task records."""
    states = tuple(expected)
    if not states or set(states) & set(TERMINAL):
        raise ValueError(f"a transition must start from unfinished states, not {states}")
    unknown = set(facts) - set(_FACTS)
    if unknown:
        raise ValueError(f"not job facts: {sorted(unknown)}")
    return states


def _placeholders(values: Iterable[Any]) -> str:
    return ",".join("?" * len(list(values)))


class JobRepository:
    """Jobs in one gateway database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction, or the caller's if one is open."""
        if self.conn.in_transaction:
            yield
        else:
            with db.transaction(self.conn):
                yield

    # ---- creating ----------------------------------------------------------------------
    def create(self, *, kind: str, origin: str, name: str, spec: JobSpec, model_name: str,
               jobs_root: Path, algo_version_id: int | None, data_version_id: int | None,
               image_id: int | None, shape: str = "single") -> Job:
        """Record a new job in state SUBMITTING; its directory is ``jobs_root/<id>``.

        Ids are never reused (AUTOINCREMENT), even when a job record is later removed.
        """
        now = time.time()
        with self._writing():
            cursor = self.conn.execute(
                """INSERT INTO jobs (kind, shape, origin, name, state, submitted, updated,
                   algo_version_id, data_version_id, image_id, model_name, spec_json, job_dir)
                   VALUES (?, ?, ?, ?, 'SUBMITTING', ?, ?, ?, ?, ?, ?, ?, '')""",
                (kind, shape, origin, name, now, now, algo_version_id, data_version_id, image_id,
                 model_name, db.dumps(spec.as_json())))
            job_id = int(cursor.lastrowid or 0)
            self.conn.execute("UPDATE jobs SET job_dir = ? WHERE id = ?",
                              (str(jobs_root / str(job_id)), job_id))
        return self.get(job_id)

    def discard_unsubmitted(self, job_id: int) -> bool:
        """Remove a record that never reached Slurm because its own input was invalid
        (found while its script was being made). Its id is not handed out again."""
        with self._writing():
            cursor = self.conn.execute(
                "DELETE FROM jobs WHERE id = ? AND state = 'SUBMITTING' AND slurm_job_id IS NULL",
                (job_id,))
        return cursor.rowcount == 1

    # ---- reading -----------------------------------------------------------------------
    def find(self, job_id: int) -> Job | None:
        """The job, or None."""
        if not 0 < job_id <= MAX_ID:
            return None
        row = self.conn.execute(_SELECT + " WHERE j.id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def get(self, job_id: int) -> Job:
        """The job; :class:`NotFound` when there is none."""
        job = self.find(job_id)
        if job is None:
            raise NotFound(f"no job {job_id} (see `gw job list`)")
        return job

    def summaries(self, states: Iterable[str] = (), limit: int | None = None,
                  kinds: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Light rows for listings, newest first (only ``kinds``, when given)."""
        return [dict(zip(_SUMMARY_COLUMNS, row, strict=False))
                for row in self.summary_rows(states, limit, _SUMMARY_COLUMNS, kinds)]

    def summary_rows(self, states: Iterable[str] = (), limit: int | None = None,
                     columns: tuple[str, ...] = _SUMMARY_COLUMNS, kinds: Iterable[str] = ()
                     ) -> list[tuple[Any, ...]]:
        """``columns`` of each job (among the summary's), newest first, as plain tuples:
        a table of 10,000 jobs builds no row objects."""
        if not set(columns) <= set(_SUMMARY_COLUMNS):
            raise ValueError(f"not summary columns: {sorted(set(columns) - set(_SUMMARY_COLUMNS))}")
        states, kinds = tuple(states), tuple(kinds)
        query = f"SELECT {', '.join(columns)} FROM jobs"
        args: list[Any] = []
        where = []
        if states:
            where.append(f"state IN ({_placeholders(states)})")
            args.extend(states)
        if kinds:
            where.append(f"kind IN ({_placeholders(kinds)})")
            args.extend(kinds)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return cursor.execute(query, args).fetchall()

    def has_active(self) -> bool:
        """Whether any job is unfinished (one indexed lookup)."""
        return self.conn.execute(f"SELECT 1 FROM jobs WHERE state IN ({_placeholders(ACTIVE)}) "
                                 "LIMIT 1", ACTIVE).fetchone() is not None

    def active(self) -> list[Job]:
        """Every job not finished yet, oldest first."""
        rows = self.conn.execute(_SELECT + f" WHERE j.state IN ({_placeholders(ACTIVE)}) "
                                 "ORDER BY j.id", ACTIVE).fetchall()
        return [_job(r) for r in rows]

    def active_using(self, column: str, row_id: int) -> list[int]:
        """Ids of unfinished jobs that use this image or version (``column`` is one of
        ``image_id``, ``algo_version_id``, ``data_version_id``)."""
        if column not in ("image_id", "algo_version_id", "data_version_id"):
            raise ValueError(column)
        rows = self.conn.execute(
            f"SELECT id FROM jobs WHERE {column} = ? AND state IN ({_placeholders(ACTIVE)})",
            (row_id, *ACTIVE)).fetchall()
        return [r["id"] for r in rows]

    # ---- changing ----------------------------------------------------------------------
    def transition(self, job_id: int, expected: Iterable[str], new_state: str,
                   **facts: Any) -> bool:
        """Move the job to ``new_state`` if its state is one of ``expected``; record
        ``facts`` (reason, exit_code, node, started, ended) with it. Returns whether it
        moved. ``expected`` may not hold a finished state: those are final."""
        expected = _checked_transition(expected, facts)
        sets = ["state = ?", "updated = ?"] + [f"{k} = ?" for k in facts]
        args = [new_state, time.time(), *facts.values(), job_id, *expected]
        with self._writing():
            cursor = self.conn.execute(
                f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? "
                f"AND state IN ({_placeholders(expected)})", args)
        return cursor.rowcount == 1

    def note(self, job_id: int, **facts: Any) -> bool:
        """Record facts (node, start time, reason, ...) of an unfinished job without
        changing its state; a finished job is left alone."""
        unknown = set(facts) - set(_FACTS)
        if unknown or not facts:
            raise ValueError(f"not job facts: {sorted(unknown)}")
        with self._writing():
            cursor = self.conn.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in facts)} WHERE id = ? "
                f"AND state IN ({_placeholders(ACTIVE)})", (*facts.values(), job_id, *ACTIVE))
        return cursor.rowcount == 1

    def attach_slurm_id(self, job_id: int, slurm_job_id: str, state: str = "PENDING",
                        origin: str | None = None) -> bool:
        """Record the Slurm id of a job still SUBMITTING (from sbatch's answer, or adopted
        by its identity). Only the first caller wins; the job is never counted twice."""
        with self._writing():
            cursor = self.conn.execute(
                "UPDATE jobs SET slurm_job_id = ?, state = ?, updated = ?, "
                "origin = COALESCE(?, origin) "
                "WHERE id = ? AND state = 'SUBMITTING' AND slurm_job_id IS NULL",
                (slurm_job_id, state, time.time(), origin, job_id))
        return cursor.rowcount == 1

    def link_model(self, job_id: int, version_id: int) -> bool:
        """Point the job at the model version it made (once)."""
        with self._writing():
            cursor = self.conn.execute(
                "UPDATE jobs SET model_version_id = ? WHERE id = ? AND model_version_id IS NULL",
                (version_id, job_id))
        return cursor.rowcount == 1

    def unit_model_version(self, job_id: int, unit: int | None) -> int | None:
        """The model version the job (``unit`` None) or its task ``unit`` made, if any."""
        if unit is None:
            row = self.conn.execute("SELECT model_version_id FROM jobs WHERE id = ?",
                                    (job_id,)).fetchone()
        else:
            row = self.conn.execute("SELECT model_version_id FROM job_tasks WHERE job_id = ? "
                                    "AND task = ?", (job_id, unit)).fetchone()
        return None if row is None else row[0]

    def link_unit_model(self, job_id: int, unit: int | None, version_id: int) -> bool:
        """Point the job (``unit`` None) or its task ``unit`` at the model version it made
        (once)."""
        if unit is None:
            return self.link_model(job_id, version_id)
        return self.link_task_model(job_id, unit, version_id)

    def forget_version(self, version_id: int) -> None:
        """A version is being removed: jobs keep their record, without the link."""
        with self._writing():
            self.conn.execute("UPDATE job_tasks SET model_version_id = NULL "
                              "WHERE model_version_id = ?", (version_id,))
            for column in ("algo_version_id", "data_version_id", "model_version_id"):
                self.conn.execute(f"UPDATE jobs SET {column} = NULL WHERE {column} = ?",
                                  (version_id,))

    def forget_image(self, image_id: int) -> None:
        """An image is being removed: jobs keep their record (name and digest in the spec)."""
        with self._writing():
            self.conn.execute("UPDATE jobs SET image_id = NULL WHERE image_id = ?", (image_id,))

    # ---- the tasks of sweeps ---------------------------------------------------------------
    def ensure_tasks(self, job_id: int, params: list[dict[str, str]]) -> None:
        """Record a sweep's tasks (PENDING) where they are not yet: safe to repeat, e.g.
        for a sweep adopted after `gw` died between sbatch and this call."""
        with self._writing():
            self.conn.executemany(
                "INSERT OR IGNORE INTO job_tasks (job_id, task, params_json, state) "
                "VALUES (?, ?, ?, 'PENDING')",
                [(job_id, index, db.dumps(values)) for index, values in enumerate(params)])

    def tasks(self, job_id: int) -> list[JobTask]:
        """The job's tasks, by index (none for a job that is not a sweep)."""
        from gateway.jobs.model import JobTask

        rows = self.conn.execute(
            """SELECT t.*, m.number AS model_number, mc.name AS model_coll FROM job_tasks t
               LEFT JOIN versions m ON m.id = t.model_version_id
               LEFT JOIN collections mc ON mc.id = m.collection_id
               WHERE t.job_id = ? ORDER BY t.task""", (job_id,)).fetchall()
        return [JobTask(job_id=r["job_id"], task=r["task"], params=db.loads(r["params_json"]),
                        state=r["state"], reason=r["reason"], exit_code=r["exit_code"],
                        node=r["node"], started=r["started"], ended=r["ended"],
                        model_version_id=r["model_version_id"],
                        model_ref=(f"{r['model_coll']}@v{r['model_number']}"
                                   if r["model_number"] else None)) for r in rows]

    def task_transition(self, job_id: int, task: int, expected: Iterable[str],
                        new_state: str, **facts: Any) -> bool:
        """Compare-and-set for one task, as :meth:`transition` for a job."""
        expected = _checked_transition(expected, facts)
        sets = ["state = ?"] + [f"{k} = ?" for k in facts]
        with self._writing():
            cursor = self.conn.execute(
                f"UPDATE job_tasks SET {', '.join(sets)} WHERE job_id = ? AND task = ? "
                f"AND state IN ({_placeholders(expected)})",
                [new_state, *facts.values(), job_id, task, *expected])
        return cursor.rowcount == 1

    def link_task_model(self, job_id: int, task: int, version_id: int) -> bool:
        """Point a task at the model version it made (once)."""
        with self._writing():
            cursor = self.conn.execute(
                "UPDATE job_tasks SET model_version_id = ? WHERE job_id = ? AND task = ? "
                "AND model_version_id IS NULL", (version_id, job_id, task))
        return cursor.rowcount == 1

    # ---- rendered scripts (gateway/jobs/rendered_scripts.py) ----------------------------
    def create_render(self, *, kind: str, name: str, spec: JobSpec, model_name: str,
                      algo_version_id: int | None, data_version_id: int | None,
                      image_id: int | None) -> int:
        """Record a rendered script; its runs become jobs by :meth:`adopt_run`."""
        with self._writing():
            cursor = self.conn.execute(
                """INSERT INTO renders (kind, name, spec_json, model_name, algo_version_id,
                   data_version_id, image_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (kind, name, db.dumps(spec.as_json()), model_name, algo_version_id,
                 data_version_id, image_id, time.time()))
        return int(cursor.lastrowid or 0)

    def discard_render(self, render_id: int) -> None:
        """Forget a render whose script could not be written."""
        with self._writing():
            self.conn.execute("DELETE FROM renders WHERE id = ?", (render_id,))

    def has_renders(self) -> bool:
        """Whether any script was rendered (then the queue is read for their runs)."""
        return self.conn.execute("SELECT 1 FROM renders LIMIT 1").fetchone() is not None

    def adopt_run(self, render_id: int, slurm_job_id: str, state: str,
                  jobs_root: Path) -> Job | None:
        """The job of one sbatch run of a rendered script: recorded the first time it is
        seen (in one transaction, so two ingesters record it once); None when there is no
        such render."""
        with self._writing():
            row = self.conn.execute(
                "SELECT id FROM jobs WHERE slurm_job_id = ? AND origin = 'sbatch'",
                (slurm_job_id,)).fetchone()
            if row is not None:
                return self.get(int(row["id"]))
            render = self.conn.execute("SELECT * FROM renders WHERE id = ?",
                                       (render_id,)).fetchone()
            if render is None:
                return None
            now = time.time()
            shape = db.loads(render["spec_json"]).get("extra", {}).get(RENDER_SHAPE,
                                                                        "rendered")
            cursor = self.conn.execute(
                """INSERT INTO jobs (kind, shape, origin, name, state, slurm_job_id,
                   submitted, updated, algo_version_id, data_version_id, image_id,
                   model_name, spec_json, job_dir) VALUES (?, ?, 'sbatch', ?, ?, ?,
                   ?, ?, ?, ?, ?, ?, ?, ?)""",
                (render["kind"], shape, render["name"], state, slurm_job_id, now, now,
                 render["algo_version_id"], render["data_version_id"], render["image_id"],
                 render["model_name"], render["spec_json"],
                 str(jobs_root / f"sbatch-{slurm_job_id}")))
            job_id = int(cursor.lastrowid or 0)
        return self.get(job_id)
