"""Reading the JSON body the enrollment page sends, so that no body can make a view fail.

json.loads raises ValueError for malformed text or bytes that are not UTF-8, and
RecursionError for nesting deeper than the interpreter's recursion limit (about 1,000
levels); Django raises RequestDataTooBig past DATA_UPLOAD_MAX_MEMORY_SIZE. Each becomes
UnreadableBody with the HTTP status to answer.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

# A CSR is at most 16 KiB (certificates.csr.MAX_CSR_BYTES); with JSON's escaping, well under this.
MAX_JSON_BYTES = 64 * 1024


class UnreadableBody(Exception):
    def __init__(self, status: int, message) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message


def read_json_object(request: HttpRequest, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's body as a JSON object, or UnreadableBody (415, 413 or 400)."""
    if request.content_type != "application/json":
        raise UnreadableBody(415, _("The request from the page could not be read. Reload it and try again."))
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    try:
        if declared > max_bytes or len(body := request.body) > max_bytes:
            raise UnreadableBody(413, _("The request from the page is too large."))
        value = json.loads(body)
    except RequestDataTooBig:
        raise UnreadableBody(413, _("The request from the page is too large.")) from None
    except (ValueError, RecursionError):  # malformed, not UTF-8, or nested too deep to parse
        raise UnreadableBody(400, _("The request from the page could not be read. Reload it and try again.")) from None
    if not isinstance(value, dict):
        raise UnreadableBody(400, _("The request from the page could not be read. Reload it and try again."))
    return value
