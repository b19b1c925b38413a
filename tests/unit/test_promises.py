"""What the README promises, pinned with numbers written here (not read from the code)."""

import importlib
import json
import math
import random
import re

import pytest

from autograder.pipeline import newlab, notebooks
from course.answers import Expected, diagnose_all

from helpers import NUMBERED_LABS, REPO

README = (REPO / "README.md").read_text()
IDS = [f"student{i}" for i in range(150)] + ["ada", "zoë", "a.b-c", "anonymous"]


def test_the_readme_states_the_tolerance_and_the_separation_tested_here():
    assert "relative error of 2·10⁻³" in README and "at least ten times further away" in README


@pytest.mark.parametrize("value", [1.234, -0.02403, 812.5])
def test_hand_answers_within_2e_minus_3_relative_pass_and_beyond_it_fail(value):
    right = Expected("v", value, "hint")
    for inside in (1 + 1.9e-3, 1 - 1.9e-3):
        assert right.diagnose(value * inside) is None
    for outside in (1 + 2.2e-3, 1 - 2.2e-3):
        assert right.diagnose(value * outside) is not None


def test_four_significant_digits_are_always_enough():
    for value in (0.2403, 1.000449, 123.456, -9.87654e-3):
        assert Expected("v", value, "").diagnose(float(f"{value:.4g}")) is None


def far_apart(a: float, b: float) -> bool:
    """Ten tolerances apart: 10 · (2·10⁻³ · the larger magnitude + 10⁻⁶)."""
    return abs(a - b) > 10 * (2e-3 * max(abs(a), abs(b)) + 1e-6)


def test_a_near_miss_within_2_percent_is_called_one_and_a_slip_typed_to_4_digits_is_still_named():
    from course.answers import HAND_RTOL, NEAR_MISS, NEAR_TOLERANCES, Expected

    assert NEAR_TOLERANCES * HAND_RTOL == pytest.approx(0.02)
    sigmoid_slope = Expected("dyhat_dm2", 0.13842, "σ'(m2) = ŷ(1 − ŷ).", {"used m2·(1 − m2)": 0.1413})
    assert sigmoid_slope.mistake(0.138) == NEAR_MISS  # 0.3 % off: precision, not a misconception
    assert sigmoid_slope.mistake(0.1359) == NEAR_MISS  # 1.8 % off
    assert "type at least 4 significant digits" in sigmoid_slope.diagnose(0.138)
    # a slip 2.1 % away, typed one tolerance towards the truth (inside the band), is still the slip
    assert sigmoid_slope.mistake(0.1413) == sigmoid_slope.mistake(0.1411) == "used m2·(1 − m2)"
    assert sigmoid_slope.mistake(0.13842) is None
    assert sigmoid_slope.mistake(0.1) == ""  # far off and no known slip


@pytest.mark.parametrize("lab", notebooks.labs())
def test_every_named_mistake_is_ten_tolerances_from_the_right_answer_for_every_student(lab):
    """Ten tolerances (2 %, the near-miss band) or more, on every student's numbers: a named
    misconception is never a value the band would call a near miss."""
    kit = importlib.import_module(f"course.{lab}")
    for student in IDS:
        for expected in kit.check.expected_answers(student).values():
            if isinstance(expected.value, list):
                for slip, wrong in expected.slips.items():
                    assert any(far_apart(a, b) for a, b in zip(wrong, expected.value, strict=True)), (student, expected.name, slip)
                continue
            for slip, wrong in expected.slips.items():
                assert far_apart(wrong, expected.value), (lab, student, expected.name, slip)


# Two families of ids: before Lab 4's draw checked the rounded path itself, 4 of s0..s1499 failed it.
ROUNDING_IDS = [f"student{i}" for i in range(1000)] + [f"s{i}" for i in range(1500)]


def significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def lab4_rounded_answers(x1, w1, w2, y, **_):
    """Task 2 as a careful student does it: every intermediate written down to 4 digits."""
    m1 = significant(x1 * w1)
    r = max(m1, 0.0)
    m2 = significant(r * w2)
    yhat = significant(1 / (1 + math.exp(-m2)))
    s = significant(yhat - y)
    dloss_ds, dyhat_dm2 = significant(2 * s), significant(yhat * (1 - yhat))
    return {"m1": m1, "r": r, "m2": m2, "yhat": yhat, "s": s, "loss": significant(s * s),
            "dloss_ds": dloss_ds, "ds_dyhat": 1.0, "dyhat_dm2": dyhat_dm2, "dm2_dw2": r, "dm2_dr": w2,
            "dr_dm1": 1.0 if m1 > 0 else 0.0, "dm1_dw1": x1,
            "dloss_dw2": significant(dloss_ds * dyhat_dm2 * r), "dloss_dw1": significant(dloss_ds * dyhat_dm2 * w2 * x1)}


@pytest.mark.slow  # a sweep or a subprocess: `make test` runs it, `make check` does not
def test_rounding_every_intermediate_to_4_digits_passes_lab4_for_every_student():
    from course import lab4

    failing = []
    for student in ROUNDING_IDS:
        numbers = lab4.student_numbers(student)
        expected = lab4.check.expected_answers(student)
        answers = lab4_rounded_answers(**numbers)
        if diagnose_all(answers, [expected[name] for name in answers], student):
            failing.append((student, numbers))
    assert not failing, failing[:5]


def test_the_readme_names_the_rounding_promise():
    assert re.search(r"rounding of intermediate values included", README)


def lab2_rounded_answers(x4, y4, w4, **_):
    """Lab 2's squared error as a careful student does it, 4 digits at every step."""
    yhat = significant(x4 * w4)
    s = significant(yhat - y4)
    dloss_ds = significant(2 * s)
    return {"yhat": yhat, "s": s, "loss": significant(s * s), "dloss_ds": dloss_ds, "ds_dyhat": 1.0,
            "dyhat_dw": x4, "dloss_dw": significant(dloss_ds * x4)}


def lab4_graph_rounded_answers(gx, gy, gz, **_):
    """Lab 4's f = tanh(ln(1 + z·2x/sin y)) as a careful student does it, 4 digits at every step."""
    a = significant(2 * gx)
    b = significant(math.sin(gy))
    c = significant(a / b)
    d = significant(1 + gz * c)
    e = significant(math.log(d))
    f = significant(math.tanh(e))
    df_de, de_dd = significant(1 - f * f), significant(1 / d)
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f,
            "df_dx": significant(df_de * de_dd * gz * significant(1 / b) * 2),
            "df_dy": significant(df_de * de_dd * gz * significant(-a / b ** 2) * significant(math.cos(gy))),
            "df_dz": significant(df_de * de_dd * c)}


def lab5_rounded_answers(logits, target, **_):
    """Lab 5's cross-entropy step as a careful student does it, 4 digits at every step."""
    exps = [significant(math.exp(v)) for v in logits]
    total = significant(sum(exps))
    p = [significant(v / total) for v in exps]
    return {"ce_loss": significant(significant(math.log(total)) - logits[target]),
            **{f"ce_grad_{i}": significant(p[i] - (i == target)) for i in range(3)}}


@pytest.mark.slow  # a sweep or a subprocess: `make test` runs it, `make check` does not
@pytest.mark.parametrize("lab, rounded", [("lab2", lab2_rounded_answers), ("lab4", lab4_graph_rounded_answers),
                                            ("lab5", lab5_rounded_answers)])
def test_rounding_every_intermediate_to_4_digits_passes_for_every_student(lab, rounded):
    kit = importlib.import_module(f"course.{lab}")
    failing = []
    for student in ROUNDING_IDS:
        numbers = kit.student_numbers(student)
        expected = kit.check.expected_answers(student)
        answers = rounded(**numbers)
        problems = diagnose_all(answers, [expected[name] for name in answers], student)
        if problems:
            failing.append((student, numbers, problems[0]))
    assert not failing, (len(failing), failing[:3])


