"""What the boot program asks `k`: option values checked at the door (the
names: test_kernel_settings.py), the address helper, join / statistics /
thread_info and their misuse."""

import pytest

from runtime import Kernel
from runtime.errors import KernelError, NoSuchThread, SegmentationFault, ThreadFailed
from runtime.textbook import ALLOCATE_BLOCK, ALLOCATE_THREAD, EXIT_THREAD, LOAD, LOAD_BYTES, MAP, STORE

pytestmark = pytest.mark.timeout(60)


def returns_a_lambda():
    return lambda: 0


def exits_with(status):
    EXIT_THREAD(status)


def test_bad_option_values_are_refused_before_anything_is_built():
    cases = [(dict(max_locks=0), ValueError, "max_locks"), (dict(max_buffers="8"), TypeError, "max_buffers"),
             (dict(sync_slice=-1), ValueError, "sync_slice"), (dict(buffer_bias=1), TypeError, "buffer_bias"),
             (dict(policy="mru"), ValueError, "policy"), (dict(quantum="fast"), TypeError, "quantum"),
             (dict(seed=1.5), TypeError, "seed"), (dict(swap=3), TypeError, "swap"),
             (dict(frames=True), TypeError, "frames"), (dict(page_size=4000), ValueError, "page_size")]
    for kwargs, error, name in cases:
        with pytest.raises(error, match=f"^Kernel needs {name}"):
            Kernel(**kwargs)


def test_address_is_page_times_page_size_plus_offset():
    k = Kernel(page_size=1024, address_space_pages=64)   # pure arithmetic: no boot needed
    assert k.page_size == 1024
    assert k.address(0) == 0 and k.address(3) == 3072 and k.address(3, 8) == 3080
    assert k.address(63, 1023) == 63 * 1024 + 1023
    assert divmod(k.address(5, 40), k.page_size) == (5, 40)
    for page, offset, error in [(64, 0, ValueError), (-1, 0, ValueError), (0, 1024, ValueError),
                                (0, -8, ValueError), ("1", 0, TypeError), (1.0, 0, TypeError),
                                (True, 0, TypeError), (0, None, TypeError)]:
        with pytest.raises(error, match="^k.address needs"):
            k.address(page, offset)


def test_address_reaches_the_word_it_names():
    with Kernel(frames=8) as k:
        MAP(k.address_space, ALLOCATE_BLOCK(2 * k.page_size), 7, "rw")
        STORE(k.address(8, k.page_size - 8), 42)            # the last word of page 8
        assert LOAD((8 * k.page_size) + k.page_size - 8) == 42
        STORE(k.address(8), -2)                                # the first word of page 8
        assert LOAD_BYTES(k.address(7, k.page_size - 4), 12)[4:] == (-2).to_bytes(8, "little", signed=True)
        with pytest.raises(SegmentationFault):
            LOAD(k.address(9))


def test_join_checks_its_arguments():
    with Kernel() as k:
        tid = ALLOCATE_THREAD(exits_with, k.address_space, 7)
        for bad, error in [(True, TypeError), ("1", TypeError), (1.0, TypeError), (None, TypeError)]:
            with pytest.raises(error, match="^k.join needs a thread id"):
                k.join(bad)
        for bad, error in [("1", TypeError), (-1, ValueError), (float("nan"), ValueError), (True, TypeError)]:
            with pytest.raises(error, match="^k.join needs a timeout"):
                k.join(tid, timeout=bad)
        assert k.join(tid, timeout=30) == 7       # a refused join took nothing away
        with pytest.raises(NoSuchThread):
            k.join(tid)
        with pytest.raises(KernelError):
            k.join(0)


def test_a_status_that_does_not_pickle_fails_the_thread_and_says_why():
    with Kernel() as k:
        with pytest.raises(ThreadFailed) as info:
            k.join(ALLOCATE_THREAD(returns_a_lambda, k.address_space), timeout=30)
        assert info.value.reason == "exception" and info.value.exc_type == "NotPicklable"
        assert "returned function" in info.value.message
        with pytest.raises(ThreadFailed) as info:
            k.join(ALLOCATE_THREAD(exits_with, k.address_space, lambda: 0), timeout=30)
        assert info.value.exc_type == "NotPicklable" and "EXIT_THREAD needs an exit status" in info.value.message
        k._check_invariants()


def test_the_kernel_methods_outside_the_with_block():
    k = Kernel()
    for call in (k.statistics, k.thread_info, lambda: k.join(1)):
        with pytest.raises(KernelError, match="not running"):
            call()
    with k:
        assert k.thread_info()[0]["tid"] == 0
        assert set(k.statistics()) >= {"threads", "processors", "vm", "locks", "eventcounts", "buffers"}
    for call in (k.statistics, k.thread_info, lambda: k.join(1)):
        with pytest.raises(KernelError, match="not running"):
            call()
    with pytest.raises(KernelError, match="no kernel is running"):
        EXIT_THREAD(0)
