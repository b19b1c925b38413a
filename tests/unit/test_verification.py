"""The out-of-kernel verification on a graded notebook: passed cells whose data fails lose their points."""

import nbformat
import pytest

from autograder import verification
from autograder.labs import load
from autograder.pipeline import sandbox, submission
from course import formulas, lab2
from course.answers import LINE_WIDTH
from course.protocol import ANSWERS_MIME, FORMULA_VERDICT_MIME, SUMMARY_CELL_ID

from helpers import REPO, SEED


def answers_output(payload: dict):
    return nbformat.v4.new_output("display_data", data={ANSWERS_MIME: payload, "text/plain": ""})


def graded_notebook(tmp_path, outputs: dict, lab: str = "lab4", sources: dict | None = None):
    """A lab's release (Lab 4's unless told), as if graded, with the given outputs on its test
    cells (and the given code in its answer cells)."""
    nb = nbformat.read(REPO / "release" / lab / f"{lab}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.id in outputs:
            cell.outputs = outputs[cell.id]
        cell.source = (sources or {}).get(cell.id, cell.source)
    folder = tmp_path / "autograded" / "ada" / lab
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{lab}.ipynb")
    return folder


def audited(folder, lab: str, student: str, result: dict, *args, run_formulas=sandbox.run_formulas):
    """`verification.audit` of the lab's notebook in `folder`, as the grader calls it."""
    executed = submission.read_executed([folder / f"{lab}.ipynb"])
    return verification.audit(executed, lab, student, result, run_formulas, SEED, *args)


def task4_payload(**changed) -> dict:
    """What Lab 2's Task 4 forward check publishes for ada's numbers (with `changed` values)."""
    n = lab2.student_numbers("ada")
    right = lab2.squared_error_values(n["x4"], n["y4"], n["w4"])
    return {"lab": "lab2", "kind": "values", "name": "yhat s loss", "hidden": False,
            "data": {k: right[k] for k in ("yhat", "s", "loss")} | changed}


def test_a_passed_cell_with_right_data_keeps_its_points(tmp_path):
    folder = graded_notebook(tmp_path, {"t4_forward": [answers_output(task4_payload())]}, lab="lab2")
    result = {"grades": {("lab2", "t4_forward"): 1.0, ("lab2", "t4_backward"): 0.0}}
    assert audited(folder, "lab2", "ada", result) == []
    assert result["grades"] == {("lab2", "t4_forward"): 1.0, ("lab2", "t4_backward"): 0.0}


def test_a_passed_cell_whose_data_fails_loses_its_points_and_says_why(tmp_path):
    folder = graded_notebook(tmp_path, {"t4_forward": [answers_output(task4_payload(loss=2.0))], "t4_backward": []},
                             lab="lab2")
    result = {"grades": {("lab2", "t4_forward"): 1.0, ("lab2", "t4_backward"): 2.0}}
    overturned = audited(folder, "lab2", "ada", result)
    assert result["grades"] == {("lab2", "t4_forward"): 0.0, ("lab2", "t4_backward"): 0.0}
    assert [line.split(":")[0] for line in overturned] == ["t4_forward", "t4_backward"]
    nb = nbformat.read(folder / "lab2.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.id == "t4_forward"]
    assert cell.outputs[-1].ename == "RecheckFailed" and "`loss` = 2 is not right" in cell.outputs[-1].evalue
    shown = cell.outputs[-1].traceback  # what a notebook, the formgrader and feedback show of an error
    assert "RecheckFailed" in shown[0] and "  - `loss` = 2 is not right. loss = s²." in shown
    assert max(map(len, shown[1:])) <= LINE_WIDTH  # wrapped, as the kit's own failures are


def test_a_failed_cell_is_left_as_nbgrader_scored_it(tmp_path):
    folder = graded_notebook(tmp_path, {"t1_forward": []})
    result = {"grades": {("lab4", "t1_forward"): 0.0}}
    assert audited(folder, "lab4", "ada", result) == []
    assert result["grades"] == {("lab4", "t1_forward"): 0.0}


def values_payload(grade_id: str, student: str, lab: str = "lab4", **changed) -> dict:
    """What a values cell publishes when it holds `student`'s right answers (but `changed`)."""
    checks = load(lab)
    name, expected = checks.checks[grade_id].name, checks.kit.expected_answers(student)
    data = {n: expected[n].value for n in name.split()} | changed
    return {"lab": lab, "kind": "values", "name": name, "hidden": False, "data": data}


def test_a_failed_cell_answered_on_a_classmates_numbers_says_so_and_names_them_to_the_instructor(tmp_path):
    folder = graded_notebook(tmp_path, {"t2_forward": [answers_output(values_payload("t2_forward", "ada"))]})
    result = {"grades": {("lab4", "t2_forward"): 0.0}}
    notes = audited(folder, "lab4", "copycat", result, ["ada", "copycat", "zoe"])
    assert notes == ["t2_forward: the answers are right for ada's numbers, not copycat's"]
    assert result["grades"] == {("lab4", "t2_forward"): 0.0}
    (cell,) = [c for c in nbformat.read(folder / "lab4.ipynb", as_version=4).cells if c.id == "t2_forward"]
    assert cell.outputs[-1].text == verification.COPIED and "ada" not in verification.COPIED


def test_answers_wrong_on_every_number_or_right_on_ones_own_get_no_copy_note(tmp_path):
    first = values_payload("t2_forward", "ada")
    slip = values_payload("t2_forward", "ada", **{next(iter(first["data"])): 123.0})
    for payload, student in ((slip, "copycat"), (first, "ada")):
        folder = graded_notebook(tmp_path / student, {"t2_forward": [answers_output(payload)]})
        result = {"grades": {("lab4", "t2_forward"): 0.0}}
        assert audited(folder, "lab4", student, result, ["ada", "copycat", "zoe"]) == []


def test_a_failed_prediction_table_gets_the_graders_verdict_on_each_entry(tmp_path):
    from course import lab2

    table = {"lab": "lab2", "kind": "table", "name": "can_require_grad", "hidden": False,
             "data": [[dtype, True] for dtype in lab2.DTYPES]}
    folder = graded_notebook(tmp_path, {"t2_dtypes": [answers_output(table)]}, lab="lab2")
    result = {"grades": {("lab2", "t2_dtypes"): 0.0}}
    assert audited(folder, "lab2", "ada", result) == []  # nothing overturned
    assert result["grades"] == {("lab2", "t2_dtypes"): 0.0}
    (cell,) = [c for c in nbformat.read(folder / "lab2.ipynb", as_version=4).cells if c.id == "t2_dtypes"]
    verdict = cell.outputs[-1]
    assert verdict.name == "stdout" and verdict.text.startswith("The grader's verdict, entry by entry:")
    assert "torch.int64: an error, not allowed." in verdict.text and verdict.text.count("  - ") == 3


def test_the_kit_publishes_inside_ipython_and_stays_quiet_outside(capsys):
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    from course.checks import publish

    publish(task4_payload())  # a plain interpreter: nothing to attach it to, and no error
    assert capsys.readouterr().out == ""
    seen = []

    class Capture(DisplayPublisher):
        def publish(self, data, metadata=None, **kwargs):
            seen.append(data)

    shell = InteractiveShell.instance()
    shell.display_pub = Capture(shell=shell)
    try:
        publish(task4_payload())
    finally:
        InteractiveShell.clear_instance()
    assert seen == [{ANSWERS_MIME: task4_payload(), "text/plain": ""}]


def test_feedback_and_the_formgrader_draw_no_empty_box_for_the_courses_data_outputs():
    """The formgrader renders graded notebooks with nbconvert's HTMLExporter, configured by the
    course's nbgrader_config.py (feedback runs the same preprocessor)."""
    from nbconvert import HTMLExporter
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", str(REPO)).load_config()
    assert "DropInvisibleOutputs" in [p.__name__ for p in config.GenerateFeedback.preprocessors]
    cell = nbformat.v4.new_code_cell("check.values(globals(), 'loss')", outputs=[
        answers_output(values_payload("t1_forward", "ada")),
        nbformat.v4.new_output("display_data", data={FORMULA_VERDICT_MIME: {"problems": []},
                                                     "text/plain": ""}),
        nbformat.v4.new_output("stream", name="stdout", text="✔ loss is right.\n")])
    page, _ = HTMLExporter(config=config).from_notebook_node(nbformat.v4.new_notebook(cells=[cell]))
    assert "✔ loss is right." in page and page.count('class="jp-OutputArea-child') == 1


def test_the_graded_notebook_starts_with_the_score_the_numbers_and_what_cost_points(tmp_path):
    from course import lab4

    slip = values_payload("t2_gradients", "ada")
    slip["data"]["dloss_dw2"] = -slip["data"]["dloss_dw2"]
    folder = graded_notebook(tmp_path, {"t2_forward": [answers_output(values_payload("t2_forward", "ada"))],
                                        "t2_gradients": [answers_output(slip)], "t2_local": []})
    tests = {("lab4", "t2_forward"): 2.0, ("lab4", "t2_gradients"): 3.0, ("lab4", "t2_local"): 2.0}
    result = {"grades": {("lab4", "t2_forward"): 2.0, ("lab4", "t2_gradients"): 0.0, ("lab4", "t2_local"): 0.0}}
    assert audited(folder, "lab4", "ada", result, ["ada"], tests) == []
    first = nbformat.read(folder / "lab4.ipynb", as_version=4).cells[0]
    assert first.id == SUMMARY_CELL_ID and first.cell_type == "markdown"
    text = first.source
    assert text.startswith("**Autograded: 2 of 7 points.**")
    assert lab4.show_numbers(lab4.student_numbers("ada"))[0].removeprefix("Your numbers: ") in text
    assert "- `t2_gradients` (0 of 3): `dloss_dw2`: flipped the sign" in text
    assert f"- `t2_local` (0 of 2): {verification.NOT_ANSWERED}" in text and "t2_forward`" not in text


def test_the_audit_writes_down_the_mistakes_it_summed_up_and_drops_any_record_the_kernel_left(tmp_path):
    slip = values_payload("t2_gradients", "ada")
    slip["data"]["dloss_dw2"] = -slip["data"]["dloss_dw2"]
    folder = graded_notebook(tmp_path, {"t2_gradients": [answers_output(slip)], "t2_local": []})
    planted = nbformat.read(folder / "lab4.ipynb", as_version=4)
    planted.metadata[verification.MISTAKES_KEY] = {"t2_gradients": ["nothing wrong"], "t9": ["<script>"]}
    nbformat.write(planted, folder / "lab4.ipynb")
    tests = {("lab4", "t2_gradients"): 3.0, ("lab4", "t2_local"): 2.0}
    result = {"grades": {("lab4", "t2_gradients"): 0.0, ("lab4", "t2_local"): 0.0}}
    audited(folder, "lab4", "ada", result, ["ada"], tests)
    written = nbformat.read(folder / "lab4.ipynb", as_version=4).metadata[verification.MISTAKES_KEY]
    assert written == {"t2_gradients": ["`dloss_dw2`: flipped the sign"], "t2_local": [verification.NOT_ANSWERED]}
    audited(folder, "lab4", "ada", {"grades": {}})  # without the tests' points there is no summary, and no record
    assert verification.MISTAKES_KEY not in nbformat.read(folder / "lab4.ipynb", as_version=4).metadata


@pytest.mark.parametrize("worked_as, note", [
    ("ada", "worked as `ada`, graded as `ada@uni.edu`: hand values were checked against `ada@uni.edu`'s numbers"),
    ("anonymous", "worked with no student id set (practice numbers), graded as `ada@uni.edu`"),
    ("ada@uni.edu", None), (None, None)])
def test_a_notebook_worked_under_another_id_says_so_first_and_keeps_it_for_the_report(tmp_path, worked_as, note):
    folder = graded_notebook(tmp_path, {"t2_local": []})
    planted = nbformat.read(folder / "lab4.ipynb", as_version=4)
    planted.metadata[verification.WORKED_AS_KEY] = "<b>the kernel's</b>"  # not the grader's: dropped
    nbformat.write(planted, folder / "lab4.ipynb")
    tests, result = {("lab4", "t2_local"): 2.0}, {"grades": {("lab4", "t2_local"): 0.0}}
    notes = audited(folder, "lab4", "ada@uni.edu", result, [], tests, worked_as)
    nb = nbformat.read(folder / "lab4.ipynb", as_version=4)
    if note is None:
        assert notes == [] and "**Note:**" not in nb.cells[0].source
        assert verification.WORKED_AS_KEY not in nb.metadata
    else:
        assert [line for line in notes if note in line] and f"**Note:** this notebook was {note}" in nb.cells[0].source
        assert nb.metadata[verification.WORKED_AS_KEY] == worked_as


def test_a_function_check_that_failed_in_the_notebook_is_summed_up_by_the_kits_own_words(tmp_path):
    visible = {"lab": "lab4b", "kind": "function", "name": "activation_grads", "hidden": False, "data": [[0.0]]}
    failed = nbformat.v4.new_output("error", ename="CheckFailed", traceback=[],
                                    evalue="\n  - relu_grad(-2, 0.5): expected 0 at a negative input\n")
    folder = graded_notebook(tmp_path, {"t3_activation_grads": [answers_output(visible), failed]}, lab="lab4b")
    tests, result = {("lab4b", "t3_activation_grads"): 2.0}, {"grades": {("lab4b", "t3_activation_grads"): 0.0}}
    audited(folder, "lab4b", "ada", result, ["ada"], tests)
    summary = nbformat.read(folder / "lab4b.ipynb", as_version=4).cells[0].source
    assert "- `t3_activation_grads` (0 of 2): relu_grad(-2, 0.5): expected 0 at a negative input" in summary
    assert "hand over" not in summary


SLIPPED_FORMULA = """import math

def gradients(x1, w1, w2, y):
    m1 = x1 * w1
    r = max(m1, 0.0)
    m2 = r * w2
    yhat = 1 / (1 + math.exp(-m2))
    up = 2 * (yhat - y) * yhat * (1 - yhat)
    return up * w2 * x1, up * r
"""


def test_a_formula_is_run_from_its_answer_cell_and_its_verdict_kept_for_the_feedback(tmp_path):
    """The kernel reported the formula as passed (as a tampered kit would); the answer cell's
    code, run by the grader, lets the gradient through a switched-off ReLU. The blank Task 1
    formula had failed in the notebook already: it keeps 0 and its verdict says why."""
    folder = graded_notebook(tmp_path, {"t2_formula": [], "t1_formula": []},
                             sources={"t2_formula_answer": SLIPPED_FORMULA})
    tests = {("lab4", "t2_formula"): 3.0, ("lab4", "t1_formula"): 2.0}
    result = {"grades": {("lab4", "t2_formula"): 3.0, ("lab4", "t1_formula"): 0.0}}
    notes = audited(folder, "lab4", "ada", result, ["ada"], tests)
    assert result["grades"] == {("lab4", "t2_formula"): 0.0, ("lab4", "t1_formula"): 0.0}
    assert notes == ["t2_formula: overturned by the out-of-kernel check: gradients(4, -0.5, 0.2, 1): it matches "
                     "what you get if you let the gradient through the ReLU where m1 ≤ 0."]
    summary = nbformat.read(folder / "lab4.ipynb", as_version=4).cells[0].source
    assert "- `t2_formula` (0 of 3): let the gradient through the ReLU where m1 ≤ 0\n" in summary
    assert "- `t1_formula` (0 of 2): not answered (the function still raises NotImplementedError)" in summary


def test_without_the_sandbox_a_formula_that_imports_torch_is_refused_unrun(tmp_path):
    folder = graded_notebook(tmp_path, {"t2_formula": []},
                             sources={"t2_formula_answer": "import torch\n" + SLIPPED_FORMULA})
    result = {"grades": {("lab4", "t2_formula"): 3.0}}
    (note,) = audited(folder, "lab4", "ada", result, run_formulas=formulas.evaluate)
    assert result["grades"] == {("lab4", "t2_formula"): 0.0}
    assert "line 1: the cell may hold only `import math` and the function `gradients`, not another import" in note



def test_a_function_checks_reference_and_mistakes_run_once_per_grading_process(monkeypatch):
    """Every submission of a class is judged on the same fixed probes: Lab 5's reference trains a
    model on each, which the grading process does once, not once per submission and judge."""
    from dataclasses import replace

    from autograder.labs import lab5
    train = lab5.train_reference
    trained = []
    monkeypatch.setattr(lab5, "train_reference", lambda **p: trained.append(p) or train(**p))
    check = replace(load("lab5").checks["t2_train"])  # a copy that has kept no output yet
    right = [train(**p) for p in check.visible]
    assert check.verify_data(right, "ada") == [] and check.verify_data(right, "grace") == []
    assert len(trained) == len(check.visible)  # each probe trained once, for both students

    never_cleared = [train(**{**p, "zero_grad": False}) for p in check.visible]
    trained.clear()
    first, second = check.verify_data(never_cleared, "ada"), check.verify_data(never_cleared, "grace")
    assert first == second and "never called optimizer.zero_grad()" in first[0].slip
    assert 0 < len(trained) <= len(check.mistakes_known) * len(check.visible)  # each mistake once, for both

    check.right(check.visible[0]).append(1.0)  # a judge that changes what it got changes nothing kept
    assert check.verify_data(right, "ada") == []
    assert check.verify_data([losses[:-1] for losses in right], "ada") != []
