"""What the container runs (`Dockerfile`): the schema brought to head, then the server.

Nothing of the application imports this package; it sits beside `main.py` at the top.
"""
