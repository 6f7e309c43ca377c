# The commands people type. `make help` lists them.
#
#   make test lab1                 grade assignments/lab1 (IMPL=reference or IMPL=path for others;
#                                  PART=basics, K=expr narrow it; fails while a test fails)
#   make demo [lab2]               grade each lab's examples, starter code and reference
#   make check                     the repository's own test suite (what CI runs)
#   make grade lab1 SUBMISSIONS=DIR   TA batch regrade into OUT (build/grades/lab1): a CSV, one
#                                  row per student; STUDENT=name regrades one into it, DUE=time,
#                                  SCHEDULER=tcp://host:8786 (or local) grades on a Dask cluster
#   make submit lab1               check lab1's files and write dist/lab1-submission.zip
#   make release                   the student repository in dist/student/
#   make autograder lab1           the Gradescope autograder zip dist/lab1-autograder.zip
#   make otter lab1                the otter-grader autograder zip dist/lab1-otter-autograder.zip
#   make stubs                     regenerate assignments/ from reference/
#   make mutation [lab1] [PART=p] [KIND=float32]  mutation score of the hidden suites (slow:
#                                  about an hour; KIND grades one kind of mutant)
#   make flaky [lab1] [N=50] [PART=p] [K=expr]  grade the reference N times; any failure?
#   make honesty [lab1] [PART=p]   trivial implementations (None, zeros, ...) must score 0
#   make crosscheck [lab1] [PART=p] [SETTING=generic]  the reference and the correct
#                                  alternatives under other CPUs' numerics: full marks?
#   make bench                     grading time, memory, throughput -> docs/benchmarks.md
#   make quality                   the latest mutation/honesty/flaky reports -> docs/quality.md
#
# On first use a virtual environment is made in .venv (torch's CPU build first, from
# TORCH_INDEX, then this project with its extras). TORCH_INDEX=URL takes torch from another
# index (a CUDA build); TORCH_INDEX= from pip's own configuration only. PYTHON=/path/to/python
# uses that interpreter as it is instead.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
TORCH_VERSION ?= 2.13.0
# An extra index, so that wheels pip already finds (a local folder, a mirror) still serve;
# torch alone comes from it (--no-deps), its dependencies with the project's, as usual.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
ifdef PYTHON
PY := $(PYTHON)
ENV_STAMP :=
CHECK_STAMP :=
else
PY := $(VENV)/bin/python
ENV_STAMP := $(VENV)/.installed
CHECK_STAMP := $(VENV)/.installed-check
endif

