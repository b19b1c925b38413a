"""Gradescope's two scripts in a container built the way Gradescope builds its image.

Gradescope unpacks the zip into /autograder/source of a fresh base image and runs setup.sh there
once, as root. For each submission it copies run_autograder to /autograder/, puts the files in
/autograder/submission and reads /autograder/results/results.json. These tests do the same:
- the base system comes from the distribution's archive with debootstrap (no image registry can
  be reached here), with the package lists emptied and services kept from starting, as in
  Docker's images. Debian has no keyring for Ubuntu's archive, so Ubuntu's base is fetched
  without checking its signature; apt inside then checks with the image's own keyring;
- the container is bubblewrap run as root. As with Docker, it gets a root of its own (pivot_root),
  and its own /proc, /dev and process ids. It keeps root's capabilities, which the grader's own
  sandbox needs inside.

The host's pip settings (its package mirror, wheel folder and certificates) go into the container,
so that pip there reaches what pip reaches here. download.pytorch.org cannot be reached here, so
torch's CPU wheel comes from the host's wheel folder.
"""

import configparser
import json
import os
import shutil
import subprocess
import urllib.request
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.pipeline import examples, exports

from helpers import REPO

pytestmark = pytest.mark.slow
LAB = "lab2"
STUDENT = "ada"
DOCKER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What Docker's ubuntu:22.04 lists: Gradescope's default base image is built on it.
JAMMY_SOURCES = "".join(f"deb http://{host}/ubuntu/ {suite} main restricted universe multiverse\n"
                        for host, suite in [("archive.ubuntu.com", "jammy"), ("archive.ubuntu.com", "jammy-updates"),
                                            ("security.ubuntu.com", "jammy-security")])
BASES = {"ubuntu-22.04": ("jammy", "http://archive.ubuntu.com/ubuntu", JAMMY_SOURCES),
         "debian-12": ("bookworm", "http://deb.debian.org/debian", None)}


def needs(condition: bool, message: str) -> None:
    if not condition:
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


def base_image(name: str, dest: Path) -> Path:
    """A minimal `name` system in `dest`, as a Docker base image holds it."""
    needs(os.geteuid() == 0, "building a base image and entering it as root needs root")
    needs(shutil.which("debootstrap") is not None and shutil.which("bwrap") is not None,
          "apt-get install debootstrap bubblewrap")
    suite, mirror, sources = BASES[name]
    try:
        urllib.request.urlopen(f"{mirror}/dists/{suite}/Release", timeout=30).close()
    except OSError as exc:  # a network without this archive: nothing here can be tried
        pytest.skip(f"{mirror} cannot be reached: {exc}")
    proc = subprocess.run(["debootstrap", "--variant=minbase", "--components=main,universe", suite, str(dest), mirror],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if sources:
        (dest / "etc/apt/sources.list").write_text(sources)
    policy = dest / "usr/sbin/policy-rc.d"  # as in Docker's images: no service starts while packages install
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    for lists in (dest / "var/lib/apt/lists").glob("*"):
        if lists.is_file():
            lists.unlink()
    return dest


def host_pip_settings(root: Path) -> tuple[dict[str, str], list[Path]]:
    """The host's PIP_* variables for a container on `root`, and the files that they and
    /etc/pip.conf name, to mount there. The certificates pip trusts are copied instead: the image's
    own /etc/ssl is for its package manager to write."""
    env = {key: value for key, value in os.environ.items() if key.startswith("PIP_")}
    env["PIP_RETRIES"] = "1"  # download.pytorch.org does not resolve here: fail it fast, once per package
    config = configparser.ConfigParser()
    config.read("/etc/pip.conf")
    cert = env.get("PIP_CERT") or config.get("global", "cert", fallback=None)
    if cert:
        shutil.copyfile(cert, root / "etc/host-pip-ca.crt")
        env["PIP_CERT"] = "/etc/host-pip-ca.crt"
    values = list(env.values()) + [value for section in config.values() for value in section.values()]
    words = [word.removeprefix("file://") for value in values for word in value.split()]
    paths = [Path(word) for word in words if word.startswith("/") and not word.startswith("/etc/ssl/")]
    return env, sorted({path for path in [*paths, Path("/etc/pip.conf")] if path.exists()})


def in_container(root: Path, *command: str, timeout: int) -> subprocess.CompletedProcess:
    """Run `command` as root in a container on `root`."""
    env, paths = host_pip_settings(root)
    args = ["bwrap", "--bind", str(root), "/", "--dev", "/dev", "--proc", "/proc",
            "--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--cap-add", "ALL", "--die-with-parent", "--clearenv", "--setenv", "PATH", DOCKER_PATH,
            "--setenv", "HOME", "/root"]
    for path in paths:
        args += ["--ro-bind", str(path), str(path)]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return subprocess.run(args + list(command), capture_output=True, text=True, timeout=timeout)


def unpack(autograder_zip: Path, root: Path) -> None:
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(root / "autograder/source")
    for script in ("setup.sh", "run_autograder"):  # zipfile drops the modes
        (root / "autograder/source" / script).chmod(0o755)


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory):
    return exports.build_gradescope(REPO, LAB, tmp_path_factory.mktemp("zip") / f"{LAB}.zip")


