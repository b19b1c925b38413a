"""What comes back from a unit is data (`pipeline.outputs`), and only the grader's own reply ends
a unit (`service.Reply`): the rules on their own, without a sandbox or a browser."""

import json
import random
import string

import nbformat
import pytest

from autograder.pipeline import outputs
from autograder.pipeline.service import Reply

ATTACKER = "http://attacker.invalid/x"
VECTORS = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>", "<a href='javascript:alert(1)'>a</a>",
    f"<form action='{ATTACKER}'><button>b</button></form>", f"<img src='{ATTACKER}'>", "<img src='/files/x.png'>",
    f"<style>@import url('{ATTACKER}')</style>", f"<link rel=stylesheet href='{ATTACKER}'>",
    f"<object data='{ATTACKER}'></object>", f"<embed src='{ATTACKER}'>", f"<base href='{ATTACKER}'>",
    f"<meta http-equiv=refresh content='0;url={ATTACKER}'>", "<details open ontoggle=alert(1)>",
    f"<b style='background:url({ATTACKER})'>b</b>", "<a href='JaVaScRiPt&#58;alert(1)'>a</a>",
    "<img src='data:text/html;base64,PHNjcmlwdD4='>", "<math><mi xlink:href='javascript:alert(1)'>x</mi></math>",
]


def attributes(html: str) -> list[tuple[str, str, str]]:
    from html.parser import HTMLParser
    found = []
    parser = HTMLParser()
    parser.handle_starttag = lambda tag, attrs: found.extend((tag, k, v or "") for k, v in attrs) or found.append((tag, "", ""))
    parser.feed(html)
    return found


@pytest.mark.parametrize("vector", VECTORS)
def test_cleaned_html_keeps_no_script_no_handler_and_no_reference_outside(vector):
    for tag, name, value in attributes(outputs.clean_html(vector)):
        assert tag not in {"script", "iframe", "form", "button", "style", "link", "object", "embed", "base", "meta",
                           "details", "svg", "math"}, tag
        assert not name.startswith("on") and name not in ("style", "srcdoc"), name
        assert name not in ("src", "href") or value.startswith(("data:image/png", "https://", "#")), value


def test_cleaned_html_keeps_what_shows_text_tables_and_data_images():
    html = ("<table><tr><th>a</th><td colspan='2'><b>1</b> <code>x</code></td></tr></table>"
            "<img src='data:image/png;base64,iVBORw0KGgo=' alt='plot'><a href='https://pytorch.org'>docs</a>")
    assert outputs.clean_html(html) == html.replace("<table><tr>", "<table><tbody><tr>").replace(
        "</tr></table>", "</tr></tbody></table>").replace("colspan='2'", 'colspan="2"').replace(
        "src='data:image/png;base64,iVBORw0KGgo=' alt='plot'", 'src="data:image/png;base64,iVBORw0KGgo=" alt="plot"').replace(
        "href='https://pytorch.org'", 'href="https://pytorch.org"')


def test_cleaned_svg_keeps_the_drawing_and_drops_what_runs_or_calls_out():
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 9 9" onload="alert(1)"><script>alert(2)</script>'
           f'<defs><clipPath id="c"><rect width="9" height="9"/></clipPath></defs><image href="{ATTACKER}"/>'
           f'<path d="M0 0L9 9" clip-path="url(#c)" style="stroke: red"/><rect fill="url({ATTACKER})"/>'
           f'<use href="#c"/><use href="{ATTACKER}#c"/><foreignObject><iframe src="{ATTACKER}"/></foreignObject></svg>')
    cleaned = outputs.clean_svg(svg)
    assert 'viewBox="0 0 9 9"' in cleaned and 'clip-path="url(#c)"' in cleaned and 'd="M0 0L9 9"' in cleaned
    assert '<use href="#c">' in cleaned and "stroke: red" in cleaned
    for mark in ("onload", "<script", "attacker", "<image", "foreignObject", "<iframe"):
        assert mark not in cleaned, mark


def random_type(rng) -> str:
    top = rng.choice(["text", "application", "image", "video", "x-" + "".join(rng.choices(string.ascii_lowercase, k=4))])
    return f"{top}/{''.join(rng.choices(string.ascii_lowercase + '.+-', k=rng.randint(1, 12)))}"


