"""Similar code in a lab's class: which students' answer cells look alike, for the instructor to read.

Each answer cell where students write code (a function, a formula, an engine: its released
scaffold holds a `def` or a `class`) is compared between every two students with copydetect,
which implements the winnowing of MOSS: code is tokenized, names become placeholders (so a
rename changes nothing), and fingerprints of the result (hashes of 25-character runs, a few
chosen per window) are compared. The released scaffold's fingerprints are left out, since
everyone starts from it. Students who wrote exactly
the same code form a group at once; two different answers join their writers' groups where both
share at least `THRESHOLD` of their fingerprinted code, with a side-by-side page that marks what
they share.

Similarity is evidence to look at, not proof: two students who write the obvious closed form
may write it alike. Measured on the examples: the closest honest pair (two derivations of Lab
4's Task 2, one written from the other's template) shares 58%; a copy with renamed variables
and an added comment, 100%.
"""

import html
import io
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .layout import Layout, whole_file

NOISE, GUARANTEE = 25, 30  # copydetect's defaults: 25-character k-grams of tokenized code; a shared run of 30 is found
THRESHOLD = 0.8  # of each answer's fingerprinted code, shared with the other's
CODE_CELL = re.compile(r"^\s*(def|class)\s", re.MULTILINE)
POLICY = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
CAVEAT = "Similarity is evidence to look at, not proof: short answers written independently can look alike."


@dataclass(frozen=True)
class Pair:
    """Two different answers in one cell that share most of their code, each by the first (in
    id order) of the students who wrote it."""

    cell: str
    first: str
    second: str
    shared: tuple[float, float]  # of each one's fingerprinted code
    page: Path  # the side-by-side view


@dataclass
class Similar:
    """A lab's answers that look shared: `same`, {cell: [students who wrote exactly the same
    code]} (two or more each), and `pairs`, different answers that share most of their code."""

    same: dict[str, list[list[str]]]
    pairs: list[Pair]

    def groups(self) -> list[tuple[str, list[str]]]:
        """(cell, students) for each group joined by the same code or by a similar pair, in cell
        order: a formula passed around a class is one group, not every pair of its members."""
        found = []
        for cell in sorted(set(self.same) | {pair.cell for pair in self.pairs}):
            members = [set(students) for students in self.same.get(cell, [])]
            for pair in (p for p in self.pairs if p.cell == cell):
                joined = [group for group in members if pair.first in group or pair.second in group]
                for group in joined:
                    members.remove(group)
                members.append(set().union({pair.first, pair.second}, *joined))
            found += [(cell, sorted(group)) for group in sorted(members, key=sorted)]
        return found


def code_cells(release: Path) -> dict[str, str]:
    """{grade id: released scaffold} of the answer cells where students write code."""
    nb = nbformat.read(release, as_version=4)
    return {c.metadata.nbgrader["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution") and CODE_CELL.search(c.source)}


def answers(root: Path, lab: str, students: list[str], cells: dict[str, str]) -> dict[str, dict[str, str]]:
    """{grade id: {student: code}} from the graded notebooks; a scaffold left as released is no answer."""
    found: dict[str, dict[str, str]] = {cell: {} for cell in cells}
    for student in students:
        path = Layout(root).notebook("autograded", lab, student)
        if not path.is_file():
            continue
        # the grader's own graded notebook: read as JSON, not validated again (a third of the time)
        for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            source = "".join(cell.get("source", ""))
            if grade_id in cells and source.strip() != cells[grade_id].strip():
                found[grade_id][student] = source
    return found


def similar_work(root: Path, lab: str, students: list[str], out: Path) -> Similar:
    """The students who wrote the same code in an answer cell, and every two different answers
    that share at least THRESHOLD of their code (most similar first), each pair with a
    side-by-side page written under `out`, all listed in `out`/index.html. Each different answer
    is fingerprinted once, and a pair is compared only where their fingerprints overlap enough to
    reach the threshold: a class that writes the expected formula alike costs one fingerprint."""
    cells = code_cells(Layout(root).notebook("release", lab))
    similar = Similar({}, [])
    for cell, by_student in answers(root, lab, students, cells).items():
        writers: dict[str, list[str]] = {}  # {code: the students who wrote it}, each list in id order
        for student, code in sorted(by_student.items()):
            writers.setdefault(code.strip(), []).append(student)
        if same := [names for names in writers.values() if len(names) > 1]:
            similar.same[cell] = same
        if len(writers) > 1:
            similar.pairs += alike(lab, cell, cells[cell], {names[0]: code for code, names in writers.items()}, out)
    similar.pairs.sort(key=lambda pair: (-min(pair.shared), pair.cell, pair.first, pair.second))
    if similar.pairs or similar.same:
        index_page(out / "index.html", lab, similar)
    return similar


