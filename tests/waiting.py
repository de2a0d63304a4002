"""Tests synchronise on observed state, never on a sleep: the helpers.

    wait_for(lambda: waiting_on(k, tid, "receive 3"))
"""

import time

import pytest


def wait_for(predicate, timeout=10.0):
    """Poll observed state (never a fixed sleep); fail the test if it never holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.002)


def row(k, tid):
    """Thread tid's row of k.thread_info()."""
    return next(r for r in k.thread_info() if r["tid"] == tid)


def waiting_on(k, tid, what):
    """Is thread tid WAITING for `what` ("receive 3", "lock 1", ...)?"""
    r = row(k, tid)
    return r["state"] == "WAITING" and r["waits_for"] == what
