"""`manage.py check --deploy`: what a production CA must not run without."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def weak_key_blocklist(app_configs, **kwargs) -> list[Warning]:
    if settings.WEAK_KEY_BLOCKLIST:
        return []
    return [Warning(
        "No weak-key blocklist: CERTPORTAL_WEAK_KEY_BLOCKLIST is not set and badkeys' cache has none, so keys on "
        "badkeys' blocklist (Debian's CVE-2008-0166 keys among them) would be certified.",
        hint="Install it with `badkeys --update-bl` on a connected machine, copy its blocklist.dat here and name it "
        "in CERTPORTAL_WEAK_KEY_BLOCKLIST (deploy/README.md, Weak keys).",
        id="certificates.W001",
    )]
