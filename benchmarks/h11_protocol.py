"""Yardstick target: the project on uvicorn's h11 parser, for comparison (`http_targets.py`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_targets import target

globals().update(target("--http", "h11", description="the project, --http h11"))
