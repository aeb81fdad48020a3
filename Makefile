# certportal: `make run` to try it, `make test` to check it.
PY := .venv/bin/python
MANAGE := $(PY) manage.py
PORT ?= 8443

.PHONY: run test lint bench venv lock messages clean js demo-expire

venv: .venv/.installed

.venv/.installed: requirements.lock
	python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -r requirements.lock
	touch $@

lock:
	python3 -m venv /tmp/certportal-lock && /tmp/certportal-lock/bin/pip install --quiet -e '.[dev]' \
	  && /tmp/certportal-lock/bin/pip freeze --exclude-editable > requirements.lock

# Japanese catalogues: one per app, plus locale/ for screens/ and templates/; translations live in locale/ja.tsv.
messages: venv
	for app in accounts certificates notices; do (cd $$app && ../$(PY) ../manage.py makemessages -l ja --no-wrap -v0); done
	$(MANAGE) makemessages -l ja --no-wrap -v0 --ignore=.venv --ignore=node_modules --ignore=var \
	  --ignore='accounts/?*' --ignore='certificates/?*' --ignore='notices/?*'  # the apps' own files, not screens/<app>/
	for po in */locale/ja/LC_MESSAGES/django.po locale/ja/LC_MESSAGES/django.po; do \
	  $(PY) tools/fill_po.py $$po locale/ja.tsv; done
	$(MANAGE) compilemessages --ignore=.venv -v0

# The enrollment page's script: PKI.js + asn1js from frontend/package-lock.json, bundled by esbuild.
# The bundle is committed, so `make run` works without npm; rebuild it after changing frontend/.
js:
	npm ci --prefix frontend
	npx --prefix frontend esbuild frontend/src/enroll.js --bundle --minify --format=iife --target=es2020 \
	  --outfile=static/certportal/enroll.js

# certportal.run migrates, creates the CA and the demo contract, and serves; var/ is private (umask 077).
# The address e-mails link to, and certificates' CRL address: where `make run` serves (PORT=9443 make run).
run: export CERTPORTAL_PUBLIC_BASE_URL ?= https://127.0.0.1:$(PORT)
run: venv
	$(PY) -m certportal.run --port $(PORT)

# A demo ID's certificate close to its expiry, then the reminder job (debug only; README):
# PORT=9443 ID=demo-user1 DAYS=25 make demo-expire, while `make run` serves on that port.
demo-expire: export CERTPORTAL_PUBLIC_BASE_URL ?= https://127.0.0.1:$(PORT)
demo-expire: venv
	$(MANAGE) demo_expire $(or $(ID),demo-user1) --days $(or $(DAYS),25)

lint: venv
	.venv/bin/ruff check .
	$(MANAGE) makemigrations --check --dry-run >/dev/null

test: lint
	.venv/bin/pytest -n 2 --dist loadgroup
	@if [ -n "$$DATABASE_URL$$CELERY_BROKER_URL" ]; then \
	  echo "== again on the embedded defaults (SQLite, file broker): tests marked embedded"; \
	  env -u DATABASE_URL -u CELERY_BROKER_URL .venv/bin/pytest -m embedded -p no:randomly; \
	fi

bench: venv
	$(PY) -m bench

clean:
	rm -rf var .venv
