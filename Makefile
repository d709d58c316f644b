# Two commands do all set-up on a fresh Linux machine with Python 3.11: `make demo`, `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Installed without dependencies: it requires the GUI opencv-python, which would replace the
# headless cv2 (pyproject lists what it really uses).
NO_DEPS := insightface==2.1
export DAGSTER_HOME ?= $(CURDIR)
export DAM_DATA_DIR ?= $(CURDIR)/data

.PHONY: install system-deps demo test bench dev lint clean-data screenshots

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(NO_DEPS)
	@$(BIN)/python -c "import importlib.metadata as m, sys;\
		sys.exit('opencv-python' in {d.metadata['Name'] for d in m.distributions()})" \
		|| { echo "the GUI opencv-python is installed beside the headless one"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)  ## .venv with everything (idempotent)

demo: install  ## generate a sample library, index it through Dagster, print the catalog
	$(BIN)/python -m dam_assets.demo

system-deps:  ## espeak-ng (speech), PostgreSQL, Redis and chromium for the tests, via apt when missing
	@missing=""; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
		|| missing="$$missing postgresql"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing$$missing"; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: install system-deps  ## the test suite (generates its own media)
	$(BIN)/python -m pytest -q

screenshots: install system-deps  ## rewrite the README's screenshots (docs/screenshots) from the browser test
	DAM_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q dam_assets_tests/test_web_browser.py

bench: install  ## benchmarks, as ratios against baselines measured in the same run
	$(BIN)/python -m dam_assets_tests.benchmarks.foundation
	$(BIN)/python -m dam_assets_tests.benchmarks.scenes_transcripts
	$(BIN)/python -m dam_assets_tests.benchmarks.analytics
	$(BIN)/python -m dam_assets_tests.benchmarks.near_dupes
	$(BIN)/python -m dam_assets_tests.benchmarks.clip_search
	$(BIN)/python -m dam_assets_tests.benchmarks.rig_sync
	$(BIN)/python -m dam_assets_tests.benchmarks.long_audio
	$(BIN)/python -m dam_assets_tests.benchmarks.faces
	$(BIN)/python -m dam_assets_tests.benchmarks.scale
	$(BIN)/python -m dam_assets_tests.benchmarks.realistic
	$(BIN)/python -m dam_assets_tests.benchmarks.library_page
	$(BIN)/python -m dam_assets_tests.benchmarks.scale_materialized --quick

# From DAGSTER_HOME: Dagster resolves dagster.yaml's relative storage folders against it.
dev: install  ## Dagster UI, sensors and schedules on http://localhost:3000
	cd "$(DAGSTER_HOME)" && $(abspath $(BIN))/dagster dev -w $(CURDIR)/workspace.yaml

lint: install
	$(BIN)/ruff check dam_assets dam_assets_tests
	$(BIN)/ruff format --check dam_assets dam_assets_tests

clean-data:  ## delete what the pipeline wrote under DAM_DATA_DIR (never media, models or names)
	@test -x $(BIN)/python || { echo "no $(VENV) yet: nothing was indexed here"; exit 0; }
	$(BIN)/python -m dam_assets.storage.outputs "$(DAM_DATA_DIR)"
