"""What a task does, free of HTTP: listing, completion and recurrence, tags.

Routes (and every other caller) build task statements through these modules only.
"""