def alike(lab: str, cell: str, scaffold: str, codes: dict[str, str], out: Path) -> list[Pair]:
    """The pairs of `codes` ({student: code}, all different) that share at least THRESHOLD."""
    from copydetect import CodeFingerprint, compare_files  # imports matplotlib: only when there is work

    window = GUARANTEE - NOISE + 1
    # every k-gram of the scaffold (a window of 1), as copydetect takes its boilerplate
    boilerplate = sorted(CodeFingerprint("scaffold.py", NOISE, 1, fp=io.StringIO(scaffold), language="python").hashes)
    prints = {student: CodeFingerprint(f"{student}.py", NOISE, window, boilerplate=boilerplate, fp=io.StringIO(code),
                                       language="python") for student, code in codes.items()}
    pairs = []
    for first, second in itertools.combinations(prints, 2):
        a, b = prints[first].hashes, prints[second].hashes
        if not a or not b or len(a & b) < THRESHOLD / 2 * min(len(a), len(b)):
            continue  # too few shared fingerprints to share THRESHOLD of the code
        _, shared, slices = compare_files(prints[first], prints[second])
        if min(shared) >= THRESHOLD:
            page = out / f"{cell}-{first}-{second}.html"
            side_by_side(page, lab, cell, (first, second), (codes[first], codes[second]), slices, shared)
            pairs.append(Pair(cell, first, second, (float(shared[0]), float(shared[1])), page))
    return pairs


def index_page(page: Path, lab: str, similar: Similar) -> None:
    """A page listing who wrote the same code, and linking every similar pair's side-by-side view."""
    rows = [f"<li>{html.escape(cell)}: the same code from {', '.join(map(html.escape, names))}</li>"
            for cell, groups in sorted(similar.same.items()) for names in groups]
    rows += [f"<li>{html.escape(p.cell)}: <a href=\"{html.escape(p.page.name)}\">{html.escape(p.first)} and "
             f"{html.escape(p.second)}</a>, {p.shared[0]:.0%} and {p.shared[1]:.0%} shared</li>" for p in similar.pairs]
    page.parent.mkdir(parents=True, exist_ok=True)
    with whole_file(page) as partial:
        partial.write_text(
            f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">{POLICY}<title>{html.escape(lab)}: similar code"
            f"</title></head><body><h1>{html.escape(lab)}: answers that share most of their code</h1><p>{CAVEAT} "
            "A pair's page names the first of the students who wrote each answer.</p>"
            f"<ul>{''.join(rows)}</ul></body></html>\n")


def side_by_side(page: Path, lab: str, cell: str, students: tuple[str, str], codes: tuple[str, str], slices,
                 shared) -> None:
    """A page with both answers next to each other, what they share marked. Everything a student
    wrote is escaped: the page has no markup of theirs and no script at all."""
    from copydetect.utils import highlight_overlap

    columns = []
    for student, code, cut, part in zip(students, codes, slices, shared, strict=True):
        marked, _ = highlight_overlap(code, cut, "<mark>", "</mark>", escape_html=True)
        columns.append(f"<section><h2>{html.escape(student)}: {part:.0%} shared</h2><pre>{marked}</pre></section>")
    page.parent.mkdir(parents=True, exist_ok=True)
    with whole_file(page) as partial:
        partial.write_text(
            f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">{POLICY}"
            f"<title>{html.escape(lab)} {html.escape(cell)}: {' and '.join(map(html.escape, students))}</title>"
            "<style>body{font-family:sans-serif} main{display:flex;gap:1em} section{flex:1;min-width:0}"
            "pre{background:#f6f6f6;padding:.5em;overflow-x:auto} mark{background:#ffd966}</style></head><body>"
            f"<h1>{html.escape(lab)}, {html.escape(cell)}</h1><p>Marked: code the two answers share, after names "
            f"are replaced by placeholders (copydetect's winnowing). {CAVEAT}</p>"
            f"<main>{''.join(columns)}</main></body></html>\n")
