"""The out-of-kernel verification on a graded notebook: passed cells whose data fails lose their points."""

import nbformat

from autograder import verification
from course.checks import ANSWERS_MIME

from conftest import REPO


def answers_output(payload: dict):
    return nbformat.v4.new_output("display_data", data={ANSWERS_MIME: payload, "text/plain": ""})


def graded_notebook(tmp_path, outputs: dict):
    """Lab 4's release, as if graded, with the given outputs on its test cells."""
    nb = nbformat.read(REPO / "release" / "lab4" / "lab4.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.id in outputs:
            cell.outputs = outputs[cell.id]
    folder = tmp_path / "autograded" / "ada" / "lab4"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "lab4.ipynb")
    return folder


RIGHT = {"lab": "lab4", "kind": "values", "name": "yhat s loss", "hidden": False,
         "data": {"yhat": 2.0, "s": 1.0, "loss": 1.0}}


def test_a_passed_cell_with_right_data_keeps_its_points(tmp_path):
    folder = graded_notebook(tmp_path, {"t1_forward": [answers_output(RIGHT)]})
    result = {"grades": {("lab4", "t1_forward"): 1.0, ("lab4", "t1_backward"): 0.0}}
    assert verification.audit(folder, "lab4", "ada", result) == []
    assert result["grades"] == {("lab4", "t1_forward"): 1.0, ("lab4", "t1_backward"): 0.0}


def test_a_passed_cell_whose_data_fails_loses_its_points_and_says_why(tmp_path):
    wrong = {**RIGHT, "data": {"yhat": 2.0, "s": 1.0, "loss": 2.0}}
    folder = graded_notebook(tmp_path, {"t1_forward": [answers_output(wrong)], "t1_backward": []})
    result = {"grades": {("lab4", "t1_forward"): 1.0, ("lab4", "t1_backward"): 2.0}}
    overturned = verification.audit(folder, "lab4", "ada", result)
    assert result["grades"] == {("lab4", "t1_forward"): 0.0, ("lab4", "t1_backward"): 0.0}
    assert [line.split(":")[0] for line in overturned] == ["t1_forward", "t1_backward"]
    nb = nbformat.read(folder / "lab4.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.id == "t1_forward"]
    assert cell.outputs[-1].ename == "RecheckFailed" and "`loss` = 2 is not right" in cell.outputs[-1].evalue


def test_a_failed_cell_is_left_as_nbgrader_scored_it(tmp_path):
    folder = graded_notebook(tmp_path, {"t1_forward": []})
    result = {"grades": {("lab4", "t1_forward"): 0.0}}
    assert verification.audit(folder, "lab4", "ada", result) == []
    assert result["grades"] == {("lab4", "t1_forward"): 0.0}


def test_the_kit_publishes_inside_ipython_and_stays_quiet_outside(capsys):
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    from course.checks import publish

    publish(RIGHT)  # a plain interpreter: nothing to attach it to, and no error
    assert capsys.readouterr().out == ""
    seen = []

    class Capture(DisplayPublisher):
        def publish(self, data, metadata=None, **kwargs):
            seen.append(data)

    shell = InteractiveShell.instance()
    shell.display_pub = Capture(shell=shell)
    try:
        publish(RIGHT)
    finally:
        InteractiveShell.clear_instance()
    assert seen == [{ANSWERS_MIME: RIGHT, "text/plain": ""}]
