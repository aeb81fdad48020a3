"""The Jinja2 environment of the customers' pages: the screens of the customer guide (screens/, and an app's jinja2/).

Jinja2 compiles a template to Python once per process, so the screen after every login
(重要なお知らせ) costs a few string joins instead of Django's node-by-node rendering, which was
the largest part of its CPU time (README, Benchmarks). Both admin sites and the e-mails stay
on Django's template language, as the admin requires it.

What a page may use, besides its context and Django's `request`, `csrf_input` and `csrf_token`:
- `_("…")` and `ngettext`: Django's translation of the active language. A literal `_("…")` is
  what `make messages` extracts, as it does from Django's templates. Placeholders are filled
  with `|interpolate(name=value)`, which escapes the values but not the translation, as
  `{% blocktranslate %}` does.
- `url(name, *args)`, `static(path)`, `messages(request)`, `language_code()`, `languages()`.
- the filters `japan_time`, `japan_date` (accounts/japan_time.py) and `linebreaks`.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.contrib.messages import get_messages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template.defaultfilters import linebreaks_filter
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import translation
from jinja2 import Environment
from markupsafe import Markup

from accounts.templatetags.japan_time import japan_date, japan_time


def environment(**options: Any) -> Environment:
    options.pop("autoescape", None)  # Django's backend asks for it too; here it is not negotiable
    env = Environment(autoescape=True, extensions=["jinja2.ext.i18n"], **options)
    # Not "newstyle": `_("…")` stays a call `make messages` can read; interpolate fills it in.
    env.install_gettext_callables(translation.gettext, translation.ngettext, newstyle=False)
    env.globals["_"] = translation.gettext  # called directly, not through the extension's alias
    env.globals.update(
        url=url, static=static_url, messages=get_messages, language_code=translation.get_language, languages=languages,
    )
    # Django's linebreaks filter (the text escaped, then <p> and <br>, marked safe), not the unescaped utility.
    env.filters.update(
        japan_time=japan_time, japan_date=japan_date, linebreaks=linebreaks_filter, interpolate=interpolate,
    )
    return env


def url(name: str, *args: Any) -> str:
    """reverse(); a named URL without arguments is looked up once per URLconf and script prefix, as
    every screen's chrome asks for the same few (the language switch, the logout)."""
    if args:
        return reverse(name, args=args)
    return _reversed(get_urlconf() or settings.ROOT_URLCONF, get_script_prefix(), name)


@functools.lru_cache(maxsize=256)
def static_url(path: str) -> str:
    """Django's {% static %}, once per file and process: a static file's address changes only with the
    settings (STATIC_URL, STORAGES), and collectstatic's new files come with a restart."""
    return static(path)


@receiver(setting_changed)
def _forget_what_settings_decided(*, setting: str, **kwargs: object) -> None:
    if setting in {"STATIC_URL", "STORAGES", "INSTALLED_APPS"}:
        static_url.cache_clear()
    if setting == "LANGUAGES":
        languages.cache_clear()


@functools.lru_cache(maxsize=256)
def _reversed(urlconf: str, script_prefix: str, name: str) -> str:
    return reverse(name, urlconf=urlconf)


def interpolate(message: str, **values: Any) -> Markup:
    """A translated message with %(name)s placeholders, filled with escaped values (its own markup kept)."""
    # The translation's own markup is trusted, as {% blocktranslate %} trusts it; never the values.
    return Markup(message) % values  # noqa: S704 (Markup's % escapes each value)


@functools.cache
def languages() -> tuple[tuple[str, str], ...]:
    """(code, name in that language) of each UI language, for the language switch: settings.LANGUAGES, read once."""
    return tuple((code, translation.get_language_info(code)["name_local"]) for code, _name in settings.LANGUAGES)

