# Two commands do everything on a fresh machine:
#   make demo   install, then train + evaluate the demo model on generated data
#   make test   install, then lint and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# pytest options; CI adds the slowest tests' durations to its log
PYTEST_ARGS ?=
# one pytest worker per core, each test module on one worker (module
# fixtures such as the resume runs are built once); PYTEST_WORKERS=0 runs
# everything in this process
PYTEST_WORKERS ?= auto

.PHONY: demo test lint install clean

# pip installs without byte-compiling, compileall then compiles on every
# core (pip compiles on one: a sixth of the install time); the few files
# that do not compile on this Python (torch's py312_*.py, say) are skipped,
# as pip skips them
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install --no-compile -e '.[tests]'
	-$(PY) -m compileall -qq -j 0 $(VENV)/lib
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) tools/demo.py

lint: $(VENV)/.installed
	$(PY) -m flake8 mmseg_plugins mmseg_plugins_mmcv_ops tools tests setup.py

test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) work_dirs data/demo_shapes