LABS := $(patsubst autograder/%/lab.toml,%,$(wildcard autograder/*/lab.toml))

# `make test lab1`: the word after the command names the lab.
LAB_COMMANDS := test demo grade submit autograder otter mutation flaky honesty crosscheck
ifneq ($(filter $(firstword $(MAKECMDGOALS)),$(LAB_COMMANDS)),)
LAB_ARG := $(word 2,$(MAKECMDGOALS))
ifneq ($(LAB_ARG),)
$(eval $(LAB_ARG):;@:)
endif
endif
LAB ?= $(LAB_ARG)

IMPL ?= assignments
SEED ?=
SEED_ARG := $(if $(SEED),--seed $(SEED),)

.PHONY: help venv test demo check stubs grade submit release autograder otter mutation flaky \
	honesty crosscheck quality bench lint clean

help:
	@awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' Makefile
	@echo "labs: $(LABS)"

$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
	  $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),) torch==$(TORCH_VERSION)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(VENV)/.installed-check: $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,otter,cluster]'
	@touch $@

venv: $(ENV_STAMP)

# IMPL=assignments (default), IMPL=reference, or IMPL=path/to/folder-or.zip; PART=basics and
# K=expr (pytest's -k) grade only some tests. Fails when a test fails, as pytest does: on the
# starter code (the default IMPL) every test fails.
NARROW := $(foreach part,$(PART),--part $(part)) $(if $(K),-k "$(K)",)

test: $(ENV_STAMP)
	@labs="$(or $(LAB),$(LABS))"; status=0; for lab in $$labs; do \
	  case "$(IMPL)" in assignments|reference) impl="$(IMPL)/$$lab";; *) impl="$(IMPL)";; esac; \
	  $(PY) -m autograder grade $$lab "$$impl" --results build/results/$$lab.json $(SEED_ARG) \
	    --fail-on-failure $(NARROW) || status=$$?; \
	done; exit $$status

# every lab: its bundled examples, the starter code and the reference graded as a batch
demo: $(ENV_STAMP)
	@rm -rf build/demo
	@for lab in $(or $(LAB),$(LABS)); do \
	  mkdir -p build/demo/$$lab/submissions; \
	  if [ -d examples/$$lab ]; then cp -r examples/$$lab/. build/demo/$$lab/submissions/; fi; \
	  cp -r assignments/$$lab build/demo/$$lab/submissions/starter-code; \
	  cp -r reference/$$lab build/demo/$$lab/submissions/reference-solution; \
	  $(PY) -m autograder batch $$lab build/demo/$$lab/submissions \
	    --out build/demo/$$lab/results $(SEED_ARG) || exit $$?; \
	done

# OUT=folder (default build/grades/LAB), STUDENT=name-sid-email-or-folder regrades one
# submission into OUT's CSV (at its seed unless SEED is given), DUE="2025-09-15 23:59 -07:00"
# fills the lateness column, JOBS=n, PARTS="basics bandits", K=expr (pytest's -k);
# SCHEDULER=tcp://host:8786 sends the gradings to that Dask cluster, SCHEDULER=local to one
# started on this machine with JOBS workers (both need the cluster extra: README.md, TAs)
grade: $(ENV_STAMP)
	@test -n "$(LAB)" || { echo "usage: make grade lab1 SUBMISSIONS=DIR"; exit 2; }
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade $(LAB) SUBMISSIONS=DIR"; exit 2; }
	$(PY) -m autograder batch $(LAB) "$(SUBMISSIONS)" --out "$(or $(OUT),build/grades/$(LAB))" \
	  $(SEED_ARG) $(PART_ARGS) $(if $(K),-k "$(K)",) $(if $(JOBS),--jobs $(JOBS),) \
	  $(if $(STUDENT),--student "$(STUDENT)",) $(if $(DUE),--due "$(DUE)",) \
	  $(if $(SCHEDULER),--scheduler "$(SCHEDULER)",)

# IMPL=assignments (default), or a folder or zip; FORCE=1 writes the zip despite problems
submit: $(ENV_STAMP)
	@test -n "$(LAB)" || { echo "usage: make submit lab1"; exit 2; }
	@case "$(IMPL)" in assignments|reference) impl="$(IMPL)/$(LAB)";; *) impl="$(IMPL)";; esac; \
	  $(PY) -m autograder submit $(LAB) "$$impl" --out dist/$(LAB)-submission.zip \
	    $(if $(FORCE),--force,)

# `make release` (every lab) or `make release lab1 lab2`: the labs of the student repository.
RELEASE_LABS := $(if $(filter release,$(firstword $(MAKECMDGOALS))),$(wordlist 2,99,$(MAKECMDGOALS)),)
ifneq ($(RELEASE_LABS),)
$(eval $(RELEASE_LABS):;@:)
endif
release: $(ENV_STAMP)
	$(PY) -m autograder release --out dist/student $(foreach lab,$(RELEASE_LABS),--lab $(lab))

# PARTS="basics bandits" builds a zip that grades only those parts
PART_ARGS := $(foreach part,$(PARTS),--part $(part))

autograder: $(ENV_STAMP)
	@test -n "$(LAB)" || { echo "usage: make autograder lab1"; exit 2; }
	$(PY) -m autograder autograder-zip $(LAB) --out dist/$(LAB)-autograder.zip $(PART_ARGS)

otter: $(CHECK_STAMP)
	@test -n "$(LAB)" || { echo "usage: make otter lab1"; exit 2; }
	$(PY) -m autograder otter-zip $(LAB) --out dist/$(LAB)-otter-autograder.zip $(PART_ARGS)

stubs: $(ENV_STAMP)
	$(PY) -m autograder stubs

# The quality gates of the suites themselves (bench/): see README.md
N ?= 50
LAB_ARGS := $(if $(LAB),--lab $(LAB),)

mutation: $(ENV_STAMP)
	$(PY) -m bench.mutation $(LAB_ARGS) $(if $(PART),--part $(PART),) \
	  $(if $(KIND),--kind "$(KIND)",)

flaky: $(ENV_STAMP)
	$(PY) -m bench.flaky $(LAB_ARGS) --runs $(N) $(if $(PART),--part $(PART),) $(if $(K),-k "$(K)",)

honesty: $(ENV_STAMP)
	$(PY) -m bench.honesty $(LAB_ARGS) $(if $(PART),--part $(PART),)

crosscheck: $(ENV_STAMP)
	$(PY) -m bench.crosscheck $(LAB_ARGS) $(if $(PART),--part $(PART),) \
	  $(if $(SETTING),--setting $(SETTING),)

quality: $(ENV_STAMP)
	$(PY) -m bench.quality

bench: $(ENV_STAMP)
	$(PY) -m bench.benchmarks

lint: $(ENV_STAMP)
	$(PY) -m ruff check autograder reference tests bench

check: $(CHECK_STAMP)
	$(PY) -m autograder stubs --check
	$(PY) -m ruff check autograder reference tests bench
	$(PY) -m pytest tests -q -n 2 --dist loadgroup

clean:
	rm -rf build dist .pytest_cache
