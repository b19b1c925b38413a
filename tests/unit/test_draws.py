"""The course secret and the seed of each submission's hidden probes (`autograder.pipeline.draws`)."""

import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from autograder.pipeline import draws


def test_the_secret_is_made_once_readable_by_its_owner_only(tmp_path):
    secret = draws.course_secret(tmp_path)
    path = tmp_path / draws.SECRET_FILE
    assert len(secret) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert draws.course_secret(tmp_path) == secret
    assert [p.name for p in tmp_path.iterdir()] == [draws.SECRET_FILE]  # no draft left behind


def test_graders_starting_at_once_share_one_secret(tmp_path):
    with ThreadPoolExecutor(16) as pool:
        secrets = set(pool.map(lambda _: draws.course_secret(tmp_path), range(64)))
    assert len(secrets) == 1 and [p.name for p in tmp_path.iterdir()] == [draws.SECRET_FILE]


def test_a_damaged_secret_is_refused_with_what_to_do(tmp_path):
    (tmp_path / draws.SECRET_FILE).write_text("\n")
    with pytest.raises(ValueError, match="remove it and grade again"):
        draws.course_secret(tmp_path)


def test_each_submission_has_its_own_seed_and_a_regrade_the_same(tmp_path):
    seed = draws.submission_seed(tmp_path, "lab4", "ada", "2026-12-01 10:00:00")
    assert draws.submission_seed(tmp_path, "lab4", "ada", "2026-12-01 10:00:00") == seed
    others = {draws.submission_seed(tmp_path, *args) for args in [
        ("lab4", "ada", "2026-12-01 10:00:01"), ("lab4", "bob", "2026-12-01 10:00:00"),
        ("lab2", "ada", "2026-12-01 10:00:00")]}
    assert seed not in others and len(others) == 3
    other_course = tmp_path / "other"
    other_course.mkdir()
    assert draws.submission_seed(other_course, "lab4", "ada", "2026-12-01 10:00:00") != seed