def test_on_debian_12_setup_installs_python_3_11_and_the_lock_and_a_submission_gets_its_exact_scores(
        autograder_zip, tmp_path):
    root = base_image("debian-12", tmp_path / "image")
    assert not (root / "usr/bin/python3.11").exists()  # setup.sh must install it
    unpack(autograder_zip, root)
    setup = in_container(root, "bash", "/autograder/source/setup.sh", timeout=1500)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert "setup: Python 3.11." in setup.stdout and "setup: done" in setup.stdout

    release = nbformat.read(REPO / "release" / LAB / f"{LAB}.ipynb", as_version=4)
    (root / "autograder/submission").mkdir()
    nbformat.write(examples.fill(release, examples.load(LAB)[STUDENT]["answers"]),
                   root / "autograder/submission" / f"{LAB}.ipynb")
    (root / "autograder/submission_metadata.json").write_text(json.dumps({"users": [{"email": STUDENT}]}))
    (root / "autograder/results").mkdir()
    shutil.copy2(root / "autograder/source/run_autograder", root / "autograder/run_autograder")
    grade = in_container(root, "/autograder/run_autograder", timeout=600)
    assert grade.returncode == 0, grade.stdout[-3000:] + grade.stderr[-3000:]
    assert "sandbox: bubblewrap" in grade.stdout + grade.stderr  # graded in the grader's sandbox, not without
    results = json.loads((root / "autograder/results/results.json").read_text())
    assert {test["name"]: test["score"] for test in results["tests"]} == examples.load(LAB)[STUDENT]["expected"]


def test_on_ubuntu_22_04_setup_refuses_the_archives_python_release_candidate(autograder_zip, tmp_path):
    """Ubuntu 22.04's python3.11 is 3.11.0rc1, where torch's optimizers fail to import. setup.sh
    must turn to deadsnakes for a final release. Launchpad cannot be reached here, so where it
    cannot, this test checks the choice and where the script stopped."""
    root = base_image("ubuntu-22.04", tmp_path / "image")
    unpack(autograder_zip, root)
    setup = in_container(root, "bash", "/autograder/source/setup.sh", timeout=1500)
    assert "setup: the archive has Python 3.11.0rc1, and torch needs a final 3.11 release" in setup.stdout, \
        setup.stdout[-3000:] + setup.stderr[-3000:]
    if setup.returncode != 0:
        assert "api.launchpad.net" in setup.stderr, setup.stderr[-3000:]  # deadsnakes: out of reach here
        return
    assert "setup: Python 3.11." in setup.stdout and "rc" not in setup.stdout.split("setup: Python 3.11.")[1][:4]
    assert in_container(root, "/autograder/source/.venv/bin/python", "-c", "import torch.optim",
                        timeout=300).returncode == 0
