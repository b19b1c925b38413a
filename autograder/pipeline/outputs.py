"""What comes back from a unit is data, not code: nothing a student's notebook holds may run in
the browser of whoever reads it.

A graded notebook is read by people: the instructor in the formgrader (on their own server, with
their own session), the student in the feedback page, Gradescope's results page. `as_data(nb)`
keeps of each output only what a browser cannot run: plain text, PNG and JPEG images, the
course's own JSON (`COURSE_MIME_PREFIX`: the answers a check hands over, the grader's verdicts),
and HTML and SVG after bleach has removed scripts, event handlers, frames, forms, styles and every
reference to anything outside the page. Every other type (JavaScript, widgets, Markdown, LaTeX,
PDF, anything unknown) is dropped, and the output says so. Raw cells are cleaned the same way.

Markdown cells (a student's written answers) stay as written: nbgrader's templates render them
through `markdown_as_data`, nbconvert's own Markdown filter followed by the same HTML cleaning
(`nbgrader_config.py` sets it for the formgrader and the feedback).
"""

import json
import re
from functools import lru_cache
from urllib.parse import urlparse

import bleach
from bleach.css_sanitizer import ALLOWED_SVG_PROPERTIES, CSSSanitizer
from jinja2 import pass_context
from nbformat import NotebookNode
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

from course.protocol import COURSE_MIME_PREFIX

KEPT = {"text/plain", "image/png", "image/jpeg"}
OUTPUT_TYPES = {"stream", "error", "display_data", "execute_result"}
DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|svg\+xml);base64,[A-Za-z0-9+/=\s]*\Z")
LINK_SCHEMES = {"http", "https", "mailto"}

HTML_TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "div", "dl", "dt", "em",
             "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s",
             "samp", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
             "tr", "u", "ul"}
SVG_TAGS = {"svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
            "defs", "clipPath", "use", "title", "desc", "linearGradient", "radialGradient", "stop", "symbol",
            "marker", "mask", "pattern"}
SVG_ATTRIBUTES = {"xmlns", "version", "width", "height", "viewBox", "preserveAspectRatio", "id", "class",
                  "transform", "d", "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "rx", "ry", "points",
                  "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity",
                  "stroke-linecap", "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset",
                  "stroke-miterlimit", "opacity", "clip-path", "clip-rule", "mask", "font-family",
                  "font-size", "font-weight", "font-style", "text-anchor", "dominant-baseline", "dx", "dy",
                  "offset", "stop-color", "stop-opacity", "gradientUnits", "gradientTransform",
                  "patternUnits", "markerWidth", "markerHeight", "refX", "refY", "orient", "style",
                  "href", "xlink:href", "xmlns:xlink"}
SVG_STYLES = CSSSanitizer(allowed_svg_properties=ALLOWED_SVG_PROPERTIES)


def inside_the_page(value: str) -> bool:
    """No reference outside the page: every `url(...)` in `value` points at an element of it."""
    return all(ref.lstrip(" '\"").startswith("#") for ref in re.findall(r"url\(([^)]*)\)", value, flags=re.I))


def html_attribute(tag: str, name: str, value: str) -> bool:
    if name in ("class", "title") or (tag in ("td", "th") and name in ("colspan", "rowspan", "align")):
        return True
    if tag == "a":
        return name == "href" and (value.startswith("#") or urlparse(value.strip()).scheme in LINK_SCHEMES)
    if tag == "img":
        return name in ("alt", "width", "height") or (name == "src" and bool(DATA_IMAGE.match(value.strip())))
    return tag in ("h1", "h2", "h3", "h4", "h5", "h6") and name == "id"  # nbconvert's heading anchors


def svg_attribute(tag: str, name: str, value: str) -> bool:
    if name not in SVG_ATTRIBUTES or not inside_the_page(value):
        return False
    return name not in ("href", "xlink:href") or value.startswith("#")


def clean_html(html: str) -> str:
    """HTML with only inert tags and attributes left: links to web pages, images only as data."""
    return bleach.clean(html, tags=HTML_TAGS, attributes=html_attribute, protocols=LINK_SCHEMES | {"data"},
                        strip=True, strip_comments=True)


def clean_svg(svg: str) -> str:
    """An SVG picture with only drawing elements and attributes left, referring to nothing outside."""
    return bleach.clean(svg, tags=SVG_TAGS, attributes=svg_attribute, protocols=set(), css_sanitizer=SVG_STYLES,
                        strip=True, strip_comments=True)


def text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def output_as_data(output) -> list[str]:
    """Make one output inert in place; the types it dropped."""
    data = output.get("data")
    if not isinstance(data, dict):
        return []
    dropped = []
    for kind in list(data):
        if kind in KEPT or kind.startswith(COURSE_MIME_PREFIX):
            continue
        if kind == "text/html":
            data[kind] = clean_html(text(data[kind]))
        elif kind == "image/svg+xml":
            data[kind] = clean_svg(text(data[kind]))
        else:
            del data[kind]
            dropped.append(kind)
    output["metadata"] = NotebookNode()  # e.g. "isolated" HTML, which nbconvert puts in a frame of its own
    if dropped:
        note = f"[{', '.join(dropped)} removed by the grader: only text, images and cleaned HTML are kept]"
        data["text/plain"] = f"{text(data['text/plain'])}\n{note}" if "text/plain" in data else note
    return dropped


def as_data(nb) -> list[str]:
    """Make every output and raw cell of a notebook inert, in place; what was dropped, by cell."""
    notes = []
    nb.metadata.pop("widgets", None)  # widget state: nbconvert loads a widget manager to show it
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type == "raw":
            cell.source = clean_html(cell.source)
        if cell.cell_type != "code":
            continue
        cell.outputs = [output for output in cell.get("outputs", []) if output.get("output_type") in OUTPUT_TYPES]
        for output in cell.outputs:
            notes += [f"cell {number}: {kind} removed" for kind in output_as_data(output)]
    return notes


@pass_context
def markdown_as_data(context, source: str) -> str:
    """Markdown to HTML as nbconvert's HTML exporter renders it (attachments, maths, heading
    anchors; no file is read, so the notebook's folder plays no part), then `clean_html`: a
    markdown cell shows its text and pictures, and runs nothing."""
    return markdown_html(source, json.dumps(context.get("cell", {}).get("attachments", {}), sort_keys=True))


@lru_cache(maxsize=4096)
def markdown_html(source: str, attachments: str) -> str:
    """`markdown_as_data`'s HTML for one cell, made once per process: most of a lab's markdown
    cells are the release's own, the same on every student's page."""
    renderer = IPythonRenderer(escape=False, attachments=json.loads(attachments))
    return clean_html(MarkdownWithMath(renderer=renderer).render(source))
