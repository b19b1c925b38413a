# Autograd Labs. `make help` lists the targets; every target sets up .venv first if needed.
# ROOT is the nbgrader course root (default: this folder; the tests point it at scratch copies).
SHELL := /bin/bash
.DEFAULT_GOAL := help
# The Python that makes .venv: 3.11, which torch==2.13.0's wheels and requirements.lock are built for.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV ?= $(CURDIR)/.venv
ROOT ?= $(CURDIR)
# nbgrader runs `alembic` and `jupyter` from PATH: the venv must come first.
export PATH := $(VENV)/bin:$(PATH)
STUDENT ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST_ARGS ?=
# Grading options: NO_SANDBOX=1, NOTEBOOK_TIMEOUT=S, FAST=0 (no speed-ups: stock nbgrader per unit), DASK=1 (a local Dask cluster of JOBS workers),
# SCHEDULER=tcp://host:8786 (a running Dask cluster), DB_URL=postgresql://... (the gradebook).
GRADE_ARGS = $(if $(filter command line environment,$(origin JOBS)),--jobs $(JOBS)) $(if $(NO_SANDBOX),--no-sandbox) $(if $(NOTEBOOK_TIMEOUT),--notebook-timeout $(NOTEBOOK_TIMEOUT)) \
	$(if $(DASK),--dask) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(filter 0,$(FAST)),--stock)
ifdef DB_URL
export AUTOGRAD_LABS_DB_URL := $(DB_URL)
endif
WORK ?= work
# JupyterLab (`make lab`, `make formgrader`): PORT= (default 8888), TOKEN= (default: a new one, printed).
PORT ?= 8888
JUPYTER_ARGS = --no-browser --port=$(PORT) $(if $(TOKEN),--IdentityProvider.token=$(TOKEN)) $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help setup build release validate work lab formgrader hub hub-remove on-submit test-tools autograde recover restore-gradebook demo report minutes student-bundle gradescope test test-fast lint check bench bench-on-submit bench-feedback lock mutate mutate-solutions clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get install -y -qq bubblewrap || \
	  (apt-get update -qq && apt-get install -y -qq bubblewrap)); } || echo "bubblewrap missing: grading needs it (or NO_SANDBOX=1)"
	@test -x $(VENV)/bin/python || { $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || \
	  { echo "Autograd Labs needs Python 3.11 (torch==2.13.0 and requirements.lock are pinned for it), and $(PYTHON) is" \
	    "$$($(PYTHON) -V 2>&1 | grep -o 'Python [0-9.]*' || echo 'not found'). Install python3.11, or name one: make $(or $(MAKECMDGOALS),help) PYTHON=/path/to/python3.11" >&2; \
	    exit 1; }; $(PYTHON) -m venv $(VENV); }
	@echo "setup: installing the $$(grep -c '==' requirements.lock) pinned packages of requirements.lock into $(VENV)" \
	  "(a few minutes the first time: torch alone is about 200 MB)"
	@quiet=$$([ -t 1 ] || echo --quiet); \
	  $(VENV)/bin/python -m pip install $$quiet --disable-pip-version-check -r requirements.lock && \
	  $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@echo "setup: done"
	@touch $@

setup: $(VENV)/.installed ## Create .venv with the pinned dependencies (torch==2.13.0); idempotent

build: setup ## Build source/<lab>/<lab>.ipynb from the jupytext text sources
	python -m autograder build

release: setup ## Release what changed: source notebooks, the kit's data (course/expected/), release/ (FORCE=1: all)
	python -m autograder --root $(ROOT) release $(if $(FORCE),--force)

validate: release ## nbgrader validation: every source passes, every release passes no test
	python -m autograder --root $(ROOT) validate

