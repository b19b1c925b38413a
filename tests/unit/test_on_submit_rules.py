"""The rules of grading on submission, without a grader: the policy file, the verdict on each
hand-in, and what a page tells the student (as data, never markup)."""

from datetime import datetime, timedelta, timezone

import pytest

from autograder.pipeline.on_submit import (POLICY_FILE, HandIn, Policy, PolicyError, Verdict, status_page, verdicts,
                                           with_banner)

START = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


def hand_ins(*minutes: float, named: list[float] | None = None) -> list[HandIn]:
    """Hand-ins arriving `minutes` after nine, named with the times `named` (their arrivals by default)."""
    named = named or list(minutes)
    return [HandIn(f"ada+lab4+{k}", "ada", "lab4", START.timestamp() + 60 * m, START + timedelta(minutes=n), f"s{k}")
            for k, (m, n) in enumerate(zip(minutes, named, strict=True))]


def kinds(judged: list[Verdict]) -> list[tuple[str, int]]:
    return [(v.kind, v.attempt) for v in judged]


def test_without_limits_the_newest_hand_in_is_graded_and_the_others_superseded():
    assert kinds(verdicts(hand_ins(0, 1, 2), Policy(("lab4",)))) == [("superseded", 1), ("superseded", 2),
                                                                     ("graded", 3)]


def test_hand_ins_past_the_limit_are_not_attempts():
    judged = verdicts(hand_ins(0, 5, 10), Policy(("lab4",), attempts=2))
    assert kinds(judged) == [("superseded", 1), ("graded", 2), ("limit", 2)]


def test_a_hand_in_during_the_cool_down_is_not_an_attempt_and_says_when_it_ends():
    judged = verdicts(hand_ins(0, 4, 11), Policy(("lab4",), cooldown_minutes=10))
    assert kinds(judged) == [("superseded", 1), ("cooldown", 1), ("graded", 2)]
    assert judged[1].until == START.timestamp() + 600


def test_arrival_orders_hand_ins_and_a_folder_named_back_in_time_is_refused():
    """The third arrival is named as if handed in first: counting it by its name would give a
    third graded attempt under a limit of two."""
    judged = verdicts(hand_ins(0, 5, 10, named=[0, 5, -60]), Policy(("lab4",), attempts=2))
    assert kinds(judged) == [("superseded", 1), ("graded", 2), ("misnamed", 2)]
    judged = verdicts(list(reversed(hand_ins(0, 5))), Policy(("lab4",)))  # the listing's order does not matter
    assert kinds(judged) == [("superseded", 1), ("graded", 2)]


@pytest.mark.parametrize("text, problem", [
    ('labs = "lab4"', "labs must be a list"),
    ('labs = ["lab4"]\nattempts = -1', "attempts must be a whole number"),
    ('labs = ["lab4"]\nattempts = true', "attempts must be a whole number"),
    ('labs = ["lab4"]\ncooldown_minutes = "10"', "cooldown_minutes must be a number"),
    ('labs = ["lab4"]\ncooldown_minute = 10', "unknown setting(s) cooldown_minute"),
    ("labs = [", "cannot be read"),
])
def test_a_policy_file_that_cannot_be_used_says_why(tmp_path, text, problem):
    (tmp_path / POLICY_FILE).write_text(text)
    with pytest.raises(PolicyError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        Policy.read(tmp_path)


def test_no_policy_file_switches_nothing_on_and_a_good_one_is_read(tmp_path):
    assert Policy.read(tmp_path) == Policy()
    (tmp_path / POLICY_FILE).write_text('labs = ["lab4", "lab5"]\nattempts = 3\ncooldown_minutes = 7.5\n')
    assert Policy.read(tmp_path) == Policy(("lab4", "lab5"), 3, 7.5)


def test_pages_show_what_the_student_wrote_as_text():
    """A lab name and a grading failure can quote a submission: both are escaped."""
    (hand_in,) = hand_ins(0)
    policy = Policy(("lab4",), attempts=3, cooldown_minutes=10)
    page = status_page("<script>x</script>", Verdict(hand_in, "limit", 3), policy, reason="<img src=x onerror=y>")
    assert "<script>" not in page and "<img" not in page and "&lt;img src=x onerror=y&gt;" in page
    assert "default-src 'none'" in page
    graded = with_banner('<html><head></head><body><div class="container">score</div></body></html>',
                         Verdict(hand_in, "graded", 2), policy)
    assert graded.index("attempt 2 of 3") < graded.index("score")
    assert "Your next graded attempt can be handed in from" in graded
