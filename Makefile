# Nudge — the two commands on a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SCENARIO ?=
PYTEST_ARGS ?=

.PHONY: venv lint test test-unit reliability bench demo clean browser imap pdftotext

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's chromium drives the web UI tests (Playwright is told its path; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)) \
	      || echo "could not install chromium: browser tests will be skipped with a reason"; \
	  else echo "chromium is not installed and cannot be installed here: browser tests will be skipped"; fi; }

# Debian's dovecot-imapd is the real IMAP server of the reply-capture tests (tests/support/imap_server.py).
imap:
	@command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq dovecot-imapd >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq dovecot-imapd)) \
	      || echo "could not install dovecot-imapd: IMAP tests will be skipped with a reason"; \
	  else echo "dovecot is not installed and cannot be installed here: IMAP tests will be skipped"; fi; }

# Debian's pdftotext (poppler-utils) reads the PDFs the tests render (statements, letters) back as text.
pdftotext:
	@command -v pdftotext >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq poppler-utils >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq poppler-utils)) \
	      || echo "could not install poppler-utils: PDF tests will be skipped with a reason"; \
	  else echo "pdftotext is not installed and cannot be installed here: PDF tests will be skipped"; fi; }

lint: $(STAMP)
	$(VENV)/bin/ruff check connector providers web tests bench
	$(VENV)/bin/ruff format --check connector providers web tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Both cores: pytest-xdist spreads the tests over two workers. `worksteal`: each worker takes half the tests in
# order and, when done, takes half of what the other has left, so a few slow modules at the end (the browser pages)
# no longer leave one core idle as `loadfile` (whole modules) did; a module is split at most at that boundary.
test: $(STAMP) browser imap pdftotext lint
	$(PY) -m pytest -n 2 --dist worksteal --durations=25 $(PYTEST_ARGS)

# The fast loop: the pure domain and unit layer, no servers.
test-unit: $(STAMP)
	$(PY) -m pytest -m unit -q $(PYTEST_ARGS)

# The reliability catalogue (docs/reliability-catalogue.md): one test family per RS id and a table of
# id, outcome and seconds at the end. `make test` runs them too (the same table closes its output).
reliability: $(STAMP) browser
	$(PY) -m pytest -n 2 --dist worksteal -q tests/reliability $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench.run $(SCENARIO)

demo: $(STAMP)
	$(VENV)/bin/nudge demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache instance demo-out bench/results bench/.taps
