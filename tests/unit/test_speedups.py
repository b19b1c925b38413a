"""The warm service's speed-ups inside a kernel (`speedups`, group "warm") change nothing a student or the grader sees."""

import subprocess
import sys

import pytest
import stack_data.core
from IPython.core import ultratb
from IPython.utils.PyColorize import theme_table

from autograder.pipeline import speedups
from helpers import REPO


def nested(depth: int):
    if depth == 0:
        values = [1,
                  2]
        return values[3]
    return nested(depth - 1)


def raises_from_torch():
    import torch
    return torch.ones(2).view(3)


def failing_assert():
    answer = {"a": 0.5}
    assert answer["a"] == 0.25, f"expected 0.25, got {answer['a']}"


def tracebacks() -> list[str]:
    """Every colour theme's rendering of a few errors, as a kernel formats them."""
    texts = []
    for call in (lambda: nested(3), raises_from_torch, failing_assert, lambda: 1 / 0):
        try:
            call()
        except Exception as error:
            for theme in theme_table:
                formatter = ultratb.AutoFormattedTB(mode="Context", theme_name=theme, tb_offset=0)
                texts.append("\n".join(formatter.structured_traceback(type(error), error, error.__traceback__)))
    return texts


def test_the_shared_traceback_lexer_colours_every_frame_as_stack_data_does(monkeypatch):
    stock = tracebacks()
    monkeypatch.setattr(stack_data.core, "_pygmented_with_ranges", speedups.traceback_highlighter())
    ours = tracebacks()
    assert len(ours) == len(stock) > 4
    assert ours == stock
    assert any("43mvalues\x1b[39;49m\x1b[30;43m[" in text for text in ours)  # the failing node is marked


def shell_errors(monkeypatch, patched: bool) -> list[tuple[str, str]]:
    """(shown, kept in history) tracebacks of a few failing cells in a real IPython shell, and how
    many times the shell's traceback formatter did the work."""
    import contextlib
    import io

    from IPython.core.interactiveshell import InteractiveShell

    formatted = []
    original = ultratb.AutoFormattedTB.structured_traceback

    def counted(*args, **kwargs):
        formatted.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(ultratb.AutoFormattedTB, "structured_traceback",
                        speedups.formatted_once(counted) if patched else counted)
    shell, pairs = InteractiveShell.instance(), []
    try:
        for cell in ("def f(n):\n    return [1, 2][n]\nf(3)", "1 / 0", "%xmode Plain", "undefined_name",
                     "%xmode Context", "import torch\ntorch.ones(2).view(3)"):
            shown = io.StringIO()
            with contextlib.redirect_stdout(shown):
                result = shell.run_cell(cell, store_history=True)
            if result.error_in_exec is not None:
                kept = shell.history_manager.exceptions[shell.execution_count - 1]["traceback"]
                pairs.append((shown.getvalue(), "\n".join(kept)))
    finally:
        InteractiveShell.clear_instance()  # later tests run outside IPython
    return pairs, len(formatted)


def test_an_error_is_formatted_once_and_shown_and_kept_exactly_as_before(monkeypatch):
    stock, stock_calls = shell_errors(monkeypatch, patched=False)
    ours, our_calls = shell_errors(monkeypatch, patched=True)
    assert len(stock) == 4 and stock_calls == 8 and our_calls == 4
    assert [kept for _, kept in ours] == [kept for _, kept in stock]
    assert [shown for shown, _ in ours] == [shown for shown, _ in stock]
    assert "IndexError" in ours[0][1] and "Traceback" in ours[2][1] and "view" in ours[3][1]


def test_a_second_call_with_anything_different_is_formatted_afresh():
    calls = []

    def fake(self, etype, evalue, etb=None, tb_offset=None, context=5):
        calls.append((tb_offset, context, self.mode))
        return [f"{etype.__name__} {tb_offset} {context} {self.mode}"]

    once = speedups.formatted_once(fake)
    formatter = ultratb.AutoFormattedTB(mode="Context", tb_offset=1)
    error = ValueError("x")
    assert once(formatter, ValueError, error, None) == once(formatter, ValueError, error, None, tb_offset=1)
    assert len(calls) == 1
    once(formatter, ValueError, error, None)
    once(formatter, ValueError, error, None, context=3)  # another context
    once(formatter, ValueError, error, None)
    formatter.mode = "Plain"
    once(formatter, ValueError, error, None)  # another setting
    once(formatter, ValueError, ValueError("x"), None)  # another exception
    assert len(calls) == 6


