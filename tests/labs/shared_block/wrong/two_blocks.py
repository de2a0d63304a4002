"""Wrong: a mailbox block for each address space -- nothing is shared."""

from runtime.textbook import (ADVANCE, ALLOCATE_BLOCK, ALLOCATE_EVENTCOUNT, AWAIT, CREATE_ADDRESS_SPACE, LOAD,
                              MAP, STORE)

MAILBOX = 4096


def setup():
    writer_space, reader_space = CREATE_ADDRESS_SPACE(), CREATE_ADDRESS_SPACE()
    MAP(writer_space, ALLOCATE_BLOCK(4096, name="mailbox"), 1, "rw")
    MAP(reader_space, ALLOCATE_BLOCK(4096, name="mailbox"), 1, "r")
    written, taken = ALLOCATE_EVENTCOUNT("written"), ALLOCATE_EVENTCOUNT("taken")
    return writer_space, reader_space, (written, taken)


def writer(shared, messages):
    written, taken = shared
    for i, m in enumerate(messages):
        AWAIT(taken, i - 1)
        STORE(MAILBOX, m)
        ADVANCE(written)


def reader(shared, count):
    written, taken = shared
    got = []
    for i in range(count):
        AWAIT(written, i)
        got.append(LOAD(MAILBOX))
        ADVANCE(taken)
    return got
