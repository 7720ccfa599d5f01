"""Yardstick target: the project as the README and the container run it (`http_targets.py`).
The yardstick imports targets with its own interpreter, which has no uvicorn: the options are
spelled here as `web.protocol.UVICORN_OPTIONS` has them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_targets import target

globals().update(
    target(
        "--http",
        "web.protocol:BoundedHTTPProtocol",
        description="the project, --http web.protocol:BoundedHTTPProtocol",
    )
)
