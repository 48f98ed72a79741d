"""Sites' and users' own sbatch templates: Jinja files that extend the gateway's templates.

A site keeps them in the directory ``sbatch_templates`` of its configuration; a user
imports them with `gw template import FILE.j2 --name NAME` (into ``<home>/sbatch-templates``;
a user's name shadows a site's). `--template NAME` on a submission renders the job's
script with one. They may fill the base template's blocks (header, prologue, command,
epilogue) and nothing else; the base keeps the job's identity, its umask and the spool
trap that records how the job ended. A template is refused, with the reason, when it
does not extend ``sbatch/training.sh.j2`` or ``sbatch/base.sh.j2``, defines another block,
does not run the container exactly once, resets or replaces the trap (``trap ... EXIT``,
``exec``), or renders to a script bash cannot parse.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jinja2
from jinja2 import nodes

from gateway.common.errors import AlreadyExists, InvalidInput, NotFound
from gateway.common.specs import check_name
from gateway.context import Gateway

BASES = ("sbatch/training.sh.j2", "sbatch/base.sh.j2")
BLOCKS = ("header", "prologue", "command", "epilogue")
SUFFIX = ".sh.j2"
MAX_BYTES = 256 * 1024
_RUN_MARK = "gw_container_run_marker"
_TRAP_RE = re.compile(r"(^|[;&|({]\s*|\bthen\s+|\bdo\s+)trap\b")
_EXEC_RE = re.compile(r"(^|[;&|({]\s*|\bthen\s+|\bdo\s+)exec\b(?!\s*[0-9]*[<>])")


def user_dir(gw: Gateway) -> Path:
    """Where `gw template import` keeps a user's sbatch templates."""
    return gw.layout.root / "sbatch-templates"


def site_dir(gw: Gateway) -> Path | None:
    """The site's sbatch template directory, if configured."""
    value = str(gw.config["sbatch_templates"] or "")
    return Path(value) if value else None


def find_template(gw: Gateway, name: str) -> tuple[str, Path]:
    """The text and file of sbatch template ``name`` (the user's, else the site's)."""
    check_name(name, "sbatch template")
    for directory in (user_dir(gw), site_dir(gw)):
        if directory is None:
            continue
        path = directory / f"{name}{SUFFIX}"
        if path.is_file():
            return path.read_text(), path
    raise NotFound(f"no sbatch template named {name!r} (see `gw template scripts`; add one "
                   "with `gw template import FILE.j2 --name NAME`)")


def list_templates(gw: Gateway) -> list[dict[str, str]]:
    """Every sbatch template a submission can name: ``name``, ``source``, ``path``."""
    found: dict[str, dict[str, str]] = {}
    for source, directory in (("site", site_dir(gw)), ("user", user_dir(gw))):
        if directory is None or not directory.is_dir():
            continue
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            name = path.name[:-len(SUFFIX)]
            found[name] = {"name": name, "source": source, "path": str(path)}
    return [found[name] for name in sorted(found)]


def import_template(gw: Gateway, source: Path, name: str, replace: bool = False) -> Path:
    """Check ``source`` and keep it as the user's sbatch template ``name``."""
    check_name(name, "sbatch template")
    try:
        if source.stat().st_size > MAX_BYTES:
            raise InvalidInput(f"{source} is larger than {MAX_BYTES // 1024} KiB: not a "
                               "template")
        text = source.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}"
                           ) from exc
    check_template(text, str(source))
    directory = user_dir(gw)
    directory.mkdir(mode=0o700, exist_ok=True)
    target = directory / f"{name}{SUFFIX}"
    if target.exists() and not replace:
        raise AlreadyExists(f"an sbatch template named {name!r} exists: give --replace")
    from gateway.common.atomic import write_atomic

    write_atomic(target, text)
    return target


def remove_template(gw: Gateway, name: str) -> None:
    """Remove the user's sbatch template ``name`` (a site's cannot be removed here)."""
    check_name(name, "sbatch template")
    path = user_dir(gw) / f"{name}{SUFFIX}"
    if not path.is_file():
        raise NotFound(f"no sbatch template of yours named {name!r}")
    path.unlink()


