"""Live sync across tabs and instances: who waits for an owner's changes, how they are woken.

A write wakes the owner's streams in its own process at once and, on PostgreSQL, every other
process through LISTEN/NOTIFY. A wake-up carries no data: a woken stream reads what it has not
seen from the change log, so a lost notification only delays an event, never loses one.
"""
