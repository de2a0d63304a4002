"""vos: a concept OS you can watch race.

Virtual processors are real OS processes; memory is reached through a
Python-level pager; bounded buffers in shared memory carry every message.
Start with `from runtime import Kernel` and `from runtime.textbook import *`.
"""

from .kernel import Kernel
from . import errors

__all__ = ["Kernel", "errors"]
__version__ = "0.1.0"
