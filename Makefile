# lcstats: `make report` builds the example evaluation report, `make test` runs every test.
# Both create the virtual environment (.venv) with pinned versions on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup report test lint format lab docs example-data benchmark clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lcstats needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name lcstats --display-name "Python (lcstats)" > /dev/null
	$(BIN)/jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" > /dev/null 2>&1
	if [ -d .git ]; then $(BIN)/nbstripout --install --extra-keys "metadata.papermill cell.metadata.papermill"; fi
# git checks the notebooks through the filter once, here, rather than in the first run (best effort)
	if [ -d .git ]; then git status --porcelain --untracked-files=no > /dev/null 2>&1 || true; fi
	touch $(STAMP)

setup: $(STAMP)

report: setup
	$(BIN)/lcstats run params/example.yaml

test: setup
	tools/ensure-system-packages
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check lcstats tests benchmarks tools
	$(BIN)/ruff format --check lcstats tests benchmarks tools
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format lcstats tests benchmarks tools
	$(BIN)/ruff check --fix lcstats tests benchmarks tools

lab: setup
	tools/lab

docs: setup
	$(BIN)/python tools/make_docs.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "docs: site/index.html"

example-data: setup
	$(BIN)/lcstats simulate --out data/example --learners 2000 --seed 20261128 --activity parquet
	$(BIN)/lcstats simulate --out data/example-sales --learners 1200 --seed 20261203 --activity parquet
	$(BIN)/lcstats simulate --design randomised --out data/example-pilot --learners 800 --seed 20261202
	$(BIN)/lcstats simulate --design staggered --out data/example-rollout --learners 600 --seed 20261201 --assessment-gap 3

benchmark: setup
	$(BIN)/python benchmarks/estimator_speed.py
	$(BIN)/python benchmarks/run_speed.py

clean:
	rm -rf $(VENV) reports/*/ reports/runs.sqlite .pytest_cache site
