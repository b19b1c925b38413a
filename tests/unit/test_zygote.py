"""The warm service's speed-ups inside a kernel change nothing a student or the grader sees."""

import stack_data.core
from IPython.core import ultratb
from IPython.utils.PyColorize import theme_table

from autograder.pipeline import zygote


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
    monkeypatch.setattr(stack_data.core, "_pygmented_with_ranges", zygote.traceback_highlighter())
    ours = tracebacks()
    assert len(ours) == len(stock) > 4
    assert ours == stock
    assert any("43mvalues\x1b[39;49m\x1b[30;43m[" in text for text in ours)  # the failing node is marked
