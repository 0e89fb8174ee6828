# The two commands of the course (see README.md):
#   make lab   — set everything up and open the course in JupyterLab
#   make test  — set everything up and run the whole test suite, notebooks included
#
# Both create .venv with the interpreter named by PYTHON if it is absent and
# install the package with its dependencies into it. On a machine without an
# NVIDIA GPU (no nvidia-smi) torch is pinned to its CPU build through
# constraints/cpu.txt; an unpinned torch would pull several GB of CUDA wheels.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_BUILD ?= $(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu)
CONSTRAINTS := $(if $(filter cpu,$(TORCH_BUILD)),-c constraints/cpu.txt,)
# Heavy notebook cells read their sizes from ATTN_COURSE_SIZE (attn_course/config.py):
# 'full' for learners, 'small' for the test suite so every code path still runs.
TEST_SIZE ?= small
PYTEST_ARGS ?=

.PHONY: lab test lint notebooks release grade site clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints/cpu.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e '.[dev]'
	touch $@

lab: $(VENV)/.installed
	$(BIN)/python -m attn_course.lab $(LAB_ARGS)

test: $(VENV)/.installed
	$(BIN)/ruff check .
	ATTN_COURSE_SIZE=$(TEST_SIZE) $(BIN)/python -m pytest $(PYTEST_ARGS) \
		tests --nbval-lax --nbval-cell-timeout=300 notebooks solutions exercises

# Regenerate notebooks/*.ipynb and solutions/*.ipynb from their paired scripts
# and exercises/*.ipynb from solutions/ (tests fail when these are out of date).
notebooks: $(VENV)/.installed
	$(BIN)/python -m attn_course.build

# Instructor commands (docs/instructors.md).
# The student release: exercises rebuilt from solutions/, copied without them, verified.
release: $(VENV)/.installed
	$(BIN)/python -m attn_course.release --out release

# Grade a class: make grade SUBMISSIONS=path/to/lms-export [GRADE_ARGS="--jobs 2"]
GRADE_ARGS ?= --jobs 2
grade: $(VENV)/.installed
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder"; exit 2; }
	$(BIN)/attn-gradebook "$(SUBMISSIONS)" --out gradebook $(GRADE_ARGS)

# The static HTML edition of the course, executed at full size unless SITE_SIZE=small.
SITE_SIZE ?= full
site: $(VENV)/.installed
	$(BIN)/python -m attn_course.site --out site --size $(SITE_SIZE)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis release gradebook site test-artifacts
