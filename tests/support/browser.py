"""Debian's Chromium driven by Playwright for Python (it cannot download its own browser here).

Loaded as a pytest plugin from tests/conftest.py: the module-scoped `chromium` fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .clients import certificate_headers, signed_in

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # screenshots, kept by CI
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (CI installs it)"
)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread for as long as it runs; the ORM
    # calls of the tests (and the database flush after each) are still synchronous.
    unsafe = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if unsafe is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = unsafe


def browser_for(chromium, portal, user, certificate, *, language="ja"):
    """A Chromium context logged in as `user`, presenting `certificate` through the proxy headers."""
    session_key = signed_in(user, certificate).session.session_key
    headers = {
        name[len("HTTP_"):].replace("_", "-"): value
        for name, value in certificate_headers(certificate).items()
        # X-Forwarded-Proto https would make Django expect an https Origin on the CSRF check.
        if name.startswith("HTTP_") and name != "HTTP_X_FORWARDED_PROTO"
    }
    context = chromium.new_context(accept_downloads=True, extra_http_headers=headers, locale=language)
    context.add_cookies([
        {"name": "sessionid", "value": session_key, "url": portal.url},
        {"name": "django_language", "value": language, "url": portal.url},
    ])
    return context


def shot(page, name: str, folder: str = "enroll") -> None:
    """A full-page screenshot in test-artifacts/<folder>/, for a person to look at after a CI run."""
    (ARTIFACTS / folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / folder / f"{name}.png"), full_page=True)
