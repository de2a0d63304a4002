"""The textbook memory calls: what they return, and every error of the contract table."""

import pytest

from runtime import Kernel
from runtime.errors import (AddressSpaceBusy, AlignmentError, AlreadyMapped, BlockInUse, KernelError,
                            NoSuchAddressSpace, NoSuchBlock, NotMapped, OutOfMemory, OutOfResources,
                            ProtectionFault, SegmentationFault, ThreadFailed)
from runtime.textbook import (ALLOCATE_BLOCK, ALLOCATE_THREAD, CREATE_ADDRESS_SPACE, DELETE_ADDRESS_SPACE,
                              FREE_BLOCK, LOAD, LOAD_BYTES, MAP, RSM, STORE, STORE_BYTES, UNMAP)

PS = 4096
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def k():
    with Kernel(frames=32) as kernel:
        yield kernel
        kernel.vm._check_invariants()


def test_a_new_block_reads_as_zeros_and_keeps_what_is_stored(k):
    b = ALLOCATE_BLOCK(3 * PS)
    MAP(k.address_space, b, 10, "rw")
    base = 10 * PS
    assert [LOAD(base + i * PS + 8 * j) for i in range(3) for j in (0, 7)] == [0] * 6
    STORE(base, -(2 ** 63))
    STORE(base + PS + 8, 2 ** 63 - 1)
    assert LOAD(base) == -(2 ** 63)
    assert LOAD(base + PS + 8) == 2 ** 63 - 1


def test_words_are_little_endian_signed_64_bit(k):
    b = ALLOCATE_BLOCK(PS)
    MAP(k.address_space, b, 0, "rw")
    STORE(16, -2)
    assert LOAD_BYTES(16, 8) == b"\xfe" + b"\xff" * 7
    STORE_BYTES(24, (258).to_bytes(8, "little"))
    assert LOAD(24) == 258


def test_bytes_cross_page_boundaries_in_both_directions(k):
    b = ALLOCATE_BLOCK(4 * PS)
    MAP(k.address_space, b, 3, "rw")
    data = bytes(range(256)) * 40  # 10240 bytes: spans three page boundaries from an odd start
    STORE_BYTES(3 * PS + 1001, data)
    assert LOAD_BYTES(3 * PS + 1001, len(data)) == data
    assert LOAD_BYTES(3 * PS, 1001) == bytes(1001)
    assert LOAD_BYTES(3 * PS + 1001 + len(data), 7) == bytes(7)
    assert LOAD_BYTES(3 * PS, 0) == b""


def test_bytes_across_two_blocks_that_are_not_adjacent_in_frames(k):
    b1, b2 = ALLOCATE_BLOCK(PS), ALLOCATE_BLOCK(PS)
    MAP(k.address_space, b2, 1, "rw")
    MAP(k.address_space, b1, 0, "rw")
    STORE(PS, 1)  # b2's page gets the lower frame
    STORE_BYTES(PS - 4, b"abcdefgh")
    assert LOAD_BYTES(PS - 4, 8) == b"abcdefgh"


def test_rsm_returns_the_old_word_and_leaves_one(k):
    b = ALLOCATE_BLOCK(PS)
    MAP(k.address_space, b, 0, "rw")
    assert RSM(8) == 0
    assert LOAD(8) == 1
    assert RSM(8) == 1
    STORE(8, 42)
    assert RSM(8) == 42
    assert LOAD(8) == 1


def test_a_read_only_mapping_reads_but_refuses_store_and_rsm(k):
    b = ALLOCATE_BLOCK(PS)
    MAP(k.address_space, b, 0, "rw")
    STORE(0, 7)
    MAP(k.address_space, b, 5, "r")
    assert LOAD(5 * PS) == 7
    assert LOAD_BYTES(5 * PS, 8) == (7).to_bytes(8, "little")
    with pytest.raises(ProtectionFault) as e:
        STORE(5 * PS, 1)
    assert (e.value.tid, e.value.address, e.value.page) == (0, 5 * PS, 5)
    assert "thread 0" in str(e.value) and hex(5 * PS) in str(e.value)
    with pytest.raises(ProtectionFault):
        RSM(5 * PS)
    with pytest.raises(ProtectionFault):
        STORE_BYTES(5 * PS + 3, b"x")
    assert LOAD(0) == 7


