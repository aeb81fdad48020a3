"""The customer's whole journey of the guide, in Debian's Chromium, on the stacks a bank runs.

Playwright drives /usr/bin/chromium against real servers (tests/support/stack.py): the embedded
default (`make run`: gunicorn's own TLS, SQLite, worker and beat on the filesystem broker)
and the production stack (nginx with mutual TLS and the CRL, gunicorn, PostgreSQL, worker
and beat on Redis, e-mail through anymail to a Postmark stand-in).

1. An ID without a certificate obtains one from 「電子証明書取得」: login ID and password, the
   one-time code read from the e-mail the server actually sent, the key and CSR made in the
   page, the PKCS#12 file saved with a password typed in the page.
2. That file becomes the browser's client certificate in a new browser context (the guide's
   "restart the browser"); login with certificate and password lands on 重要なお知らせ.
3. The stack restarts under libfaketime 30 days before the certificate expires, at 08:59:15
   Japan time; at 09:00 the beat starts the reminder job and the real worker sends the 30-day
   reminder; after login the guidance and its link 「電子証明書の更新はこちら」 appear.
4. The renewal, screen by screen by the guide's labels; the new file logs in from a restarted
   browser, after which the old certificate is refused with a message that says why.

Once in Japanese and once in English on each stack; every screen is saved under
test-artifacts/<stack>-<language>/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.esp_standin import PostmarkStandIn
from tests.support.journey import journey_user, the_journey
from tests.support.net import uses_postgresql
from tests.support.servers import NGINX
from tests.support.stack import embedded_stack, production_stack, require_faketime

# --- the embedded default: SQLite, the filesystem broker, e-mail to files ---------------------


@pytest.fixture
def embedded(transactional_db, ca, tmp_path):
    if uses_postgresql():
        pytest.skip("the embedded stack runs on SQLite and the filesystem broker (make test's embedded pass)")
    require_faketime()
    stack = embedded_stack(tmp_path)
    yield stack
    stack.stop()


@pytest.mark.embedded
@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_guide_end_to_end_in_chromium_on_the_embedded_stack(chromium, embedded, alice, contract_a, language,
                                                                tmp_path):
    the_journey(chromium, embedded, journey_user(contract_a, language), alice, language, tmp_path)


# --- the production stack: nginx, gunicorn, PostgreSQL, Redis ----------------------------------


@pytest.fixture
def production(transactional_db, ca, tmp_path, redis_url):
    if not uses_postgresql():
        pytest.skip("the production stack needs PostgreSQL: set DATABASE_URL=postgres://... (CI does, see .ci/run)")
    if not Path(NGINX).exists():
        pytest.skip(f"the production stack needs nginx at {NGINX} (CI installs Debian's nginx)")
    require_faketime()
    postmark = PostmarkStandIn().start()
    stack = production_stack(tmp_path, redis_url=redis_url, postmark=postmark)
    yield stack
    stack.stop()
    postmark.stop()


@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_guide_end_to_end_in_chromium_on_the_production_stack(chromium, production, alice, contract_a, language,
                                                                  tmp_path):
    the_journey(chromium, production, journey_user(contract_a, language), alice, language, tmp_path)
