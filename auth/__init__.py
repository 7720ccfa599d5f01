"""Accounts and tokens: password hashing, JWT issue/verification and the FastAPI dependencies."""
