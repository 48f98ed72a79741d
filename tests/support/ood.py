"""An Open OnDemand stand-in for tests: what the portal does with a batch_connect app.

Following OnDemand's batch_connect documentation, for a session of an app it:
1. renders ``form.yml.erb`` (plain ERB) and shows the form;
2. renders ``submit.yml.erb`` with the form's values as methods; ``script.native`` are
   sbatch options, ``script.job_environment`` variables for the job, and
   ``batch_connect.conn_params`` extra variables for connection.yml;
3. stages the app's ``template/`` directory as the dashboard does: copied with its modes
   (``rsync -a``), then each ``*.erb`` renamed to its name without ``.erb`` and the
   rendering written into it, so a rendered file keeps its ``.erb``'s mode (nothing makes
   ``script.sh`` executable but the app's own file);
4. submits the "basic" template's job wrapper (ood_core's batch_connect/template.rb): it
   ``cd``s to the staged directory, defines the helpers (``find_port``,
   ``wait_until_port_used``, ``create_passwd``), sets ``host``, sources ``before.sh``,
   runs ``"./script.sh" &`` directly, sources ``after.sh``, writes ``connection.yml``
   (host, port, password and the conn_params, umask 077) and waits for ``script.sh``;
   the wrapper goes to ``sbatch --parsable`` on stdin, as ood_core's Slurm adapter sends
   it, with ``--export NAME,...`` of the job_environment names alone;
5. renders ``view.html.erb`` with connection.yml's values as methods.

The ERB is rendered by real Ruby (tests/support/ood_render.rb), and a rendered YAML's
values come from what the ERB's Ruby computed (stdout of the programs it runs, never
their stderr); the job runs on the real local Slurm. The wrapper is written from
ood_core's template, not copied. One difference, kept on purpose: ``port_used`` probes
with bash's /dev/tcp where ood_core runs ``nc``, which the nodes here do not have.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

RENDER = Path(__file__).with_name("ood_render.rb")


def render(path: Path, context: dict[str, Any], env: dict[str, str], *,
           as_yaml: bool = False) -> Any:
    """Render an app's ERB file with ``context`` as the portal's values."""
    context_file = path.parent / f".context-{os.getpid()}-{time.monotonic_ns()}.json"
    context_file.write_text(json.dumps(context))
    try:
        proc = subprocess.run(["ruby", str(RENDER), str(path), str(context_file),
                               *(["--yaml"] if as_yaml else [])],
                              capture_output=True, text=True, env={**os.environ, **env},
                              timeout=120, check=False)
    finally:
        context_file.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"ERB {path.name} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout) if as_yaml else proc.stdout


WRAPPER = r"""#!/bin/bash
# A stand-in for Open OnDemand's batch_connect "basic" job wrapper (tests/support/ood.py).
cd "{staged}"
export host port
random_number () {{ shuf -i "${{1}}-${{2}}" -n 1; }}
port_used () {{
  local host_port="$1" h p
  h=${{host_port%:*}}; p=${{host_port##*:}}
  (: < "/dev/tcp/$h/$p") >/dev/null 2>&1
}}
find_port () {{
  local h="${{1:-localhost}}" p
  p=$(random_number "${{2:-2000}}" "${{3:-65535}}")
  while port_used "$h:$p"; do p=$(random_number "${{2:-2000}}" "${{3:-65535}}"); done
  echo "$p"
}}
wait_until_port_used () {{
  local i
  for ((i = 0; i < ${{2:-30}} * 2; i++)); do
    port_used "$1" && return 0
    sleep 0.5
  done
  return 1
}}
create_passwd () {{ tr -cd 'a-zA-Z0-9' < /dev/urandom | head -c "${{1:-8}}"; }}
export -f random_number port_used find_port wait_until_port_used create_passwd
clean_up () {{
  [[ ${{SCRIPT_PID:-}} ]] && pkill -P "${{SCRIPT_PID}}" || :
  pkill -P $$
  exit "${{1:-0}}"
}}
host=$(hostname -A | awk '{{print $1}}')
[ -n "$host" ] || host=$(hostname)   # hostname -A names nothing on this machine
[[ -e before.sh ]] && source before.sh
echo "Script starting..."
"./script.sh" &
SCRIPT_PID=$!
[[ -e after.sh ]] && source after.sh
(
  umask 077
  printf '%s: %s\n' host "$host" port "$port" password "$password" {conn_pairs} > connection.yml
)
wait "${{SCRIPT_PID}}" || clean_up 1
clean_up
"""


def stage(template: Path, staged: Path, form: dict[str, Any], env: dict[str, str]) -> None:
    """The dashboard's staging: copy ``template`` with its modes, then render each ``.erb``
    into the file of its name without ``.erb``, which keeps the ``.erb``'s mode."""
    import shutil

    shutil.copytree(template, staged)   # copies each file's mode, as rsync -a does
    for erb in sorted(staged.rglob("*.erb")):
        rendered = erb.with_suffix("")
        text = render(template / erb.relative_to(staged), form, env)
        erb.rename(rendered)             # "keep same file permissions"
        rendered.write_text(text)


def start_session(app: Path, staged: Path, form: dict[str, Any], env: dict[str, str]
                  ) -> dict[str, Any]:
    """Submit a session of ``app`` with the ``form`` values; returns its Slurm job id, the
    staged directory and the rendered submit.yml."""
    submit = render(app / "submit.yml.erb", form, env, as_yaml=True)
    stage(app / "template", staged, form, env)
    conn = submit.get("batch_connect", {}).get("conn_params") or []
    pairs = " ".join(f'{name} "${{{name}}}"' for name in conn)
    wrapper = staged / "job_script_content.sh"   # kept for reading, as OnDemand keeps it
    wrapper.write_text(WRAPPER.format(staged=staged, conn_pairs=pairs))
    script = submit.get("script", {})
    job_env = {k: str(v) for k, v in (script.get("job_environment") or {}).items()}
    # As OnDemand's Slurm adapter does: the job gets only these variables (names only;
    # their values come from sbatch's environment), not the portal's whole environment.
    export = ["--export", ",".join(job_env)] if job_env else []
    argv = ["sbatch", f"--output={staged / 'output.log'}", *export,
            *script.get("native", []), "--parsable"]
    out = subprocess.run(argv, input=wrapper.read_text(), capture_output=True, text=True,
                         check=True, env={**os.environ, **env, **job_env}).stdout
    return {"slurm_id": int(out.strip().split(";")[0]), "staged": staged, "submit": submit}


def connection(staged: Path, timeout: float = 240) -> dict[str, str]:
    """connection.yml of a session, once the wrapper wrote it."""
    path = staged / "connection.yml"
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            log = (staged / "output.log").read_text() if (staged / "output.log").exists() else ""
            raise AssertionError(f"no connection.yml after {timeout} s; output.log:\n{log}")
        time.sleep(0.5)
    time.sleep(0.2)
    return dict(line.split(": ", 1) for line in path.read_text().splitlines() if ": " in line)
