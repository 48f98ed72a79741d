"""Progress on stderr: a rich bar on a terminal, one line per step otherwise."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

from gateway.common.display import human_size


class StepProgress:
    """Reports ``(step, done, total)``: steps with a total get a bar, others a spinner line."""

    def __init__(self, title: str, enabled: bool = True) -> None:
        self.title = title
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty()
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last_step = ""

    def __enter__(self) -> Self:
        if self.interactive:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                      BarColumn(), TextColumn("{task.fields[amount]}"),
                                      TransferSpeedColumn(), TimeElapsedColumn(),
                                      console=Console(stderr=True),
                                      transient=False)
            self._progress.start()
        return self

    def __call__(self, step: str, done: int = 0, total: int = 0) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            if step != self._last_step:
                print(f"gw: {self.title}: {step}", file=sys.stderr, flush=True)
                self._last_step = step
            return
        if step not in self._tasks:
            for task_id in self._tasks.values():
                task = self._progress.tasks[task_id]
                if task.total is None:
                    self._progress.update(task_id, total=1, completed=1)
            self._tasks[step] = self._progress.add_task(f"{self.title}: {step}",
                                                        total=total or None, amount="")
        amount = f"{human_size(done)} / {human_size(total)}" if total else ""
        self._progress.update(self._tasks[step], completed=done, total=total or None,
                              amount=amount)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            if exc_type is None:
                for task_id in self._tasks.values():
                    task = self._progress.tasks[task_id]
                    self._progress.update(task_id, total=task.total or 1,
                                          completed=task.total or 1)
            self._progress.stop()
