"""One root error type for everything `gw` reports to a person.

The CLI catches :class:`GatewayError`, prints ``gw: <message>`` on one line to stderr and
exits with :attr:`GatewayError.exit_code`: 2 for bad usage or invalid input, 1 when
something outside `gw` (Slurm, a container tool) failed.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_FAILURE = 1
EXIT_INVALID = 2


class GatewayError(Exception):
    """Base of every error `gw` reports; ``exit_code`` is the process exit status."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(GatewayError):
    """The user's input (a flag, a file, an archive) is wrong; nothing was changed."""

    exit_code = EXIT_INVALID


class NotFound(InvalidInput):
    """A named image, algorithm, dataset, model, version or job does not exist."""


class AlreadyExists(InvalidInput):
    """A name that must be new is already taken."""


class RemoteError(GatewayError):
    """The submit host could not be reached or used over SSH (exit 1)."""


class CommandFailed(GatewayError):
    """An external command failed; carries the command line, exit status and stderr."""

    exit_code = EXIT_FAILURE

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str,
                 what: str | None = None) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        first_line = self.stderr.splitlines()[-1] if self.stderr else "no error output"
        status = "timed out" if returncode is None else f"exited {returncode}"
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}`{' '.join(self.argv[:3])}` {status}: {first_line}")


class SlurmError(CommandFailed):
    """A Slurm command failed or reported an error."""


class SlurmUnavailable(SlurmError):
    """slurmctld could not be reached: job states are UNKNOWN, not failed."""


class ContainerToolError(CommandFailed):
    """A container tool (skopeo, umoci, mksquashfs, siftool, apptainer, bwrap) failed."""


class DatabaseError(GatewayError):
    """The database cannot be opened, migrated or used."""


class HomeMismatch(InvalidInput):
    """The database and GW_HOME do not belong together (another home, or a second database
    on one home): refused before anything is written."""