def test_any_output_type_but_the_inert_ones_is_dropped_and_the_output_says_so():
    rng = random.Random(22)
    kept = outputs.KEPT | {"text/html", "image/svg+xml"}
    for _ in range(300):
        kinds = {random_type(rng) for _ in range(rng.randint(1, 4))} | {rng.choice(sorted(kept))}
        output = nbformat.v4.new_output("display_data", data={k: "<script>x()</script>" for k in kinds},
                                        metadata={"isolated": True})
        dropped = outputs.output_as_data(output)
        assert set(output.data) <= kept | {"text/plain"}
        assert set(dropped) == kinds - kept
        assert output.metadata == {}
        if dropped:
            assert "removed by the grader" in output.data["text/plain"]


def test_a_notebook_as_data_keeps_the_course_data_and_drops_widgets_and_raw_html():
    answers = "application/vnd.autograd-labs.answers+json"
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}}, cells=[
        nbformat.v4.new_code_cell(outputs=[
            nbformat.v4.new_output("display_data", data={answers: {"data": [1.0]}, "text/plain": ""}),
            nbformat.v4.new_output("display_data", data={"application/javascript": "alert(1)"}),
            nbformat.v4.new_output("stream", name="stdout", text="<script>stays as text</script>")]),
        nbformat.v4.new_raw_cell("<script>alert(1)</script><b>raw</b>", metadata={"format": "text/html"})])
    notes = outputs.as_data(nb)
    assert notes == ["cell 1: application/javascript removed"]
    code, raw = nb.cells
    assert code.outputs[0].data[answers] == {"data": [1.0]}
    assert code.outputs[2].text == "<script>stays as text</script>"  # a stream is shown as text
    assert "<script" not in raw.source and "<b>raw</b>" in raw.source
    assert "widgets" not in nb.metadata


def test_markdown_cells_render_as_nbconvert_renders_them_minus_what_runs():
    from jinja2 import Environment
    env = Environment()
    env.filters["md"] = outputs.markdown_as_data
    source = ("# Title\n\nText, $a<b$, `x < y`, **bold**, [docs](https://pytorch.org)\n\n"
              f"![p]({ATTACKER}) [j](javascript:alert(1))\n\n<script>alert(1)</script><img src=x onerror=alert(1)>")
    html = env.from_string("{{ source | md }}").render(source=source, cell={})
    assert '<h1 id="Title">Title<a class="anchor-link" href="#Title">' in html
    assert "$a&lt;b$" in html and "<code>x &lt; y</code>" in html and '<a href="https://pytorch.org">docs</a>' in html
    assert "<script" not in html
    for tag, name, value in attributes(html):
        assert tag != "script" and not name.startswith("on"), (tag, name)
        assert name not in ("src", "href") or value.startswith(("https://pytorch.org", "#")), (tag, name, value)


def reply_line(**message) -> bytes:
    return json.dumps(message).encode() + b"\n"


def test_only_a_reply_with_the_units_secret_ends_it():
    reply = Reply("s3cret")
    assert reply.add(reply_line(status=0)) is None  # the forgery a kernel wrote
    assert reply.add(reply_line(status=0, secret="")) is None
    assert reply.add(reply_line(status=0, secret="guess") + b"not json\n" + b"[1]\n") is None
    assert reply.add(b'{"status": 3, "sec') is None  # half a line so far
    assert reply.add(b'ret": "s3cret"}\n') == 3
    assert Reply("s3cret").add(b"") == -1  # the connection closed: the service is gone


IMAGES = [
    "<img src='data:image/png;base64,iVBORw0KGgo='>", "<IMG SRC='data:image/png;base64,iVBORw0KGgo=' ALT=''>",
    "<img src='data:image/png;base64,iVBORw0KGgo=' title='alt=no > still no alt' width=3>",
    "<p>&lt;img src=x&gt; is text</p><img\nsrc='data:image/png;base64,iVBORw0KGgo='\nalt>",
    "<img alt='a'><img><img title=\"it's\" alt=\"x\"/><img src='data:image/png;base64,AA==' height=\"4\"/>",
]


@pytest.mark.parametrize("html", IMAGES + VECTORS)
def test_feedback_pages_give_each_image_nbconverts_alt_text_without_its_soup_pass(html):
    """`feedback.with_alt_text` on what reaches a page (HTML as bleach leaves it, the template's
    own tags) makes the nodes nbconvert's BeautifulSoup pass makes."""
    from bs4 import BeautifulSoup

    from autograder.pipeline.feedback import with_alt_text
    for page in (outputs.clean_html(html), html.replace("'", '"')):
        soup = BeautifulSoup(page, features="html.parser")
        for image in soup.select("img:not([alt])"):
            image.attrs["alt"] = "No description has been provided for this image"
        assert str(BeautifulSoup(with_alt_text(page), features="html.parser")) == str(soup)
