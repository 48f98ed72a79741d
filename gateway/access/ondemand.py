"""`gw ood install`: Open OnDemand batch_connect apps that run gateway jobs.

The apps are ERB files OnDemand renders as the person using the portal: the form asks gw
(`gw ... --json`) for their images, algorithms, datasets and flavors; the submit step runs
`gw notebook start --for-portal` (or `gw job submit --for-portal`), which records and lays
out the job and prints the sbatch options its job must use (gateway/access/portal.py); the job
runs the gateway's own script. See docs/ondemand.md.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from pathlib import Path

from gateway.common.errors import InvalidInput
from gateway.common.specs import MAX_RESTARTS
from gateway.common.trees import remove_tree

# Each app: the files `gw ood install` writes, from templates/ood/<app>/<file>.j2.
APP_FILES = {
    "notebook": ("manifest.yml", "form.yml.erb", "submit.yml.erb", "view.html.erb",
                 "template/before.sh.erb", "template/script.sh.erb",
                 "template/after.sh.erb", "README.md"),
    "training": ("manifest.yml", "form.yml.erb", "submit.yml.erb", "view.html.erb",
                 "template/before.sh.erb", "template/script.sh.erb", "README.md"),
    "dashboard": ("manifest.yml", "passenger_wsgi.py", "README.md"),
}
APP_DIRS = {"notebook": "gw_notebook", "training": "gw_training", "dashboard": "gw_dashboard"}
APP_TITLES = {"notebook": "Gateway JupyterLab", "training": "Gateway training job",
              "dashboard": "Gateway"}
# OnDemand gives each rendered template/*.erb the mode of its .erb, and the job wrapper
# runs script.sh itself ("./script.sh" &): it must be executable (ood_core issue 948).
EXECUTABLE = frozenset({"template/script.sh.erb"})
CLUSTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _gw_python(gw: str) -> tuple[str, str]:
    """The Python of gw's virtualenv (beside it), which the dashboard app runs in, and
    that environment's prefix."""
    beside = Path(gw).parent / "python3"
    if beside.exists():
        return str(beside), str(beside.parent.parent)
    return sys.executable, sys.prefix


def install_apps(dest: Path, *, cluster: str, gw: str, hours: int = 2, max_hours: int = 72,
                 force: bool = False) -> list[Path]:
    """Write the notebook, training and dashboard apps under ``dest``
    (``dest/gw_notebook``, ``dest/gw_training``, ``dest/gw_dashboard``); returns their
    directories. Each is written whole into a staging
    directory and renamed into place: an app is never half-written."""
    from gateway.common.templating import environment

    if not CLUSTER_RE.fullmatch(cluster):
        raise InvalidInput(f"invalid --cluster {cluster!r}: the name of the cluster in "
                           "OnDemand's /etc/ood/config/clusters.d (letters, digits, '._-')")
    if not os.path.isabs(gw) or not os.access(gw, os.X_OK):
        raise InvalidInput(f"gw {gw!r} is not an executable absolute path: the portal runs "
                           "it as each user (install gw for all, scripts/install-site.sh)")
    if not 1 <= hours <= max_hours:
        raise InvalidInput(f"--hours {hours} is not within 1..{max_hours}")
    env = environment()
    python, python_prefix = _gw_python(gw)
    dest.mkdir(parents=True, exist_ok=True)
    made = []
    for app, files in APP_FILES.items():
        target = dest / APP_DIRS[app]
        if target.exists() and not force:
            raise InvalidInput(f"{target} exists: --force replaces it")
        staging = dest / f".{APP_DIRS[app]}.{uuid.uuid4().hex}"
        try:
            for name in files:
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(env.get_template(f"ood/{app}/{name}.j2").render(
                    gw=gw, cluster=cluster, hours=hours, max_hours=max_hours,
                    title=APP_TITLES[app], python=python,
                    python_prefix=python_prefix, max_restarts=MAX_RESTARTS,
                    app_dir=APP_DIRS[app]))
            for dirpath, _dirs, _files in os.walk(staging):
                os.chmod(dirpath, 0o755)  # the portal reads the app as every user
            for name in files:
                os.chmod(staging / name, 0o755 if name in EXECUTABLE else 0o644)
            if target.exists():
                shutil.rmtree(target)
            os.rename(staging, target)
        except BaseException:
            remove_tree(staging)
            raise
        made.append(target)
    return made