work: ## Copy the released labs into $(WORK)/ (default work/); a lab already there is never overwritten
	@mkdir -p $(WORK)
	@for dir in release/*/; do lab=$$(basename $$dir); \
	  if [ -e $(WORK)/$$lab ]; then echo "$(WORK)/$$lab exists: keeping your copy"; \
	  else cp -r $$dir $(WORK)/$$lab && echo "copied $$dir to $(WORK)/$$lab"; fi; done

lab: setup work ## Open JupyterLab on your own copy of the labs in work/ (STUDENT=<id> sets your id; PORT=, TOKEN=)
	@$(if $(STUDENT),,echo "No STUDENT= given, so the labs show practice numbers (on JupyterHub: your hub user name). For your own numbers: make lab STUDENT=<your id>")
	cd $(WORK) && JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter/student$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH)) $(if $(STUDENT),AUTOGRAD_LABS_STUDENT=$(STUDENT)) jupyter lab $(JUPYTER_ARGS)

formgrader: release ## The instructor's JupyterLab in the course root: Nbgrader > Formgrader scores written answers (PORT=, TOKEN=)
	@mkdir -p $(ROOT)/exchange && chmod 1777 $(ROOT)/exchange
	cd $(ROOT) && JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter/instructor$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH)) \
	  AUTOGRAD_LABS_EXCHANGE=$(ROOT)/exchange jupyter lab $(JUPYTER_ARGS)

HUB_STATE ?= hub
HUB_PORT ?= 8000
HUB_INSTRUCTOR ?= instructor
HUB_STUDENTS ?= ada,grace
HUB_ACCOUNTS = --instructor $(HUB_INSTRUCTOR) --students $(HUB_STUDENTS)
hub: setup ## As root: a local JupyterHub; HUB_INSTRUCTOR, HUB_STUDENTS as Unix accounts (HUB_PASSWORD= required; HUB_PORT=, LAB=, ON_SUBMIT=lab4 grades it on submission)
	python -m autograder hub --state $(HUB_STATE) --port $(HUB_PORT) $(HUB_ACCOUNTS) $(if $(LAB),--lab $(LAB)) \
	  $(foreach lab,$(ON_SUBMIT),--on-submit $(lab))

hub-remove: setup ## Undo `make hub`: its Unix accounts and group, the repository's modes (HUB_INSTRUCTOR=, HUB_STUDENTS=, HUB_STATE= as given to make hub)
	python -m autograder hub --remove --state $(HUB_STATE) $(HUB_ACCOUNTS)

on-submit: release ## Grade each hand-in of the labs in grade_on_submit.toml as it arrives, feedback released at once (the hub runs it as a service)
	@mkdir -p $(ROOT)/exchange && chmod 1777 $(ROOT)/exchange
	AUTOGRAD_LABS_EXCHANGE=$(ROOT)/exchange python -m autograder --root $(ROOT) on-submit

autograde: release ## Grade every submission in submitted/, sandboxed, on all cores (JOBS= NO_SANDBOX=1 FAST=0 DASK=1 SCHEDULER= DB_URL=)
	python -m autograder --root $(ROOT) grade $(GRADE_ARGS)

demo: release ## The main job: release, autograde the bundled example submissions, print the grades
	python -m autograder --root $(ROOT) examples
	python -m autograder --root $(ROOT) grade $(GRADE_ARGS)

recover: setup ## Settle the saves a killed grading run left half-done and rewrite the grade CSVs (docs/RELIABILITY.md)
	python -m autograder --root $(ROOT) recover

restore-gradebook: setup ## Put the newest backup of gradebook.db in place (FROM=.gradebook-backups/<file> for another)
	python -m autograder --root $(ROOT) restore-gradebook $(if $(FROM),--from $(FROM))

report: setup ## Per lab, from the gradebook: the score histogram (reports/<lab>-scores.png) and every mistake with its number of students
	python -m autograder --root $(ROOT) report

minutes: setup ## Estimate each lab's minutes from what it asks (fails if one is over 90); WRITE=1 puts them in the labs
	python -m autograder --root $(ROOT) minutes $(if $(WRITE),--write)

student-bundle: release ## Write dist/student/ and dist/student.zip: released notebooks + the kit, no solutions
	python -m autograder --root $(ROOT) student-bundle --dest dist/student

gradescope: release ## Write dist/gradescope/<lab>.zip, a Gradescope autograder per lab (ROSTER=roster.csv: email → course id; UNSANDBOXED=1)
	python -m autograder --root $(ROOT) gradescope --dest dist/gradescope $(if $(UNSANDBOXED),--unsandboxed) $(if $(ROSTER),--roster $(ROSTER))

# What the tests need beyond the venv: the browser tests chromium, the hub tests npm (its proxy),
# one test a PostgreSQL server, the Gradescope image tests debootstrap. Installed as root when
# missing; elsewhere those tests skip.
test-tools: ## As root, install what some tests need when missing: chromium, npm, PostgreSQL, debootstrap
	@missing="$$(command -v chromium >/dev/null || echo chromium) $$(command -v npm >/dev/null || echo npm) \
	  $$(ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || echo postgresql) \
	  $$(command -v debootstrap >/dev/null || echo debootstrap)"; \
	if [ "$$(id -u)" = 0 ] && [ -n "$${missing// }" ]; then \
	  apt-get install -y -qq $$missing >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq $$missing >/dev/null); fi

test: lint test-tools ## Run lint and the whole test suite, what CI runs (notebook executions in parallel; as root it installs chromium, npm, PostgreSQL, debootstrap)
	python -m pytest -n $(JOBS) --dist loadfile -m "not overload" $(PYTEST_ARGS)
	@# The tests that load every core on purpose run alone, after the rest (5: none selected by PYTEST_ARGS).
	python -m pytest -m overload $(PYTEST_ARGS) || [ $$? = 5 ]

test-fast: setup ## The tests that execute no notebook and run no nbgrader (under 2 minutes)
	python -m pytest -n $(JOBS) -m "not slow" $(PYTEST_ARGS)

lint: setup ## ruff, mypy (strict on the kit's core, the kinds of check, the verification), the import contracts of docs/ARCHITECTURE.md
	ruff check --no-cache .
	mypy
	lint-imports --no-cache

check: lint ## lint, then the unit tests that run no notebook: what to run after a change (under a minute)
	python -m pytest -q -n $(JOBS) -m "not slow" tests/unit $(PYTEST_ARGS)

N ?= 10
bench: setup ## Grade N generated submissions per lab with stock nbgrader, ours and raw nbclient; print speeds
	python benchmarks/bench.py --per-lab $(N) $(if $(filter command line environment,$(origin JOBS)),--jobs $(JOBS)) \
	  $(if $(DASK),--dask) $(if $(DB_URL),--db-url $(DB_URL))

BURST ?= 100
bench-on-submit: setup ## Grading on submission: seconds from a hand-in to its feedback, for one student and a burst of BURST
	python benchmarks/on_submit.py --burst $(BURST)

bench-feedback: setup ## Time a feedback page, ours against nbgrader's GenerateFeedback, on the graded demo (run `make demo` first)
	python benchmarks/feedback_pages.py --root $(ROOT)

MUTANTS ?= 100
mutate: setup ## Plant MUTANTS single changes in the grader and kit; print the fast tests' kill rate
	python tests/mutate.py --sample $(MUTANTS) --jobs $(JOBS)

UV ?= uv==0.13.9
WHEELS ?= /opt/wheels
# For Python 3.11.0 on: every 3.11 must install it, not only the newest (Debian 12 has 3.11.2; a pin that
# needs 3.11.5, as soupsieve 3.0.2 on does, failed there).
lock: setup ## Resolve pyproject.toml (every extra; torch's CPU wheel from WHEELS) into requirements.lock with uv, keeping its pins where they still fit
	$(VENV)/bin/python -m pip install --quiet $(UV)
	$(VENV)/bin/uv pip compile pyproject.toml --all-extras --find-links $(WHEELS) -o requirements.lock --quiet \
	  --python-version 3.11.0 \
	  --custom-compile-command "make lock"

mutate-solutions: setup ## Plant single changes in the labs' solution cells; print those no check catches
	python tests/mutate_solutions.py

clean: ## Remove generated state (gradebook and its backups, submissions, feedback, built notebooks); keeps .venv
	rm -rf gradebook.db .gradebook-backups submitted autograded feedback reports exchange grades.csv grades-canvas.csv .grading .released source/*/*.ipynb .pytest_cache dist
