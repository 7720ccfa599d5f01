"""Database plumbing beside `db.py`: URL parsing, column types, schema comparison.

Nothing here imports the application's own modules.
"""
