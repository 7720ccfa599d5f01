"""Live sync across tabs and instances: who waits for an owner's changes, how they hear of them.

A write wakes the owner's streams in its own process and, on PostgreSQL, every other process
through LISTEN/NOTIFY. A wake-up carries no data: the owner's streams in a process read what
they have not seen from the change log, once for all of them, so a lost notification only delays
an event, never loses one. Their tokens are checked together, never one stream at a time.
"""
