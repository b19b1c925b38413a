"""The instructor pipeline: build and release notebooks, write example submissions, grade a
class (nbgrader autograde per submission, then verification), save to the gradebook, feedback,
export, and the student bundle. Imported by the CLI and the tests; never by a notebook."""
