# Two entry points (see README): `make demo` runs the GUI on the built-in demo, `make test` runs
# lint + all tests. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint system-deps venv clean

venv: $(STAMP)

# torch==2.13.0 first: pip then takes the CPU wheel already on disk instead of a multi-GB CUDA build.
$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Xvfb and Qt's X libraries: only installed when missing and we may use apt-get.
system-deps:
	@if ! command -v xvfb-run >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      xvfb xauth libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 \
	      libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 \
	      libxcb-xkb1 libegl1 libgl1 libglx-mesa0 libgl1-mesa-dri libfontconfig1 libdbus-1-3 \
	      libxrender1 libxi6 libxtst6 libsm6 libice6 >/dev/null; \
	  else echo "note: xvfb-run not found; 3D view tests will be skipped"; fi; \
	fi

demo: system-deps venv
	$(BIN)/mdss-gui --demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: system-deps venv lint
	@if command -v xvfb-run >/dev/null 2>&1; then \
	  xvfb-run -a -s "-screen 0 1920x1080x24" $(BIN)/python -m pytest; \
	else \
	  QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest; \
	fi

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
