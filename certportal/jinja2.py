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
- `current_language`: the active language, read once per page (page_language, a context processor);
  `_` and the date filters of a page rendered with a request use it instead of asking Django again.
- `csrf_form_field(request)`: the hidden field of Django's CSRF token, masked as Django masks it.
- `url(name, *args)`, `static(path)`, `messages(request)`, `language_code()`, `languages()`.
- the filters `japan_time`, `japan_date` (accounts/japan_time.py) and `linebreaks`.
"""

from __future__ import annotations

import functools
import html
import re
import secrets
from collections import ChainMap
from collections.abc import Callable, MutableMapping
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.contrib.messages import get_messages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH, get_token
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import translation
from django.utils.autoreload import file_changed
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from accounts import japan_time as formats


def environment(**options: Any) -> Environment:
    options.pop("autoescape", None)  # Django's backend asks for it too; here it is not negotiable
    env = ScreensEnvironment(autoescape=True, extensions=["jinja2.ext.i18n"], **options)
    # Not "newstyle": `_("…")` stays a call `make messages` can read; interpolate fills it in.
    env.install_gettext_callables(translation.gettext, translation.ngettext, newstyle=False)
    env.globals["_"] = translation.gettext  # called directly, not through the extension's alias
    env.globals.update(
        csrf_form_field=csrf_form_field, url=url, static=static_url, messages=get_messages,
        language_code=translation.get_language, languages=languages,
    )
    env.filters.update(
        japan_time=japan_time, japan_date=japan_date, linebreaks=linebreaks, interpolate=interpolate,
    )
    return env


class ScreensEnvironment(Environment):
    """Jinja2's Environment, whose templates read their globals without raising an exception for each one.

    A template's globals are a ChainMap of its own (none here) over the environment's. Every render
    copies them into its context, and ChainMap looks each name up in the first map by catching a
    KeyError: seventeen exceptions a page.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return _Globals(d if d is not None else {}, self.globals)


class _Globals(ChainMap):
    def __getitem__(self, key: str) -> Any:
        for mapping in self.maps:
            if key in mapping:
                return mapping[key]
        return self.__missing__(key)


def page_language(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the page's language, read once, and `_` in it.

    Django's gettext and get_language look the active language up anew at every call, in
    asgiref's context-local storage; 重要なお知らせ asked about twenty times per view.
    """
    language = translation.get_language()
    return {"current_language": language, "_": _messages_in(language)}


@functools.cache
def _messages_in(language: str | None) -> Callable[[str], str]:
    """gettext of `language`: each message is translated by Django once per process, then remembered."""
    translated: dict[str, str] = {}

    def gettext(message: str) -> str:
        try:
            return translated[message]
        except KeyError:
            with translation.override(language):  # None, as get_language() gives when deactivated: untranslated
                translated[message] = result = translation.gettext(message)
            return result

    return gettext


@pass_context
def japan_time(context: Context, moment: datetime | None) -> str:
    """accounts/japan_time.py's, in the page's language."""
    return "" if moment is None else formats.japan_time(moment, context.get("current_language"))


@pass_context
def japan_date(context: Context, day: date | datetime | None) -> str:
    """accounts/japan_time.py's, in the page's language."""
    return "" if day is None else formats.japan_date(day, context.get("current_language"))


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
    if setting in {"LANGUAGES", "LANGUAGE_CODE", "LOCALE_PATHS"}:  # as Django's own translations are dropped
        _messages_in.cache_clear()


@receiver(file_changed)
def _forget_translations_of_a_changed_catalogue(*, file_path: Any, **kwargs: object) -> None:
    """The development server reloads a changed .mo file's catalogue without a restart (Django's own reloader)."""
    if str(file_path).endswith(".mo"):
        _messages_in.cache_clear()


@functools.lru_cache(maxsize=256)
def _reversed(urlconf: str, script_prefix: str, name: str) -> str:
    return reverse(name, urlconf=urlconf)


def csrf_form_field(request: HttpRequest) -> Markup:
    """The form field of Django's CSRF token: what get_token gives, with its mask drawn in one read of the
    system's randomness instead of Django's one read per character (32 getrandom calls, a tenth of
    重要なお知らせ's work).

    The secret, its cookie and its renewal stay Django's: a request without the cookie gets Django's
    own token and a new cookie; with it, the cookie is sent again to renew its expiry, as get_token does.
    The token is Django's masked form (a random mask, then the secret shifted by it), as BREACH asks.
    """
    secret = request.META.get("CSRF_COOKIE")
    if secret is None:
        token = get_token(request)
    else:
        request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
        mask = _random_csrf_positions(CSRF_SECRET_LENGTH)
        base = len(CSRF_ALLOWED_CHARS)
        shifted = [(_CSRF_POSITION[char] + shift) % base for char, shift in zip(secret, mask, strict=True)]
        token = "".join([CSRF_ALLOWED_CHARS[position] for position in mask + shifted])
    return Markup('<input type="hidden" name="csrfmiddlewaretoken" value="%s">') % token


_CSRF_POSITION = {char: position for position, char in enumerate(CSRF_ALLOWED_CHARS)}


def _random_csrf_positions(length: int) -> list[int]:
    """`length` positions in Django's CSRF alphabet (62 characters), each as likely, from as few reads of the
    system's randomness as possible: a random byte under 248 (4 × 62) gives one; a higher one is dropped, so
    that no character is favoured."""
    base = len(CSRF_ALLOWED_CHARS)
    limit = 256 // base * base
    drawn: list[int] = []
    while len(drawn) < length:
        drawn += [byte % base for byte in secrets.token_bytes(length + 8) if byte < limit]
    return drawn[:length]


_NEWLINE = re.compile(r"\r\n|\r")  # as django.utils.text.normalize_newlines
_PARAGRAPH_BREAK = re.compile(r"\n{2,}")


def linebreaks(text: Any) -> Markup:
    """Django's linebreaks filter, as it writes for an autoescaped page: the text escaped (unless it is markup
    already), each paragraph in <p>, each single line break a <br>.

    The same output without its lazy-text wrappers, which cost more than the work itself for a notice.
    """
    escape = (lambda paragraph: paragraph) if hasattr(text, "__html__") else html.escape
    paragraphs = _PARAGRAPH_BREAK.split(_NEWLINE.sub("\n", str(text)))
    paragraphs = (escape(paragraph).replace("\n", "<br>") for paragraph in paragraphs)
    return Markup("\n\n".join(f"<p>{paragraph}</p>" for paragraph in paragraphs))  # noqa: S704 (escaped above)


def interpolate(message: str, **values: Any) -> Markup:
    """A translated message with %(name)s placeholders, filled with escaped values (its own markup kept)."""
    # The translation's own markup is trusted, as {% blocktranslate %} trusts it; never the values.
    return Markup(message) % values  # noqa: S704 (Markup's % escapes each value)


@functools.cache
def languages() -> tuple[tuple[str, str], ...]:
    """(code, name in that language) of each UI language, for the language switch: settings.LANGUAGES, read once."""
    return tuple((code, translation.get_language_info(code)["name_local"]) for code, _name in settings.LANGUAGES)

