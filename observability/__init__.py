"""Seeing the service run: Prometheus metrics (`/metrics`, correct across uvicorn workers),
OpenTelemetry traces (only when asked for) and JSON log lines.

Below every other part but settings and the database plumbing, so each part can report what it
does (a one-line call to a metric object or function here) without knowing how it is published.
"""
