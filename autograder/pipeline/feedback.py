"""One unit's feedback page, rendered in this process by nbgrader's own GenerateFeedback with the
course's configuration (hidden tests cleared, outputs as data, the summary first): from notebooks
in any folder, into any folder, so that a save can render it from its staged notebooks before
they go live (`saving`)."""

import logging
import os
import re
import threading
from functools import cache, lru_cache
from pathlib import Path

from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbgrader.converters import GenerateFeedback
from nbgrader.converters.base import FilesWriter
from traitlets import Bool
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader


@cache
def course_config(root: Path) -> Config:
    """The course's nbgrader_config.py, read once per grading process."""
    return PyFileConfigLoader("nbgrader_config.py", str(root)).load_config()


def render(root: Path, lab: str, student: str, autograded: Path, out: Path) -> None:
    """Write into `out/<student>/<lab>/` the feedback of the graded notebooks in
    `autograded/<student>/<lab>/`, with the scores and comments the course's gradebook holds."""
    config = Config(course_config(root))
    config.merge(Config({"CourseDirectory": {
        "root": str(root), "assignment_id": lab, "student_id": student,
        "autograded_directory": str(autograded), "feedback_directory": str(out)}}))
    said = Said()
    log = logging.Logger("autograd-labs.feedback", logging.ERROR)  # its own, unshared: nothing else sees it
    log.addHandler(said)
    try:
        WarmFeedback(coursedir=CourseDirectory(config=config), config=config, log=log).start()
    except Exception as error:  # nbgrader logs the cause and raises only "see the traceback above"
        raise RenderFailed(said.cause() or f"{type(error).__name__}: {error}") from error


class WarmFeedback(GenerateFeedback):
    """nbgrader's GenerateFeedback, but the HTML exporter and its preprocessors (the same for every
    page of a course: its configuration, the feedback template) are made once per grading process
    and reused, instead of once per page with their templates compiled again. What they keep
    between pages is none of a page's own: that comes in each notebook's resources."""

    exporters: dict[Path, object] = {}
    one_at_a_time = threading.Lock()  # a preprocessor keeps the page it works on in its attributes

    def start(self) -> None:
        self.init_notebooks()
        self.writer = FilesWriter(parent=self, config=self.config)
        root = Path(self.coursedir.root)
        with self.one_at_a_time:
            if root not in self.exporters:
                exporter = LeanHTMLExporter(parent=self, config=self.config)
                for preprocessor in self.preprocessors:
                    exporter.register_preprocessor(preprocessor)
                self.exporters[root] = exporter
            self.exporter = self.exporters[root]
            for part in [self.exporter, *self.exporter._preprocessors]:
                part.log = self.log  # what goes wrong is said on this page's log
            here = os.getcwd()
            os.chdir(self.coursedir.root)
            try:
                self.convert_notebooks()
            finally:
                os.chdir(here)


class LeanHTMLExporter(HTMLExporter):
    """nbconvert's HTML exporter without its last step, which parses the whole page with
    BeautifulSoup and writes it out again (half of a page's time) to give each image without alt
    text a placeholder (and to make JupyterLab-template cells focusable, which the feedback's
    classic template has none of); here the placeholder goes in directly. Highlighted code is made
    once per process for each cell's source, and the notebook is validated once, after the last
    preprocessor, not after each. The page holds what nbconvert's would, node for node
    (`tests/pipeline/test_pipeline.py` parses both)."""

    optimistic_validation = Bool(True)

    def from_notebook_node(self, nb, resources=None, **kw):
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name"))
        if lexer not in self.highlighters:
            self.highlighters[lexer] = CachedHighlight(pygments_lexer=lexer, parent=self)
        resources = self._init_resources(resources)
        self.register_filter("highlight_code", self.highlighters[lexer])
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return with_alt_text(html), resources

    @property
    def highlighters(self) -> dict:
        return self.__dict__.setdefault("_highlighters", {})


class CachedHighlight(Highlight2HTML):
    """nbconvert's highlighter; a source already highlighted (a released cell, on every page) is
    not highlighted again. Of a cell's metadata the highlighter reads only `magics_language`."""

    def __call__(self, source, language=None, metadata=None):
        return self.highlighted(source, language, (metadata or {}).get("magics_language"))

    @lru_cache(maxsize=4096)  # noqa: B019 (one highlighter per exporter, kept for the process)
    def highlighted(self, source: str, language: str | None, magics_language: str | None) -> str:
        return super().__call__(source, language, {} if magics_language is None else
                                {"magics_language": magics_language})


IMAGE_TAG = re.compile(r"""(<img)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)(\s*/?>)""", re.I)
ALT = re.compile(r"""\salt\s*(=|\s|$)""", re.I)
NO_ALT = "No description has been provided for this image"


def with_alt_text(html: str) -> str:
    """Every image tag without an alt attribute given nbconvert's placeholder text. The page's
    tags are the template's and bleach's serialisation of cleaned HTML (`outputs`): well formed,
    every quoted value's quote escaped inside it."""
    def add(tag: re.Match) -> str:
        start, attributes, end = tag.groups()
        return tag.group(0) if ALT.search(re.sub(r'"[^"]*"|\'[^\']*\'', '""', attributes)) else \
            f'{start}{attributes} alt="{NO_ALT}"{end}'
    return IMAGE_TAG.sub(add, html)


class RenderFailed(Exception):
    """nbgrader could not write the feedback page; the text is the cause it logged."""


class Said(logging.Handler):
    """Keeps the messages nbgrader logs while it renders, so that a failure can say its cause."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.extend(record.getMessage().splitlines())

    def cause(self) -> str:
        """The last exception line of the tracebacks logged, such as `OSError: [Errno 28] ...`."""
        raised = [line for line in self.lines if re.match(r"[\w.]+(Error|Exception)\b.*:", line)]
        return f"feedback page not written: {raised[-1]}" if raised else ""
