"""Write the student kit's data of expected visible outputs from the grader's declarations.

`course/expected/<lab>.json` holds, for each graded function, the visible probes with the
right output and what each known mistake gives, and for each prediction table the truth of
every key. The kit compares with this data, so it needs no reference implementation; a test
checks the committed files agree with a fresh `render`.

The numbers come from torch in float64, whose last bits differ between CPUs (vectorised and
plain loops round differently): two renderings agree when every number matches to
`REL_TOL`, far below any grading tolerance, and a file that agrees is never rewritten.
"""

import json
import math
from pathlib import Path

import course.checks

from ..labs import load

REL_TOL = 1e-9


def render(lab: str) -> str:
    """The kit data of one lab, as the exact text of its JSON file."""
    return json.dumps(load(lab).kit_data(), indent=1, ensure_ascii=False) + "\n"


def agree(a, b) -> bool:
    """Whether two kit data trees are the same, numbers compared to REL_TOL."""
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
                and not isinstance(b, bool) and math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-300))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(agree(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(agree(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def up_to_date(lab: str) -> bool:
    """Whether course/expected/<lab>.json agrees with what the grader's declarations give."""
    path = course.checks.EXPECTED_DIR / f"{lab}.json"
    return path.exists() and agree(json.loads(path.read_text()), json.loads(render(lab)))


def write(lab: str) -> Path:
    """Write course/expected/<lab>.json (only when it no longer agrees); return the path."""
    path = course.checks.EXPECTED_DIR / f"{lab}.json"
    if not up_to_date(lab):
        path.parent.mkdir(exist_ok=True)
        path.write_text(render(lab))
    return path
