"""A real browser for tests: Debian's chromium driven by Playwright (its own browser download
is not used). Screenshots go to screenshots/ at the repository root (not committed; CI keeps
them as artefacts)."""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"


def chromium() -> str:
    """The system browser's path; a skip where none is installed, a failure in CI."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        message = "no chromium on PATH (Debian: apt install chromium); the browser tests need it"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return path


@contextmanager
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: chromium's own sandbox cannot start as root in a container
        launched = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
