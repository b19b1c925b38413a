"""The bundled example submissions: examples/<lab>.toml → submitted/<student>/<lab>/.

Each example is the released notebook with some answer cells filled in, so the
examples always match the current release.
"""

import tomllib
from pathlib import Path

import nbformat

from .layout import Layout
from .notebooks import ROOT


def load(lab: str, root: Path = ROOT) -> dict[str, dict]:
    """Every example of a lab, with `like = "other"` resolved into full answer sets."""
    raw = tomllib.loads((root / "examples" / f"{lab}.toml").read_text())

    def answers(student: str) -> dict[str, str]:
        entry = raw[student]
        inherited = answers(entry["like"]) if "like" in entry else {}
        return {**inherited, **entry.get("answers", {})}

    return {student: {**entry, "answers": answers(student)} for student, entry in raw.items()}


def fill(release: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of the release with the answer cells named in `answers` replaced."""
    nb = nbformat.from_dict(release)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    unknown = set(answers) - set(by_id)
    if unknown:
        raise KeyError(f"no answer cells named {sorted(unknown)}")
    for grade_id, text in answers.items():
        by_id[grade_id].source = text.strip("\n")
    return nb


def write_submissions(root: Path, lab: str) -> list[Path]:
    """Write every example of a lab under submitted/; returns the notebook paths."""
    layout = Layout(root)
    release = nbformat.read(layout.notebook("release", lab), as_version=4)
    paths = []
    for student, example in load(lab, root).items():
        out = layout.notebook("submitted", lab, student)
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(fill(release, example["answers"]), out)
        paths.append(out)
    return paths
