"""Fault injection for tests/test_faults.py. Python imports this module at start-up when this folder is on
PYTHONPATH, in the launcher and in every process it spawns alike.

ARM_A3C_TEST_DISK_FULL=PATH: while the file PATH exists, os.fsync fails with ENOSPC, as it does when a disk
fills up during a write (checkpoints are the files arm-a3c fsyncs).
"""

import errno
import os

_full = os.environ.get("ARM_A3C_TEST_DISK_FULL")
if _full:
    _real_fsync = os.fsync

    def _fsync(fd):
        if os.path.exists(_full):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _real_fsync(fd)

    os.fsync = _fsync