def test_unmapped_addresses_are_segmentation_faults(k):
    with pytest.raises(SegmentationFault) as e:
        LOAD(12 * PS + 8)
    assert (e.value.tid, e.value.address, e.value.page) == (0, 12 * PS + 8, 12)
    for bad in (-8, 10 ** 12):
        with pytest.raises(SegmentationFault):
            LOAD(bad)
    with pytest.raises(SegmentationFault):
        STORE(40 * PS, 1)
    with pytest.raises(SegmentationFault):
        LOAD_BYTES(0, 10)
    with pytest.raises(SegmentationFault):
        RSM(0)


def test_bytes_that_run_off_a_mapping_fault_at_the_first_unmapped_page(k):
    b = ALLOCATE_BLOCK(PS)
    MAP(k.address_space, b, 0, "rw")
    with pytest.raises(SegmentationFault) as e:
        LOAD_BYTES(PS - 8, 16)
    assert e.value.page == 1


def test_word_errors(k):
    b = ALLOCATE_BLOCK(PS)
    MAP(k.address_space, b, 0, "rw")
    with pytest.raises(AlignmentError):
        LOAD(4)
    with pytest.raises(AlignmentError):
        STORE(12, 1)
    with pytest.raises(AlignmentError):
        RSM(1)
    with pytest.raises(OverflowError):
        STORE(0, 2 ** 63)
    with pytest.raises(OverflowError):
        STORE(8, -(2 ** 63) - 1)
    with pytest.raises(TypeError):
        STORE(0, "1")
    LOAD(8)  # the TLB now has the page: the same errors from the fast path
    with pytest.raises(OverflowError):
        STORE(0, 2 ** 64)
    with pytest.raises(AlignmentError):
        LOAD(3)
    assert LOAD(0) == 0


def test_allocate_block_errors():
    with Kernel(frames=4, swap_pages=4) as k:
        for bad in (0, -1):
            with pytest.raises(ValueError):
                ALLOCATE_BLOCK(bad)
        with pytest.raises(OutOfMemory):
            ALLOCATE_BLOCK(9 * PS)  # 4 frames + 4 swap pages hold 8
        b = ALLOCATE_BLOCK(8 * PS)
        with pytest.raises(OutOfMemory):
            ALLOCATE_BLOCK(1)
        FREE_BLOCK(b)
        ALLOCATE_BLOCK(8 * PS)
        k.vm._check_invariants()


def test_free_block_errors(k):
    b = ALLOCATE_BLOCK(PS)
    MAP(k.address_space, b, 0, "rw")
    with pytest.raises(BlockInUse):
        FREE_BLOCK(b)
    UNMAP(k.address_space, 0)
    FREE_BLOCK(b)
    with pytest.raises(NoSuchBlock):
        FREE_BLOCK(b)
    with pytest.raises(NoSuchBlock):
        FREE_BLOCK(12345)
    b2 = ALLOCATE_BLOCK(PS)
    assert b2 != b  # the slot's next generation: the old id stays dead
    with pytest.raises(NoSuchBlock):
        MAP(k.address_space, b, 0, "rw")


def test_map_errors(k):
    b = ALLOCATE_BLOCK(2 * PS)
    MAP(k.address_space, b, 4, "rw")
    with pytest.raises(AlreadyMapped):
        MAP(k.address_space, b, 5, "r")    # overlaps the second page
    with pytest.raises(AlreadyMapped):
        MAP(k.address_space, b, 3, "rw")
    with pytest.raises(NoSuchBlock):
        MAP(k.address_space, 999, 20, "rw")
    for perm in ("w", "x", "", "RW"):
        with pytest.raises(ValueError):
            MAP(k.address_space, b, 20, perm)
    with pytest.raises(TypeError):
        MAP(k.address_space, b, 20, None)
    for page in (-1, 4095, 10 ** 9):
        with pytest.raises(ValueError):
            MAP(k.address_space, b, page, "rw")
    with pytest.raises(TypeError):
        MAP(k.address_space, b, 1.5, "rw")
    with pytest.raises(NoSuchAddressSpace):
        MAP(987654, b, 20, "rw")


def test_unmap_errors_and_unmap_by_any_page_of_the_mapping(k):
    b = ALLOCATE_BLOCK(3 * PS)
    MAP(k.address_space, b, 8, "rw")
    STORE(9 * PS, 5)
    with pytest.raises(NotMapped):
        UNMAP(k.address_space, 7)
    UNMAP(k.address_space, 10)  # the last page names the whole mapping
    with pytest.raises(SegmentationFault):
        LOAD(9 * PS)
    with pytest.raises(NotMapped):
        UNMAP(k.address_space, 8)
    MAP(k.address_space, b, 0, "r")
    assert LOAD(PS) == 5  # the block kept its contents


