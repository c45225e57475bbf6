"""Remove secrets from text before it is logged, reported or raised.

A blob SAS carries its HMAC in ``sig=`` (Azure "Create a service SAS": the
signature is the only part that grants access); an IoT Hub or storage connection
string carries its key in ``SharedAccessKey=`` or ``AccountKey=``. Everything the
agent logs or reports goes through :func:`redact`.
"""

import re

REDACTED = "REDACTED"

# The name starts a word, or follows an encoded "?" or "&" (%3F, %26) when a URL is
# nested in another's query; the value runs to the next separator of a query string,
# a connection string, a string literal or whitespace. "%3D" is an encoded "=".
_SECRET = re.compile(
    r"(?P<key>(?:\b|(?<=%3F)|(?<=%26))(?:sig|SharedAccessKey|AccountKey)(?:=|%3D))"
    r"[^&;%\s\"'<>]*(?:%(?!26)[0-9A-F]{2}[^&;%\s\"'<>]*)*",
    re.IGNORECASE,
)
# A SharedAccessSignature header value ("SharedAccessSignature sr=...&sig=...&se=...")
# is covered by the ``sig`` rule above.


def redact(text: str) -> str:
    """Return ``text`` with every ``sig=``, ``SharedAccessKey=`` and ``AccountKey=`` value
    replaced by ``REDACTED``; keys are matched case-insensitively."""
    return _SECRET.sub(lambda m: m.group("key") + REDACTED, text)
