"""A host without libatomic, for tests: put this folder on PYTHONPATH and
every interpreter started with it (the test's child, its spawned VPs, a whole
`pytest` run) finds no libatomic -- ctypes.util.find_library("atomic") says
None and loading any library whose name contains "atomic" raises OSError, as
on a slim container or macOS.  Nothing else changes."""

import ctypes
import ctypes.util

_find_library, _cdll_init = ctypes.util.find_library, ctypes.CDLL.__init__


def _find_no_atomic(name):
    return None if "atomic" in name else _find_library(name)


def _cdll_no_atomic(self, name, *args, **kwargs):
    if name and "atomic" in str(name):
        raise OSError(f"{name}: cannot open shared object file: No such file or directory (hidden by tests)")
    _cdll_init(self, name, *args, **kwargs)


ctypes.util.find_library = _find_no_atomic
ctypes.CDLL.__init__ = _cdll_no_atomic          # PyDLL is a CDLL too
