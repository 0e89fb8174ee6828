# The commands of the course (see README.md):
#   make lab   — set everything up and open the course in JupyterLab (your work: workspace/)
#   make check — grade your exercise notebooks in workspace/exercises/ as the grader does
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
# The suite runs in TEST_JOBS pytest-xdist workers; --dist loadscope keeps each test file and
# each notebook in one worker (a notebook's cells share one kernel and run in order).
# TEST_JOBS=0 runs it in this process (pdb, -x, print debugging).
TEST_JOBS ?= 2

.PHONY: lab check test lint notebooks release grade site gpucheck clean

# The course's own files (tests, solutions) are not in a student release: say so.
need_repository = @test -d tests -a -d solutions || { echo "make $@ needs the course \
repository (its tests and solutions); this is a student release: use make lab / make check"; exit 2; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints/cpu.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e '.[dev]'
	touch $@

# LAB_ARGS go to jupyter lab (e.g. LAB_ARGS="--no-browser --port 8890"); --instructor
# opens the course folder itself with nbgrader's tools instead of the learner's workspace.
lab: $(VENV)/.installed
	$(BIN)/python -m attn_course.classroom.lab $(LAB_ARGS)

# Grade your own work: make check [NOTEBOOK=workspace/exercises/01_score_matrix.ipynb]
# (exercise notebooks are named NN_topic.ipynb: the rule of attn_course/course.py)
NOTEBOOK ?= $(wildcard workspace/exercises/[0-9][0-9]_*.ipynb)
check: $(VENV)/.installed
	@test -n "$(NOTEBOOK)" || { echo "no exercise notebooks in workspace/exercises/: run make lab first"; exit 2; }
	$(BIN)/attn-grade $(NOTEBOOK)

test: $(VENV)/.installed
	$(need_repository)
	$(BIN)/ruff check .
	ATTN_COURSE_SIZE=$(TEST_SIZE) $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadscope $(PYTEST_ARGS) \
		tests --nbval-lax --nbval-cell-timeout=300 notebooks solutions exercises

# Regenerate notebooks/*.ipynb and solutions/*.ipynb from their paired scripts
# and exercises/*.ipynb from solutions/ (tests fail when these are out of date).
notebooks: $(VENV)/.installed
	$(need_repository)
	$(BIN)/python -m attn_course.classroom.build

# Instructor commands (docs/instructors.md).
# The student release: exercises rebuilt from solutions/, copied without them, verified.
release: $(VENV)/.installed
	$(need_repository)
	$(BIN)/python -m attn_course.classroom.release --out release

# Grade a class: make grade SUBMISSIONS=path/to/lms-export [GRADE_ARGS="--jobs 2"]
GRADE_ARGS ?= --jobs 2
grade: $(VENV)/.installed
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder"; exit 2; }
	$(BIN)/attn-gradebook "$(SUBMISSIONS)" --out gradebook $(GRADE_ARGS)

# The static HTML edition of the course, executed at full size unless SITE_SIZE=small.
SITE_SIZE ?= full
site: $(VENV)/.installed
	$(BIN)/python -m attn_course.classroom.site --out site --size $(SITE_SIZE)

# One short, prepared check on a GPU machine (attn_course/bench/gpucheck.py): kernel tests
# compiled, device peaks, the headline benchmark; one JSON record in GPUCHECK_OUT.
GPUCHECK_OUT ?= records
gpucheck: $(VENV)/.installed
	$(need_repository)
	$(BIN)/python -m attn_course.bench.gpucheck --out $(GPUCHECK_OUT) $(GPUCHECK_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .

# Never workspace/: it holds the learner's work.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis release gradebook site test-artifacts
