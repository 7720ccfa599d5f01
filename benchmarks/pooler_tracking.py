"""Yardstick target: the project behind a PgBouncer that tracks prepared statements
(`pooler_targets.py`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pooler_targets import target

globals().update(target(track=True))
