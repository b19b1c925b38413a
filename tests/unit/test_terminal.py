"""What the instructor reads while a class is graded: rich's bar on a terminal, plain lines in a
log, and nothing a submission wrote read as markup."""

import io

from rich.console import Console

from autograder.pipeline.submission import Outcome
from autograder.pipeline.terminal import Progress, after_grading

HOSTILE = "[bold red]forged[/bold red] [link=http://evil.example]click[/link] :smile:"


def outcomes() -> list[Outcome]:
    return [Outcome("ada", "lab1", True, seconds=1.5),
            Outcome("eve", "lab1", False, f"the notebook says {HOSTILE}"),
            Outcome("zoe", "lab1", True, seconds=2.0, overrides=[f"t1_step: overturned: {HOSTILE}"])]


def test_on_a_terminal_the_bar_counts_and_every_problem_is_printed_as_written():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200, color_system=None)
    progress = Progress(3, console=console)
    assert progress.bar is not None
    for outcome in outcomes():
        progress.add(outcome)
    progress.summary()
    text = screen.getvalue()
    assert f"lab1 eve: NOT GRADED: the notebook says {HOSTILE}  [2/3]" in text
    assert f"    t1_step: overturned: {HOSTILE}" in text
    assert "3/3" in text and "1 not graded" in text  # the bar's last state
    assert "lab1 ada: graded" not in text  # a unit graded without a problem only moves the bar


def test_in_a_log_each_unit_is_one_line_and_the_summary_names_what_was_not_graded():
    lines = []
    progress = Progress(3, log=lines.append, console=Console(file=io.StringIO(), force_terminal=True))
    assert progress.bar is None  # a log of its own: plain lines
    for outcome in outcomes():
        progress.add(outcome)
    progress.summary()
    assert lines[0] == "lab1 ada: graded (1.5 s)  [1/3]"
    assert lines[1] == f"lab1 eve: NOT GRADED: the notebook says {HOSTILE}  [2/3]"
    assert lines[-2].startswith("graded 2 of 3 submission(s) in ")
    assert lines[-1] == f"not graded (1): the notebook says {HOSTILE}: lab1 eve"


def test_the_bar_names_each_phase_and_a_log_gets_a_line_for_each():
    screen = io.StringIO()
    progress = Progress(2, console=Console(file=screen, force_terminal=True, width=200, color_system=None))
    progress.bar.refresh()
    assert "starting" in screen.getvalue()  # before the first unit: the service and the lab gradebooks
    progress.phase("grading again alone", "1 submission(s) that hit a time limit")
    progress.bar.refresh()
    assert "grading again alone" in screen.getvalue().rsplit("starting", 1)[1]
    progress.summary()
    lines = []
    progress = Progress(2, log=lines.append)
    progress.phase("grading", "2 submission(s), 6 at a time")
    assert lines == ["grading: 2 submission(s), 6 at a time"]


def test_after_grading_a_terminal_shows_what_is_being_written_and_a_log_gets_nothing():
    screen = io.StringIO()
    with after_grading("lab1: the grade table", Console(file=screen, force_terminal=True, color_system=None)):
        pass
    assert "lab1: the grade table ..." in screen.getvalue()
    quiet = io.StringIO()
    with after_grading("lab1: the grade table", Console(file=quiet)):
        pass
    assert quiet.getvalue() == ""
