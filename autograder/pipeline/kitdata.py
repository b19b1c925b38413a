"""Write the student kit's data of expected visible outputs from the grader's declarations.

`course/expected/<lab>.json` holds, for each graded function, the visible probes with the
right output and what each known mistake gives, and for each prediction table the truth of
every key. The kit compares with this data, so it needs no reference implementation; a test
checks the committed files equal a fresh `write`.
"""

import json
from pathlib import Path

import course.checks

from ..labs import load


def render(lab: str) -> str:
    """The kit data of one lab, as the exact text of its JSON file."""
    return json.dumps(load(lab).kit_data(), indent=1, ensure_ascii=False) + "\n"


def write(lab: str) -> Path:
    """Write course/expected/<lab>.json (only when its text changes); return the path."""
    path = course.checks.EXPECTED_DIR / f"{lab}.json"
    text = render(lab)
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    return path
