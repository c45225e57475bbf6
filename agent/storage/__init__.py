"""littlefs on the SPI NOR flash: the agent's file system, honest about power cuts.

The real C littlefs (littlefs-python) runs over the flash driver through a block
device that maps littlefs blocks to flash addresses. The traps of the binding
(``docs/littlefs.md``) are handled here, once:

1. Exceptions raised in a block-device callback are swallowed by the binding, so the
   callbacks never raise. A :class:`~agent.errors.PowerLoss` from the driver is
   remembered and returned to littlefs as ``LFS_ERR_IO`` (-5); every :class:`Storage`
   method checks after each littlefs call and re-raises it. From the cut on, every
   callback fails at once: nothing reaches a chip that has no power.
2. A failed read of a data block comes back from littlefs as 0xFF data with no error;
   because of (1) the caller gets :class:`PowerLoss`, never those bytes.
3. Mounting never formats by itself: only a blank region, or when asked.
4. Commits are real ``lfs_file_sync`` calls on raw littlefs handles (no buffering).
5. Closing marks a handle closed whatever happens, so a failed close cannot be
   retried by a finaliser into littlefs's ``lfs_mlist_isopen`` assertion.
6. :meth:`Storage.truncate` calls ``lfs_file_truncate`` with the size it is given.

The parts: the seam the storage sits on :mod:`agent.storage.flash` (:class:`Flash`),
the littlefs configuration and its region :mod:`agent.storage.geometry`
(:class:`Geometry`), the block device littlefs calls back
:mod:`agent.storage.block_device` (traps 1-2), the errors and littlefs's codes for
them :mod:`agent.storage.errors`, the mounted file system
:mod:`agent.storage.filesystem` (:class:`Storage`: traps 1, 3, 4, 6), and the open
files :mod:`agent.storage.files` (:class:`AppendFile`, :class:`ReadFile`: traps 4-5).
This package is the import path for all of them.
"""

from agent.storage.block_device import IoCounts
from agent.storage.errors import NotFormatted, StorageError, StorageFull
from agent.storage.files import AppendFile, ReadFile
from agent.storage.filesystem import Storage
from agent.storage.flash import Flash
from agent.storage.geometry import Geometry

__all__ = [
    "AppendFile",
    "Flash",
    "Geometry",
    "IoCounts",
    "NotFormatted",
    "ReadFile",
    "Storage",
    "StorageError",
    "StorageFull",
]
