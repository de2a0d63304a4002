"""Wrong: the reader waits with Reed and Kanodia's >= (AWAIT(written, i - 1)): one message too early."""

from runtime.textbook import (ADVANCE, ALLOCATE_BLOCK, ALLOCATE_EVENTCOUNT, AWAIT, CREATE_ADDRESS_SPACE, LOAD,
                              MAP, STORE)

MAILBOX = 4096


def setup():
    writer_space, reader_space = CREATE_ADDRESS_SPACE(), CREATE_ADDRESS_SPACE()
    mailbox = ALLOCATE_BLOCK(4096, name="mailbox")
    MAP(writer_space, mailbox, 1, "rw")
    MAP(reader_space, mailbox, 1, "r")
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
        AWAIT(written, i - 1)
        got.append(LOAD(MAILBOX))
        ADVANCE(taken)
    return got