def test_a_module_lookup_that_missed_is_remembered_until_the_modules_change(tmp_path, monkeypatch):
    import inspect
    import sys
    import types

    scans = []
    original = inspect.getmodule

    def counted(object, _filename=None):
        scans.append(object)
        return original(object, _filename)

    lookup = speedups.remembering_misses(counted)
    cell = compile("x = 1", str(tmp_path / "cell.py"), "exec")  # a notebook cell's code: no module
    assert lookup(cell) is None and lookup(cell) is None and len(scans) == 1
    frame = sys._getframe()
    assert lookup(frame) is original(frame) is sys.modules[__name__] and len(scans) == 2  # a module's file
    assert lookup(sys) is sys and lookup(failing_assert) is sys.modules[__name__]  # passed on
    module = types.ModuleType("autograd_labs_late_import")  # an import: the cell's file is now a module's
    module.__file__ = str(tmp_path / "cell.py")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    assert lookup(cell) is module and lookup(cell) is module


def test_tracebacks_read_the_same_with_remembered_misses(monkeypatch):
    import inspect

    stock = shell_errors(monkeypatch, patched=False)[0]
    monkeypatch.setattr(inspect, "getmodule", speedups.remembering_misses(inspect.getmodule))
    assert shell_errors(monkeypatch, patched=False)[0] == stock


def test_every_speed_up_is_installed_with_the_libraries_pinned_here():
    assert speedups.status() == {patch.name: None for patch in speedups.PATCHES}
    assert {group for patch in speedups.PATCHES for group in patch.groups} == {"grader", "unit", "warm"}


def test_nbgraders_schema_version_read_in_process_is_the_one_alembic_heads_prints(monkeypatch):
    from nbgrader import api

    from autograder.pipeline.nbgrader_cmd import environment
    monkeypatch.setenv("PATH", environment()["PATH"])  # nbgrader runs `alembic` by name
    stock = api.get_alembic_version()
    monkeypatch.setattr(api, "get_alembic_version", api.get_alembic_version)  # put back after the test
    speedups.alembic_version_in_process()
    assert api.get_alembic_version() == stock and len(stock) == 12


def test_a_library_at_a_version_a_speed_up_was_not_tested_with_is_left_stock(monkeypatch):
    installed = []
    patches = [speedups.Patch("nbgrader.tested", ("unit",), {"nbgrader": ("0.9", "0.10")}, lambda: installed.append(1)),
               speedups.Patch("nbgrader.newer", ("unit",), {"nbgrader": ("0.8", "0.9.6")}, lambda: installed.append(2)),
               speedups.Patch("absent", ("unit",), {"no-such-distribution": ("1", "2")}, lambda: installed.append(3)),
               speedups.Patch("warm.only", ("warm",), {"python": ("3", "4")}, lambda: installed.append(4))]
    monkeypatch.setattr(speedups, "PATCHES", patches)
    monkeypatch.setattr(speedups, "installed", set())
    speedups.apply("unit")
    speedups.apply("unit")  # once per process
    assert installed == [1]
    assert speedups.status() == {"nbgrader.tested": None, "warm.only": None,
                                 "nbgrader.newer": "nbgrader 0.9.6 (tested from 0.8 to before 0.9.6)",
                                 "absent": "no-such-distribution is not installed"}


def test_versions_compare_as_numbers():
    assert speedups.as_numbers("0.10.1") > speedups.as_numbers("0.9.6") > speedups.as_numbers("0.9")
    assert speedups.as_numbers("2.13.0+cpu") == (2, 13, 0) and speedups.as_numbers("9.18.1") < (10,)


@pytest.mark.parametrize("program", [
    "import autograder.__main__",  # the instructor's commands
    "import sys; sys.path[:0] = ['autograder/pipeline']; import zygote, autograde_unit",  # the sandbox's
])
def test_no_grading_process_loads_jsonschemas_optional_iri_checker(program):
    """rfc3987_syntax compiles 38 grammars as jsonschema is imported (about 2 CPU-seconds in every
    interpreter); without it jsonschema still checks every other format, and nbformat validates."""
    check = ("import sys, jsonschema, nbformat\n"
             "assert sys.modules['rfc3987_syntax'] is None\n"
             "assert not jsonschema.FormatChecker().conforms('2026-13-01', 'date')\n"
             "nbformat.validate(nbformat.read('release/lab2/lab2.ipynb', as_version=4))\n")
    done = subprocess.run([sys.executable, "-c", f"{program}\n{check}"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
