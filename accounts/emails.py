"""The one way the portal renders an e-mail: three templates per e-mail and language.

templates/emails/<language>/<name>-subject.txt, <name>-body.txt and <name>-body.html (the
convention of healthchecks' hc/lib/emails.py). Each language's e-mail is written as a whole
rather than translated string by string: a bank's customer notices are worded by the people
who answer for them, and the Japanese screen labels the customer must look for
(重要なお知らせ, 「電子証明書取得」) appear verbatim in both languages. Dates and times go through
the `japan_time` filters, rendered with the e-mail's language active.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation


def email_language(language: str | None) -> str:
    """`language` if the portal writes e-mails in it, else the default (Japanese)."""
    return language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def render_email(name: str, context: dict, *, to: str, language: str | None) -> EmailMultiAlternatives:
    """The e-mail `name` to `to`, in `language`: a one-line subject, plain text, and HTML as an alternative."""
    language = email_language(language)
    with translation.override(language):
        subject = render_to_string(f"emails/{language}/{name}-subject.txt", context)
        text = render_to_string(f"emails/{language}/{name}-body.txt", context)
        html = render_to_string(f"emails/{language}/{name}-body.html", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),  # one line, whatever the template's whitespace
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    )
    message.attach_alternative(html, "text/html")
    return message
