"""The seed a submission's hidden probes are drawn from: the course secret, the student, the
submission's timestamp.

The course secret is made once, at random, and kept beside the gradebook (`SECRET_FILE` in the
course folder, readable by its owner only); no notebook, release, kit or student bundle holds
it. A regrade of the same submission draws the same probes, so it gets the same grade; a
resubmission (a new timestamp) or another student draws others, so probes a kernel printed, or
feedback once named, say nothing of the next draw.
"""

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path

SECRET_FILE = "grader_secret.key"


def course_secret(root: Path) -> bytes:
    """The course's secret, made on first use (atomically: graders running at once share one)."""
    path = root / SECRET_FILE
    if not path.exists():
        fd, draft = tempfile.mkstemp(dir=root, prefix=".secret-")
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(draft, path)  # fails where another grader made it first: theirs is kept
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    secret = path.read_bytes().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} is not a course secret (too short): remove it and grade again "
                         "(a new secret draws new hidden probes)")
    return secret


def submission_seed(root: Path, lab: str, student: str, timestamp: object) -> bytes:
    """The seed of one submission's hidden probes."""
    message = json.dumps([lab, student, str(timestamp)]).encode()
    return hmac.new(course_secret(root), message, hashlib.sha256).digest()
