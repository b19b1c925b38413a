"""The class report's similar-code pages: what a student wrote is shown, never run."""

import numpy as np

from autograder.pipeline import similarity


def test_a_side_by_side_page_shows_student_code_as_text_only(tmp_path):
    hostile = '</pre><script>alert(document.cookie)</script><img src=x onerror="fetch(1)">\ndef f(x):\n    return x'
    page = tmp_path / "page.html"
    similarity.side_by_side(page, "lab4", "t2_formula_answer", ("ada", "bob<b>"), (hostile, "def f(x):\n    return x"),
                            (np.array([[0], [6]]), np.array([[0], [5]])), (1.0, 0.5))
    text = page.read_text()
    assert "<script" not in text and "<img" not in text and "bob<b>" not in text
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in text and "default-src 'none'" in text
    assert text.count("<mark>") == 2
