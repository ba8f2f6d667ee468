# Two targets a newcomer needs: `make run` (set up + run the mesh) and `make test`.
PYTHON ?= python3.11
VENV := .venv
SCALE ?= 0.01

.PHONY: run test validate dev benchmark

run: $(VENV)/.installed
	$(VENV)/bin/mesh run --scale $(SCALE)

test: $(VENV)/.installed
	$(VENV)/bin/pytest

# BASE=<git revision> also checks that breaking contract changes since then bumped the major version.
validate: $(VENV)/.installed
	$(VENV)/bin/mesh validate $(if $(BASE),--base $(BASE))

dev: $(VENV)/.installed
	$(VENV)/bin/mesh dev

benchmark: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/mesh_vs_duckdb.py --repeat 3

# Pinned install: direct pins in pyproject.toml, the whole resolved set in constraints.txt.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e ".[test]"
	# pip compiles what it installs, not an editable project: where PYTHONDONTWRITEBYTECODE is set, every mesh
	# process would compile the platform's modules again (0.4 s of the forkserver's start).
	$(VENV)/bin/python -m compileall -q platform_resources operational_systems mesh_code_locations
	touch $@
