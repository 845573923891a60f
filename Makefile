# One place for the commands in the README. `make run` and `make test` set up what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: setup assets translations messages run test lint format clean

setup: $(VENV)/.installed assets translations

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

assets: app/static/vendor/socket.io.min.js

app/static/vendor/socket.io.min.js: package.json package-lock.json scripts/build-assets.mjs
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent build

# compile the .po catalogs into the .mo files gettext reads (the app also does it at start)
translations: $(VENV)/.installed
	$(PY) -m app.i18n

# after changing user-visible text: refresh the template and the catalogs, then translate
messages: $(VENV)/.installed
	$(VENV)/bin/pybabel extract -F babel.cfg -k lazy_gettext --no-location --sort-output \
		--project flask-chat -o app/translations/messages.pot .
	$(VENV)/bin/pybabel update -i app/translations/messages.pot -d app/translations --width 100

run: setup
	$(VENV)/bin/flask-chat serve --host $(HOST) --port $(PORT)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules app/static/vendor instance .pytest_cache .ruff_cache
