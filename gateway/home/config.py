"""Configuration: built-in defaults < site file < user file < ``GW_*`` environment.

Both files are TOML. Every key is documented in :data:`KEYS` below, next to its default;
`gw config` prints the resolved values and where each came from.

Site file: ``$GW_SITE_CONFIG`` or ``/etc/hpc-gateway/config.toml``.
User file: ``$GW_USER_CONFIG`` or ``$XDG_CONFIG_HOME/hpc-gateway/config.toml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gateway.common.errors import InvalidInput

# key -> (default, help). Values in the files use the same names.
KEYS: dict[str, tuple[Any, str]] = {
    "home": ("", "Where stores, jobs, spool files and the database live (GW_HOME). Must be on "
                 "a filesystem the compute nodes see. Default: $XDG_DATA_HOME/hpc-gateway."),
    "database": ("", "SQLite database file (GW_DATABASE). Default: <home>/gateway.db, which "
                     "every login node sees (rollback journal; `gw doctor` checks the "
                     "filesystem's locks). A home belongs to one database: a second one on "
                     "the same home is refused."),
    "runtime": ("auto", "Container runtime for jobs: apptainer, bwrap, or auto (apptainer when "
                        "installed, otherwise bubblewrap over the same SIF) (GW_RUNTIME)."),
    "image_builder": ("auto", "How an imported or pulled image becomes a SIF: stream (the "
                              "layers flattened in one pass into tar2sqfs or sqfstar 4.6+, no "
                              "unpacked copy), unpack (skopeo, umoci, mksquashfs, siftool), "
                              "apptainer (apptainer build), or auto: apptainer build when "
                              "jobs run with Apptainer, else stream where its writer is "
                              "installed, else unpack (GW_IMAGE_BUILDER)."),
    "image_build": ("slurm", "Where `gw image import` and `gw image pull` convert an image: "
                             "slurm (a build job, the image BUILDING until it ends; jobs "
                             "submitted meanwhile wait for it) or here (on the node running "
                             "gw, in the foreground, as --here) (GW_IMAGE_BUILD)."),
    "image_build_partition": ("", "Slurm partition of image build jobs; empty: `partition`'s."),
    "image_build_cpus": (2, "CPUs of an image build job (the SquashFS compressor's threads)."),
    "image_build_mem": ("4G", "Memory of an image build job."),
    "image_build_time": ("2:00:00", "Time limit of an image build job."),
    "partition": ("", "Slurm partition for jobs that name none; empty: Slurm's default "
                      "(GW_PARTITION)."),
    "cpus": (1, "CPUs per job when --cpus is not given."),
    "gpus": (0, "GPUs per job when --gpus is not given."),
    "mem": ("2G", "Memory per job when --mem is not given (shm is added on top)."),
    "shm": ("64M", "Size of the job's private /dev/shm when --shm is not given."),
    "time": ("1:00:00", "Time limit when --time is not given (Slurm time format)."),
    "slurm_timeout": (60, "Seconds to wait for a Slurm command before calling the state UNKNOWN."),
    "flavors": ({}, "Named resource shapes for --flavor NAME: [flavors.NAME] tables of cpus, "
                "gpus, mem, shm, time, partition, account, qos, constraint, exclusive, "
                "nodes, tasks_per_node, restarts, restart_on_failure, save_seconds "
                "(a user's add to or replace the site's)."),
    "sbatch_templates": ("", "Directory of the site's own sbatch templates (NAME.sh.j2, "
                         "extending sbatch/training.sh.j2), named by --template NAME."),
    "node_scratch": ("/tmp", "Node-local directory where a job mounts its image."),
    "notebook_time": ("2:00:00", "Time limit of a notebook when --time is not given (the "
                                 "web platform's notebooks live 2 hours)."),
    "notebook_save_seconds": (120, "Slurm signals a notebook this many seconds before its "
                                   "time limit, so it stops and its code is saved before "
                                   "the kill."),
    "resume_save_seconds": (90, "A job with --restarts gets SIGUSR1 this many seconds "
                                "before its time limit (at most half the limit) to save "
                                "its checkpoint in /model; --save-seconds overrides it."),
    "notebook_proxy_prefix": ("", "Reverse-proxy prefix notebooks serve under, as "
                              "PREFIX/<node>/<port>/ (Open OnDemand: /node); empty: at /."),
    "login_host": ("", "Host name people ssh to for a notebook tunnel (ssh -N -L ...). "
                       "Default: this login node's name."),
    "share_root": ("", "Directory where people share algorithms, datasets and models with a "
                       "Unix group (`gw data share NAME --group G`); the site creates it "
                       "like /tmp (mode 1777), ideally on the homes' filesystem so shares "
                       "are hardlinks, not copies. Empty: sharing is off."),
    "site_images": ("", "Directory of the site's images (`gw image publish`), writable by "
                        "its administrators only; every user can run them. Empty: none."),
    "submit_host": ("", "Run gw on this login node over SSH (`gw --host HOST`; user@host:port "
                        "or a ~/.ssh/config alias): scheduler commands run there, uploads "
                        "and downloads go over SFTP (GW_SUBMIT_HOST). Empty: run here."),
    "remote_gw": ("gw", "The gw command on the submit host (GW_REMOTE_GW)."),
    "ssh_identity": ("", "Private key for the submit host (default: ssh's own: ~/.ssh/config, "
                         "the agent, ~/.ssh/id_*)."),
    "ssh_known_hosts": ("", "known_hosts file the submit host's key must be in, besides "
                            "~/.ssh/known_hosts (an unknown host key is refused)."),
    "max_upload_bytes": (1 << 40, "Largest algorithm or dataset push, in bytes (the sum of "
                                  "its files, as declared and as read)."),
    "max_image_bytes": (1 << 40, "Largest image import or pull, in bytes: its layers' files "
                                 "as unpacked (each file, and all of them)."),
    "max_zip_ratio": (200.0, "A zip whose content is more than this many times its packed "
                             "size is refused as a zip bomb."),
}

# Characters a home path may not hold: Slurm's filename patterns and #SBATCH lines
# cannot carry them (a backslash turns every %j off; a newline or quote ends the line).
_PATH_FORBIDDEN = {"\\": "a backslash", "\n": "a newline", "\r": "a carriage return",
                   '"': "a double quote", "\0": "a NUL byte"}

ENV_NAMES = {"home": "GW_HOME", "database": "GW_DATABASE", "runtime": "GW_RUNTIME",
             "image_builder": "GW_IMAGE_BUILDER", "image_build": "GW_IMAGE_BUILD",
             "partition": "GW_PARTITION", "submit_host": "GW_SUBMIT_HOST",
             "remote_gw": "GW_REMOTE_GW", "ssh_identity": "GW_SSH_IDENTITY",
             "ssh_known_hosts": "GW_SSH_KNOWN_HOSTS"}


class Config:
    """Resolved settings; ``sources`` says where each value came from. (A plain class:
    every command loads one, and a dataclass would cost each the import of dataclasses.)"""

    __slots__ = ("sources", "values")

    def __init__(self, values: dict[str, Any], sources: dict[str, str] | None = None) -> None:
        self.values = values
        self.sources = sources if sources is not None else {}

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def home(self) -> Path:
        """The gateway's root directory (stores, jobs, spool, database)."""
        return Path(self.values["home"])

    @property
    def database(self) -> Path:
        """The SQLite database file."""
        return Path(self.values["database"])


