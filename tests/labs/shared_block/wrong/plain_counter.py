"""Wrong: the writer counts messages in a plain word of the mailbox and the reader spins on it: a data race."""

from runtime.textbook import (ADVANCE, ALLOCATE_BLOCK, ALLOCATE_EVENTCOUNT, AWAIT, CREATE_ADDRESS_SPACE, LOAD,
                              MAP, STORE, YIELD)

MAILBOX = 4096
COUNT = MAILBOX + 8


def setup():
    writer_space, reader_space = CREATE_ADDRESS_SPACE(), CREATE_ADDRESS_SPACE()
    mailbox = ALLOCATE_BLOCK(4096, name="mailbox")
    MAP(writer_space, mailbox, 1, "rw")
    MAP(reader_space, mailbox, 1, "r")
    return writer_space, reader_space, ALLOCATE_EVENTCOUNT("taken")


def writer(taken, messages):
    for i, m in enumerate(messages):
        AWAIT(taken, i - 1)
        STORE(MAILBOX, m)
        STORE(COUNT, i + 1)             # "message i is there"


def reader(taken, count):
    got = []
    for i in range(count):
        while LOAD(COUNT) <= i:         # spin until the writer counted it
            YIELD()
        got.append(LOAD(MAILBOX))
        ADVANCE(taken)
    return got
