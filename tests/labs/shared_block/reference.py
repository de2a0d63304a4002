"""The reference: two address spaces, the mailbox mapped "rw" for the writer and "r" for the
reader at page 1 of each, and a handshake of two eventcounts (a one-slot bounded buffer)."""

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
        AWAIT(taken, i - 1)             # the reader has taken the i messages before this one
        STORE(MAILBOX, m)
        ADVANCE(written)                # publishes the STORE


def reader(shared, count):
    written, taken = shared
    got = []
    for i in range(count):
        AWAIT(written, i)               # message i has been written
        got.append(LOAD(MAILBOX))
        ADVANCE(taken)                  # the slot is free again
    return got
