"""Every quoting rule, in one place: shell words, Ruby literals, ``#SBATCH`` values, env
files. Shell is code: a user value reaches a script, a command line or an OnDemand file only
through one of these."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from pathlib import Path

from gateway.common.errors import InvalidInput


def shell_word(value: object) -> str:
    """``value`` as one word of POSIX shell (no expansion of any kind)."""
    return shlex.quote(str(value))


def shell_line(words: Iterable[object]) -> str:
    """A command line of shell words, each quoted."""
    return " ".join(shell_word(w) for w in words)


def shell_assignments(env: dict[str, str], prefix: str = "") -> str:
    """``NAME=value`` lines (each value quoted), one per variable, e.g. an env file."""
    return "".join(f"{prefix}{key}={shell_word(value)}\n" for key, value in env.items())


def ruby_quote(value: object) -> str:
    """A Ruby single-quoted string literal (no interpolation) holding ``value``: the OnDemand
    apps' ERB (templates/ood/)."""
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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


def slurm_filename(path: Path) -> str:
    """``path`` for an sbatch filename option: ``%`` is Slurm's pattern character, so a
    literal one is doubled (a ``\\`` would turn all patterns off: GW_HOME may not hold one)."""
    text = str(path)
    if "\\" in text:
        raise InvalidInput(f"{text!r} holds a backslash, which Slurm's filename patterns "
                           "cannot carry: use a GW_HOME without one")
    return text.replace("%", "%%")
