"""Sum the JUnit XML reports of a CI run into its last line: `ci: N passed, M failed[, K skipped]`.

Every phase of `.ci/run` (pytest, schemathesis) writes a report into one directory; a phase that
never ran writes none and counts nothing. Errors count as failures.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def counts(report: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) of one JUnit report; (0, 1, 0) when it cannot be read."""
    try:
        root = ElementTree.parse(report).getroot()
    except (ElementTree.ParseError, OSError):
        return 0, 1, 0
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        outcomes = {child.tag for child in case}
        if outcomes & {"failure", "error"}:
            failed += 1
        elif "skipped" in outcomes:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def summary(directory: Path) -> str:
    passed = failed = skipped = 0
    for report in sorted(directory.glob("*.xml")):
        p, f, s = counts(report)
        passed, failed, skipped = passed + p, failed + f, skipped + s
    line = f"ci: {passed} passed, {failed} failed"
    return f"{line}, {skipped} skipped" if skipped else line


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))
