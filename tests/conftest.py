"""Shared fixtures: the repo root, the devices to test on, scratch course roots."""

import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch):
    """Run the test once per device the grader could use (CUDA only where present)."""
    monkeypatch.setenv("AUTOGRAD_LABS_DEVICE", request.param)
    return request.param


def make_course_root(dest: Path) -> Path:
    """A scratch nbgrader course with this repo's sources, config and examples."""
    for name in ("source", "course/examples"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("*.ipynb", "__pycache__"))
    shutil.copy2(REPO / "nbgrader_config.py", dest / "nbgrader_config.py")
    return dest
