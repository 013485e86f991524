# Two commands do everything on a fresh machine:
#   make demo   install, then train + evaluate the demo model on generated data
#   make test   install, then lint and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# pytest options; CI adds the slowest tests' durations to its log
PYTEST_ARGS ?=
# one pytest worker per core, each test module on one worker (module
# fixtures such as the resume runs are built once), the longest modules
# first (tests/conftest.py); PYTEST_WORKERS=0 runs everything in this
# process
PYTEST_WORKERS ?= auto

.PHONY: demo test lint install clean

# pip installs without byte-compiling (it would compile all 15,000 files of
# the environment on one core, about a minute here); Python compiles what is
# imported, once, into __pycache__, which every later interpreter reuses.
# RUN does that even where the environment sets PYTHONDONTWRITEBYTECODE
# (otherwise each of the suite's fresh interpreters, torchrun ranks and the
# installed wheel's tools among them, would compile torch and mmseg again)
RUN := PYTHONDONTWRITEBYTECODE= $(PY)

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install --no-compile -e '.[tests]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(RUN) tools/demo.py

lint: $(VENV)/.installed
	$(PY) -m flake8 mmseg_plugins mmseg_plugins_mmcv_ops tools tests setup.py

test: lint
	$(RUN) -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder \
		$(PYTEST_ARGS)

clean:
	rm -rf $(VENV) work_dirs data/demo_shapes
