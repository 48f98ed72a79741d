"""What the stores need of a command's context, as an interface: the Gateway
(gateway/context.py) is one. Held by this protocol, the stores never import the context or
the job model that stand above them."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.common.specs import VersionRef
    from gateway.home.config import Config
    from gateway.home.layout import HomeLayout
    from gateway.stores.versioned import VersionedStore, VersionInfo


class ImageUsers(Protocol):
    """The jobs that use images (the job repository)."""

    def active_using(self, column: str, row_id: int) -> list[int]:
        """Ids of unfinished jobs whose ``column`` is ``row_id``."""

    def forget_image(self, image_id: int) -> None:
        """Unlink an image being removed from every job's record."""


class StoresContext(Protocol):
    """A home's configuration, layout, database and stores, and the jobs that use them."""

    @property
    def config(self) -> Config: ...

    @property
    def conn(self) -> sqlite3.Connection: ...

    @property
    def layout(self) -> HomeLayout: ...

    @property
    def jobs(self) -> ImageUsers: ...

    def store(self, kind: str) -> VersionedStore: ...

    def version(self, kind: str, ref: VersionRef) -> VersionInfo: ...



