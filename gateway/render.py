"""The Jinja environment that turns templates/ into sbatch scripts.

``StrictUndefined`` makes a missing value an error, and every user value reaches a script
through the ``shquote`` filter or :func:`sbatch_flag`: shell is code.
"""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from pathlib import Path

import jinja2

from hpc_gateway import templates
from hpc_gateway.gateway.errors import InvalidInput

TEMPLATE_DIR = Path(templates.__file__).parent


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared Jinja environment (templates/ as the loader root)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    env.filters["rubyquote"] = ruby_quote
    return env


def ruby_quote(value: object) -> str:
    """A Ruby single-quoted string literal (no interpolation) holding ``value``: the OnDemand
    apps' ERB (templates/ood/)."""
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render(template: str, **context: object) -> str:
    """Render ``template`` (a path under templates/) with ``context``."""
    return environment().get_template(template).render(**context)


def render_text(text: str, **context: object) -> str:
    """Render a template given as text (a site's or user's, extending ours)."""
    return environment().from_string(text).render(**context)


def sbatch_flag(name: str, value: object) -> str:
    """One ``--name=value`` for an ``#SBATCH`` line.

    sbatch reads these lines itself (no shell): values may not hold newlines or double
    quotes, and a value with spaces is wrapped in double quotes, which sbatch understands.
    """
    text = str(value)
    if "\n" in text or "\r" in text or '"' in text:
        raise InvalidInput(f"#SBATCH --{name}: value {text!r} may not contain newlines or '\"'")
    if re.search(r"\s", text):
        text = f'"{text}"'
    return f"--{name}={text}"


def slurm_job_name(name: str) -> str:
    """A job name Slurm shows safely: anything but letters, digits, space and ``._-+:@,=``
    becomes '_'. The exact name stays in the database and in ``$GW_JOB_NAME``."""
    cleaned = re.sub(r"[^A-Za-z0-9 ._+:@,=-]", "_", name).strip()
    return cleaned[:200] or "gw-job"
