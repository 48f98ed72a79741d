"""The Jinja environment that turns templates/ into sbatch scripts.

``StrictUndefined`` makes a missing value an error, and every user value reaches a script
through the ``shquote`` filter or :func:`sbatch_flag`: shell is code.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2

import templates
from gateway.common.quoting import ruby_quote, sbatch_flag, shell_word

__all__ = ["environment", "render", "render_text", "ruby_quote", "sbatch_flag",
           "slurm_job_name"]

TEMPLATE_DIR = Path(templates.__file__).parent


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared Jinja environment (templates/ as the loader root)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["shquote"] = shell_word
    env.filters["rubyquote"] = ruby_quote
    return env


def render(template: str, **context: object) -> str:
    """Render ``template`` (a path under templates/) with ``context``."""
    return environment().get_template(template).render(**context)


def render_text(text: str, **context: object) -> str:
    """Render a template given as text (a site's or user's, extending ours)."""
    return environment().from_string(text).render(**context)


def slurm_job_name(name: str) -> str:
    """A job name Slurm shows safely: anything but letters, digits, space and ``._-+:@,=``
    becomes '_'. The exact name stays in the database and in ``$GW_JOB_NAME``."""
    cleaned = re.sub(r"[^A-Za-z0-9 ._+:@,=-]", "_", name).strip()
    return cleaned[:200] or "gw-job"