def check_template(text: str, where: str) -> None:
    """Refuse a template that could break a job's identity or its spool trap."""
    from gateway.common.templating import environment

    env = environment()
    try:
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput(f"{where}: line {exc.lineno}: {exc.message}") from exc
    body = [n for n in tree.body
            if not (isinstance(n, nodes.Output) and all(
                isinstance(c, nodes.TemplateData) and not c.data.strip() for c in n.nodes))]
    extends = [n for n in tree.find_all(nodes.Extends)]
    if not body or not isinstance(body[0], nodes.Extends) or len(extends) != 1 \
            or not isinstance(extends[0].template, nodes.Const) \
            or extends[0].template.value not in BASES:
        raise InvalidInput(f"{where}: must begin with {{% extends \"{BASES[0]}\" %}} (or "
                           f"\"{BASES[1]}\") and fill only its blocks: "
                           f"{', '.join(BLOCKS)}")
    for block in tree.find_all(nodes.Block):
        if block.name not in BLOCKS:
            raise InvalidInput(f"{where}: block {block.name!r} is not one of the base "
                               f"template's blocks ({', '.join(BLOCKS)})")
    try:
        script = env.from_string(text).render(**sample_context())
    except jinja2.TemplateError as exc:
        raise InvalidInput(f"{where}: {exc}") from exc
    _check_script(script, where)


def _check_script(script: str, where: str) -> None:
    from gateway.common.templating import environment

    base = environment().get_template("sbatch/base.sh.j2").render(**sample_context())
    allowed_traps = sum(1 for line in base.splitlines() if _TRAP_RE.search(line.strip()))
    lines = [line.strip() for line in script.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    if sum(1 for line in lines if _TRAP_RE.search(line)) != allowed_traps:
        raise InvalidInput(f"{where}: sets a trap of its own: the base template's EXIT trap "
                           "records how the job ended, and must stay the only one")
    directives = [line.strip() for line in script.splitlines()
                  if line.strip().startswith("#SBATCH")][len(base_directives()):]
    for line in directives:
        option = re.match(r"#SBATCH\s+(--?[A-Za-z-]+)", line)
        if option and option.group(1) in OWNED_OPTIONS:
            raise InvalidInput(f"{where}: {line!r} sets {option.group(1)}, which the gateway "
                               "owns (the job's identity, directory and log)")
    if any(_EXEC_RE.search(line) for line in lines):
        raise InvalidInput(f"{where}: uses exec, which replaces the job's shell so its end "
                           "is never recorded (run the command without exec)")
    if script.count(_RUN_MARK) != 1:
        raise InvalidInput(f"{where}: must run the container exactly once "
                           "({{ container.run }} in the command block)")
    proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        message = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "error"
        raise InvalidInput(f"{where}: the script it makes is not valid bash: {message}")


# Options the base template sets and a template may not change: the identity that ties a
# Slurm job to its gateway job, the job's directory, its log, and its shape.
OWNED_OPTIONS = ("--comment", "--chdir", "-D", "--output", "-o", "--array", "-a",
                 "--open-mode", "--export", "--get-user-env")


def base_directives() -> list[str]:
    """The #SBATCH lines the base template itself writes for the sample job."""
    flags = sample_context()["sbatch_flags"]
    assert isinstance(flags, list)
    return [f"#SBATCH {flag}" for flag in flags]


def sample_context() -> dict[str, object]:
    """Values shaped like a real job's, to render a template while checking it."""
    from containers.runtime import ContainerScript
    from spool.format import shell_writer

    return {"sbatch_flags": ["--job-name=check"], "kind": "training", "job_id": 1,
            "home_id": "0123456789abcdef", "description": ["a template check"],
            "spool_dir": "/gw/spool", "spool_writer": shell_writer(),
            "container": ContainerScript(": set-up", f"{_RUN_MARK} run", ": teardown"),
            "shape_macros": "sbatch/shapes/single.sh.j2", "job_dir": "/gw/jobs/1",
            "resume": None}
