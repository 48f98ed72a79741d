"""One importable name per module: the repository's top-level folders are the packages, so
a module imported from the repository root, from an install or by a tool reading the
folders is the same module under the same name; no file is ever loaded twice."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, pkgutil, sys, collections
import cli
for package in ("gateway", "containers", "spool"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if not info.name.endswith("notebook_runner"):  # runs inside containers only
            importlib.import_module(info.name)
names = collections.defaultdict(list)
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None) or ""
    if path.startswith(sys.argv[1]):
        names[path].append(name)
twice = {path: found for path, found in names.items() if len(found) > 1}
print(len(names), twice)
assert not twice, twice
assert not any(n.startswith("hpc_gateway") for n in sys.modules)
"""


def test_every_module_has_one_name_from_the_repository_root():
    proc = subprocess.run([sys.executable, "-c", PROBE, str(REPO)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[0]) > 50   # the probe saw the whole project