def site_config_path() -> Path:
    """The site-wide configuration file."""
    return Path(os.environ.get("GW_SITE_CONFIG", "/etc/hpc-gateway/config.toml"))


def user_config_path() -> Path:
    """The user's configuration file."""
    if "GW_USER_CONFIG" in os.environ:
        return Path(os.environ["GW_USER_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hpc-gateway" / "config.toml"


def default_home() -> Path:
    """``$XDG_DATA_HOME/hpc-gateway`` (``~/.local/share/hpc-gateway``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hpc-gateway"


def _check_type(key: str, value: Any, where: str) -> Any:
    """``value`` if it has the type of ``key``'s default (ints are accepted for floats)."""
    default = KEYS[key][0]
    wanted = type(default)
    ok = isinstance(value, wanted) and not (wanted is int and isinstance(value, bool))
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        names = {str: "a string", int: "a whole number", float: "a number", dict: "a table"}
        raise InvalidInput(f"{where}: {key} must be {names[wanted]} (like {default!r}), not "
                           f"{value!r}")
    if wanted is dict:
        return value
    if wanted in (int, float) and value <= 0:
        raise InvalidInput(f"{where}: {key} must be more than 0, not {value!r}")
    return value


def _check_home_path(key: str, text: str) -> str:
    for char, name in _PATH_FORBIDDEN.items():
        if char in text:
            raise InvalidInput(f"{key} {text!r} holds {name}, which Slurm's job files cannot "
                               "carry: choose a path without it")
    return text


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import tomllib  # only when there is a file: most people's commands read none

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise InvalidInput(f"config file {path}: unknown key(s) {', '.join(unknown)}; "
                           f"known: {', '.join(KEYS)}")
    return {key: _check_type(key, value, f"config file {path}") for key, value in data.items()}


def _expand_path(text: str) -> str:
    """``~`` and ``$VARS`` expanded (a site file can say ``/shared/gw/$USER``), made absolute."""
    return str(Path(os.path.expandvars(str(text))).expanduser().absolute())


def load_config() -> Config:
    """Resolve the configuration from defaults, the site file, the user file and the env."""
    values = {key: default for key, (default, _help) in KEYS.items()}
    sources = dict.fromkeys(KEYS, "default")
    for label, path in (("site", site_config_path()), ("user", user_config_path())):
        for key, value in _read_toml(path).items():
            if key == "flavors":  # a user's flavors add to the site's
                value = {**values[key], **value}
            values[key] = value
            sources[key] = f"{label} file {path}"
    for key, env_name in ENV_NAMES.items():
        if os.environ.get(env_name):
            values[key] = os.environ[env_name]
            sources[key] = f"${env_name}"
    if not values["home"]:
        values["home"] = str(default_home())
    values["home"] = _check_home_path("GW_HOME", _expand_path(values["home"]))
    values["database"] = _check_home_path("GW_DATABASE", (
        _expand_path(values["database"]) if values["database"]
        else str(Path(values["home"]) / "gateway.db")))
    for key in ("share_root", "site_images", "sbatch_templates", "ssh_identity",
                "ssh_known_hosts"):
        if values[key]:
            values[key] = _expand_path(values[key])
    return Config(values, sources)
