"""Giving freed heap back to the system after reading a big configuration (CPython only).

Reading 10,000 peers leaves the TOML document and the checks' garbage behind (~40 MB), which
glibc keeps in the process unless asked. The daemon asks after its start-up load and after
every reload. Best effort: with another C library nothing happens.
"""
import ctypes
import gc


def give_back_freed():
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
