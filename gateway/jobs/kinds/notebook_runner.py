"""Runs a notebook top to bottom with nbclient, as papermill would, inside the container.

A headless notebook on an image without papermill runs this file's text with the image's
own Python (``python3 -c SOURCE NOTEBOOK EXECUTED CWD [KEY VALUE]...``): JupyterLab brings
nbclient and nbformat, and ipykernel the kernel, so an image made with only ``pip3 install
jupyterlab`` runs it. It behaves as ``papermill --log-output --cwd CWD -p KEY VALUE``:

- each cell is logged as it starts (``Executing Cell N``) and its output as it comes;
- the values fill an injected cell (tagged ``injected-parameters``) after the cell tagged
  ``parameters`` (or at the top), typed as papermill types them;
- the executed copy with its outputs is written after every cell (atomically);
- a cell that raises ends the run with exit 1, its number and error on stderr.

It is never imported by the gateway: it runs in the image's Python (3.7 or newer), with
nothing but the standard library, nbformat and nbclient.
"""

from __future__ import annotations

import os
import sys

INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"


def typed(value: str) -> object:
    """A ``-p`` value as papermill types it: True, False, None, int, float, else str."""
    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def parameters_source(params: list[tuple[str, str]]) -> str:
    """The injected cell's code: ``# Parameters`` and one ``key = value`` line each."""
    return "# Parameters\n" + "".join(f"{key} = {typed(value)!r}\n" for key, value in params)


def inject(nb: object, params: list[tuple[str, str]]) -> None:
    """Insert the parameters cell after the one tagged ``parameters`` (else first)."""
    from nbformat.v4 import new_code_cell

    cells = nb.cells  # type: ignore[attr-defined]
    at = 0
    for index, cell in enumerate(cells):
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            at = index + 1
            break
    cells.insert(at, new_code_cell(parameters_source(params),
                                   metadata={"tags": [INJECTED_TAG]}))


def save(nb: object, path: str) -> None:
    """Write the executed copy atomically (a reader never sees half a notebook)."""
    import nbformat

    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        nbformat.write(nb, handle)
    os.replace(partial, path)


def echo(msg: dict) -> None:
    """Print what a cell outputs as it arrives (streams and plain-text results)."""
    kind, content = msg.get("msg_type"), msg.get("content", {})
    if kind == "stream":
        target = sys.stderr if content.get("name") == "stderr" else sys.stdout
        target.write(content.get("text", ""))
        target.flush()
    elif kind in ("execute_result", "display_data"):
        text = content.get("data", {}).get("text/plain")
        if text:
            print(text, flush=True)


def run(notebook: str, executed: str, cwd: str, params: list[tuple[str, str]]) -> int:
    """Execute ``notebook`` in ``cwd``; 0 when every cell ran, 1 when one raised."""
    import warnings

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    warnings.filterwarnings("ignore", module="nbformat")  # cells without ids: not the user's

    class LoggingClient(NotebookClient):
        def process_message(self, msg: dict, *args: object, **kwargs: object) -> object:
            echo(msg)
            return super().process_message(msg, *args, **kwargs)

    nb = nbformat.read(notebook, as_version=4)
    if params:
        inject(nb, params)
    client = LoggingClient(nb, timeout=None, allow_errors=False,
                           resources={"metadata": {"path": cwd}})
    total = sum(1 for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", []))
    number = 0
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                injected = INJECTED_TAG in cell.get("metadata", {}).get("tags", [])
                if not injected:
                    number += 1
                if cell.get("cell_type") != "code":
                    continue
                label = "the injected parameters" if injected else f"Cell {number} of {total}"
                print(f"Executing {label}" + "-" * 20, file=sys.stderr, flush=True)
                try:
                    client.execute_cell(cell, index)
                finally:
                    save(nb, executed)
    except CellExecutionError as exc:
        save(nb, executed)
        print(f"{exc}\n\ngw: cell {number} of {notebook} raised {exc.ename}: {exc.evalue}",
              file=sys.stderr, flush=True)
        return 1
    except DeadKernelError as exc:
        save(nb, executed)
        print(f"gw: the kernel died in cell {number} of {notebook}: {exc}", file=sys.stderr,
              flush=True)
        return 1
    save(nb, executed)
    return 0


def main(argv: list[str]) -> int:
    """``NOTEBOOK EXECUTED CWD [KEY VALUE]...``."""
    if len(argv) < 3 or len(argv) % 2 == 0:
        print("usage: NOTEBOOK EXECUTED CWD [KEY VALUE]...", file=sys.stderr)
        return 2
    notebook, executed, cwd, *rest = argv
    params = list(zip(rest[0::2], rest[1::2], strict=False))
    try:
        import nbclient  # noqa: F401
    except ImportError:
        print(f"gw: this image's {sys.executable} cannot import nbclient: install "
              "JupyterLab (pip3 install jupyterlab) or papermill in the image",
              file=sys.stderr)
        return 2
    os.chdir(cwd)
    return run(notebook, executed, cwd, params)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
