"""Yardstick target: the project with METRICS_ENABLED=true (`metrics_targets.py`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_targets import target

globals().update(target("the project, METRICS_ENABLED=true"))
