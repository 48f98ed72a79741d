"""The spool file: how a job on a compute node tells the login node that it ended.

Defined once, here. :data:`FIELDS` lists every field with its JSON type and the shell
expression that yields it in the job; :func:`shell_writer` renders the job script's writer
from it, and :func:`parse_record` reads files against it. A job writes
``<spool>/<job id>.json`` atomically (a temp name, fsync, rename) from its EXIT trap.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 3


@dataclass(frozen=True)
class Field:
    """One field: its name, JSON type (``int``, ``str``, ``bool``) and shell value."""

    name: str
    type: str
    shell: str


# The shell expressions run inside gw_write_spool (base sbatch template): $1 is the exit
# status, $2 "true" when the command returned by itself (the trap did not interrupt it).
# Strings are reduced to characters JSON and the shell carry without escaping.
FIELDS = (
    Field("format", "int", str(FORMAT)),
    Field("home_id", "str", "$GW_HOME_ID"),
    Field("job_id", "int", "$GW_JOB_ID"),
    Field("slurm_job_id", "str", "$GW_SLURM_ID"),     # ARRAY_TASK for a sweep's task
    Field("task", "int", "${GW_TASK:-null}"),          # a sweep's task; null otherwise
    Field("render", "int", "${GW_RENDER:-null}"),      # a rendered script run by sbatch
    Field("exit_code", "int", "$1"),
    Field("clean", "bool", "$2"),
    Field("node", "str", "$(printf '%s' \"${SLURMD_NODENAME:-$(hostname -s 2>/dev/null)}\" "
          "| tr -cd 'A-Za-z0-9._-')"),
    Field("started", "int", "$gw_started"),
    Field("ended", "int", "$(date +%s)"),
)
_PY_TYPES = {"int": int, "str": str, "bool": bool}
# Files written by schema-1 job scripts (jobs submitted before an upgrade) lack these.
_FORMAT_1_DEFAULTS = {"format": 1, "home_id": "", "clean": True}


@dataclass(frozen=True)
class SpoolRecord:
    """A job's end state as its spool file says it."""

    format: int
    home_id: str
    job_id: int
    slurm_job_id: str
    exit_code: int
    clean: bool
    node: str
    started: int | None
    ended: int | None
    task: int | None = None
    render: int | None = None     # job_id is 0: the job is made when the file is ingested

    def as_json(self) -> dict[str, Any]:
        """The file's content."""
        return {f.name: getattr(self, f.name) for f in FIELDS}


class SpoolFormatError(ValueError):
    """A spool file that cannot be read as an end state (yet: it may be half-written)."""


class SpoolFileRefused(SpoolFormatError):
    """A spool file that can never be read as an end state, however long one waits: too
    large for one, not UTF-8 text, or a whole JSON document that is not a record."""


# A record is a few hundred bytes; anything this large is not one, and is not read whole.
MAX_SPOOL_BYTES = 64 * 1024


def shell_writer() -> str:
    """The bash function ``gw_write_spool STATUS CLEAN`` for the job script.

    Needs ``GW_SPOOL_DIR``, ``GW_SPOOL_NAME``, ``GW_HOME_ID``, ``GW_JOB_ID``,
    ``GW_SLURM_ID``, ``GW_TASK`` and ``gw_started`` set (the base template sets them).
    """
    parts, values = [], []
    for field in FIELDS:
        fmt = '\\"%s\\"' if field.type == "str" else "%s"
        parts.append(f'\\"{field.name}\\": {fmt}')
        values.append(f'"{field.shell}"')
    template = "{" + ", ".join(parts) + "}\\n"
    return "\n".join([
        "# Write the end state atomically: a temp name, fsync, then rename (spool/format.py).",
        "gw_write_spool() {",
        '    local tmp="$GW_SPOOL_DIR/.$GW_SPOOL_NAME.json.$$"',
        f'    printf "{template}" \\',
        "        " + " ".join(values) + ' > "$tmp" \\',
        '        && sync "$tmp" && mv -f "$tmp" "$GW_SPOOL_DIR/$GW_SPOOL_NAME.json"',
        "}",
    ])


def parse_record(text: str) -> SpoolRecord:
    """The record in ``text``; :class:`SpoolFormatError` says why it is not one (a
    :class:`SpoolFileRefused` when no more of the file could make it one)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        # Perhaps cut short: a file another host is still writing can look like this.
        raise SpoolFormatError(f"not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SpoolFileRefused("not a JSON object")
    if "format" not in data:
        data = {**_FORMAT_1_DEFAULTS, **data}
    values: dict[str, Any] = {}
    for field in FIELDS:
        value = data.get(field.name)
        optional = field.name in ("started", "ended", "node", "slurm_job_id", "task",
                                  "render")
        if value is None and optional:
            values[field.name] = "" if field.type == "str" else None
            continue
        wanted = _PY_TYPES[field.type]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise SpoolFileRefused(f"field {field.name!r} is {str(value)[:80]!r}, not a "
                                   f"{field.type}")
        values[field.name] = value
    if values["format"] not in (1, 2, FORMAT):
        raise SpoolFileRefused(f"unknown format {values['format']}")
    return SpoolRecord(**values)


def read_record(path: Path) -> SpoolRecord:
    """Read and parse one spool file (OSError and SpoolFormatError pass up). A file too
    large for a record is refused unread; bytes that are not UTF-8 are refused, unless
    they are a character cut short at the end (a file still being written)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_SPOOL_BYTES + 1)
    if len(data) > MAX_SPOOL_BYTES:
        raise SpoolFileRefused(f"more than {MAX_SPOOL_BYTES // 1024} KiB, far larger than "
                               "any spool record")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.end == len(data) and exc.reason == "unexpected end of data":
            raise SpoolFormatError("cut short inside a UTF-8 character") from exc
        raise SpoolFileRefused(f"not UTF-8 text (byte {data[exc.start]:#04x} at offset "
                               f"{exc.start})") from exc
    return parse_record(text)


def write_record(spool_dir: Path, record: SpoolRecord) -> Path:
    """Write ``record`` atomically, as the job script does (tests and tools use this)."""
    if record.render is not None:
        target = spool_dir / f"r{record.render}-{record.slurm_job_id}.json"
    elif record.task is not None:
        target = spool_dir / f"{record.job_id}.{record.task}.json"
    else:
        target = spool_dir / f"{record.job_id}.json"
    tmp = spool_dir / f".{target.name}.{os.getpid()}"
    with tmp.open("w") as out:
        json.dump(record.as_json(), out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return target