def test_address_space_errors():
    with Kernel(frames=8, max_address_spaces=3) as k:
        a = CREATE_ADDRESS_SPACE()
        c = CREATE_ADDRESS_SPACE()
        with pytest.raises(OutOfResources):
            CREATE_ADDRESS_SPACE()
        DELETE_ADDRESS_SPACE(a)
        with pytest.raises(NoSuchAddressSpace):
            DELETE_ADDRESS_SPACE(a)
        with pytest.raises(NoSuchAddressSpace):
            ALLOCATE_THREAD(print, a)
        a2 = CREATE_ADDRESS_SPACE()
        assert a2 not in (a, c, k.address_space)
        with pytest.raises(AddressSpaceBusy):
            DELETE_ADDRESS_SPACE(k.address_space)  # thread 0 lives in it
        k.vm._check_invariants()


def _wait_for_flag(addr):
    while LOAD(addr) == 0:
        pass


def test_delete_refuses_while_a_thread_runs_in_it_and_works_after():
    with Kernel(frames=8) as k:
        space = CREATE_ADDRESS_SPACE()
        shared = ALLOCATE_BLOCK(PS)
        MAP(k.address_space, shared, 0, "rw")
        MAP(space, shared, 0, "rw")
        tid = ALLOCATE_THREAD(_spin_until_told, space)
        while LOAD(8) == 0:  # the thread says it runs
            pass
        with pytest.raises(AddressSpaceBusy):
            DELETE_ADDRESS_SPACE(space)
        STORE(0, 1)
        assert k.join(tid, timeout=30) == "done"
        DELETE_ADDRESS_SPACE(space)
        assert LOAD(8) == 1  # the shared block outlives the address space
        UNMAP(k.address_space, 0)
        FREE_BLOCK(shared)
        k.vm._check_invariants()


def _spin_until_told():
    STORE(8, 1)
    _wait_for_flag(0)
    return "done"


def test_no_swap_and_too_few_frames_is_out_of_memory_at_allocation():
    with Kernel(frames=2, swap_pages=0) as k:
        with pytest.raises(OutOfMemory):
            ALLOCATE_BLOCK(3 * PS)
        b = ALLOCATE_BLOCK(2 * PS)
        MAP(k.address_space, b, 0, "rw")
        STORE(0, 1)
        STORE(PS, 2)
        assert (LOAD(0), LOAD(PS)) == (1, 2)


def test_memory_calls_outside_a_kernel_raise_kernel_error():
    with pytest.raises(KernelError):
        LOAD(0)
    with pytest.raises(KernelError):
        CREATE_ADDRESS_SPACE()


def test_a_fault_in_a_vp_fails_only_that_thread():
    with Kernel(frames=8) as k:
        tid = ALLOCATE_THREAD(LOAD, k.address_space, 77 * PS)
        with pytest.raises(ThreadFailed) as e:
            k.join(tid, timeout=30)
        assert e.value.reason == "fault" and e.value.exc_type == "SegmentationFault"
        assert f"thread {tid}" in e.value.message
        b = ALLOCATE_BLOCK(PS)
        MAP(k.address_space, b, 77, "rw")
        STORE(77 * PS, 3)
        assert LOAD(77 * PS) == 3


def test_runs_of_frames_are_never_merged_across_a_different_run():
    """Pages 0 and 3 sit in frames 0 and 3 (same offset page -> frame), pages 1-2
    in frames 4-5.  A copy over 0..3 must not decide that 0..3 is one run."""
    with Kernel(frames=8) as k:
        b = ALLOCATE_BLOCK(4 * PS)
        filler = ALLOCATE_BLOCK(2 * PS)
        MAP(k.address_space, b, 0, "rw")
        MAP(k.address_space, filler, 10, "rw")
        for page in (0, 10, 11, 3, 1, 2):  # frames are handed out lowest first: 0, 1, 2, 3, 4, 5
            STORE_BYTES(page * PS, bytes([page + 1]) * PS)
        assert LOAD_BYTES(PS, 2 * PS) == b"\x02" * PS + b"\x03" * PS  # learns the run of pages 1-2
        want = b"".join(bytes([p + 1]) * PS for p in range(4))
        assert LOAD_BYTES(0, 4 * PS) == want
        assert LOAD_BYTES(0, 4 * PS) == want
        STORE_BYTES(0, bytes(4 * PS))
        assert LOAD_BYTES(10 * PS, 2 * PS) == b"\x0b" * PS + b"\x0c" * PS
