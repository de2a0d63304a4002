"""Lab 7, the shared block (共享块).  Read handout.md first.

A writer thread sends three messages to a reader thread through a mailbox
in shared memory.  As written, both threads run in one address space and
share all of it, and they hand the messages over through a plain flag.
Give each its own address space, share only the mailbox (read-only for
the reader), and make the handshake safe.
Check it with `vos lab check shared_block mailbox.py`.
"""

from runtime.textbook import *  # noqa: F401,F403 - the lecture's calls: CREATE_ADDRESS_SPACE, MAP, ...

MAILBOX = 4096          # page 1: the message, word 0 of the mailbox block
FULL = MAILBOX + 8      # a flag: 1 while a message waits in the mailbox


def setup():
    """Thread 0 runs this once, before the threads start.  Return
    (the writer's address space, the reader's address space, shared):
    the writer runs in the first, the reader in the second, and both
    get `shared`."""
    space = CREATE_ADDRESS_SPACE()                       # one memory for both threads
    mailbox = ALLOCATE_BLOCK(4096, name="mailbox")
    MAP(space, mailbox, 1, "rw")
    return space, space, None


def writer(shared, messages):
    """Put the messages into the mailbox, one after another."""
    for m in messages:
        while LOAD(FULL) == 1:          # wait until the reader took the last one
            YIELD()
        STORE(MAILBOX, m)
        STORE(FULL, 1)


def reader(shared, count):
    """Take `count` messages out of the mailbox; return them in order."""
    got = []
    for _ in range(count):
        while LOAD(FULL) == 0:          # wait until a message is there
            YIELD()
        got.append(LOAD(MAILBOX))
        STORE(FULL, 0)
    return got
