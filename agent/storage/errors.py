"""The storage's errors, and the littlefs error codes each stands for
(``docs/littlefs.md``, "Errors").
"""

from __future__ import annotations

from littlefs import LittleFSError

_ERR_NOENT = LittleFSError.Error.LFS_ERR_NOENT
_ERR_EXIST = LittleFSError.Error.LFS_ERR_EXIST
_ERR_NOSPC = LittleFSError.Error.LFS_ERR_NOSPC


class StorageError(Exception):
    """The file system or the flash under it failed (not a power loss).

    ``code`` is the littlefs error code when littlefs reported one, else ``None``
    (a flash driver fault, whose exception is the ``__cause__``).
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StorageFull(StorageError):
    """littlefs has no free block left (LFS_ERR_NOSPC)."""


class NotFormatted(StorageError):
    """The region is not blank and littlefs cannot mount it; it was left untouched."""


def _translate(op: str, exc: LittleFSError) -> Exception:
    message = f"{op}: littlefs error {exc.code} ({exc.name})"
    if exc.code == _ERR_NOENT:
        return FileNotFoundError(message)
    if exc.code == _ERR_EXIST:
        return FileExistsError(message)
    if exc.code == _ERR_NOSPC:
        return StorageFull(message, exc.code)
    return StorageError(message, exc.code)