def same_pick_chance(choices: int) -> float:
    """The chance that two digests pick the same one of `choices` (identity.pick_all: 2 bytes, mod)."""
    counts = [65536 // choices + (v < 65536 % choices) for v in range(choices)]
    return sum((c / 65536) ** 2 for c in counts)


@pytest.mark.parametrize("lab", NUMBERED_LABS)
def test_two_students_of_a_class_of_1000_share_numbers_with_a_chance_under_1_percent(lab):
    """Measured: the chance one pick from each grid repeats, over the share of picks accepted."""
    kit = importlib.import_module(f"course.{lab}")
    draws = random.Random(0)
    accepted = sum(kit.acceptable(kit.draw(draws.randbytes(32))) for _ in range(1000)) / 1000
    same = math.prod(same_pick_chance(len(choices)) for choices in kit.GRIDS.values()) / accepted
    pairs = math.comb(1000, 2)
    assert 1 - math.exp(-pairs * same) < 0.01
    numbers = [json.dumps(kit.student_numbers(f"student{i}")) for i in range(1000)]
    assert len(set(numbers)) == 1000


@pytest.mark.parametrize("lab", notebooks.labs())
def test_what_autograd_or_observation_can_answer_carries_at_most_a_third_of_the_points(lab):
    """What autograd or observation can answer for a student (numbers worked out by hand and
    tables of predictions) is worth at most a third of a lab's autograded points: those cells are
    for checking yourself; the formulas and functions are the assessment. The README states each
    lab's share and the notebook says so at the top."""
    from autograder.labs import load

    checks = load(lab)
    nb = notebooks.instructor_notebook(lab)
    points = {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"] for c in nb.cells
              if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}
    answerable = sum(points[grade_id] for grade_id, check in checks.checks.items() if check.kind in ("values", "table"))
    total = sum(points[grade_id] for grade_id in checks.checks)
    assert answerable * 3 <= total, (answerable, total)
    assert f"{newlab.title(lab)}: {answerable:g} of {total:g}" in (REPO / "README.md").read_text(), \
        f"state it in README.md, beside the other labs' shares: {newlab.title(lab)}: {answerable:g} of {total:g}"
    top = " ".join(cell.source for cell in nb.cells[:3] if cell.cell_type == "markdown")
    assert not answerable or "for checking yourself" in top and "at most a third" in top, lab


@pytest.mark.parametrize("lab", notebooks.labs())
def test_a_notebook_that_derives_nothing_scores_no_derivation_and_the_readme_says_what_it_keeps(lab):
    """Each lab's `lazy` example answers every cell without deriving (autograd for the numbers,
    tables by running them, numerical derivatives, complex steps and lookups in the formulas,
    autograd where the task forbids it, one batch for micro-batches). Every formula, and every
    function read for the task's rule, scores 0 (`tests/pipeline/test_pipeline.py` grades the
    examples for real), so that what it keeps is at most a third of the lab's autograded points;
    the README states it, per lab."""
    from autograder.labs import FormulaCheck, FunctionCheck, load
    from autograder.pipeline import examples

    checks = load(lab)
    expected = examples.load(lab)["lazy"]["expected"]
    derived = [grade_id for grade_id, check in checks.checks.items()
               if isinstance(check, FormulaCheck) or isinstance(check, FunctionCheck) and check.answer_cell]
    assert derived or lab == "lab3"
    assert all(expected[grade_id] == 0 for grade_id in derived), expected
    nb = notebooks.instructor_notebook(lab)
    total = sum(c.metadata.nbgrader["points"] for c in nb.cells
                if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"))
    kept = sum(expected.values())
    assert kept * 3 <= total, (kept, total)  # a third at most: the derivations carry the rest
    assert f"{newlab.title(lab)}: {kept:g} of {total:g} without deriving" in (REPO / "README.md").read_text(), \
        f"state it in README.md: {newlab.title(lab)}: {kept:g} of {total:g} without deriving"
