"""Remove secrets from text before it is logged, reported or raised.

A blob SAS carries its HMAC in ``sig=`` (Azure "Create a service SAS": the
signature is the only part that grants access); an IoT Hub or storage connection
string carries its key in ``SharedAccessKey=`` or ``AccountKey=``; a Shared Key
request carries its HMAC in ``Authorization: SharedKey account:signature``.
Everything the project logs, reports, records or raises goes through :func:`redact`.

Names are compared as a server reads them, decoded: a query parameter name may be
percent-encoded (RFC 3986 section 2.1), and Azure, yarl and ``parse_qsl`` all take
``si%67=`` for ``sig=``. A URL nested in another's query is encoded once more
(``%2573`` for ``s``, ``%3D`` for ``=``, ``%26`` for ``&``), so names and separators are
decoded at any depth, with hex digits in either case.
"""

import re
from urllib.parse import unquote

REDACTED = "REDACTED"

SECRET_NAMES = frozenset({"sig", "sharedaccesskey", "accountkey"})
"""Parameter names whose value is a secret, lowercase (compared case-insensitively)."""

# One percent-escape at any nesting depth: %XX, %25XX, %2525XX, ...
_ESC = r"%(?:25)*[0-9A-Fa-f]{2}"
# A character of a name: unreserved (RFC 3986 2.3) or an escape of a letter or digit.
_NAME_CHAR = r"(?:[A-Za-z0-9_.~-]|%(?:25)*(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]))"
_EQUALS = r"(?:=|%(?:25)*3[Dd])"
# A value runs to the next separator of a query or connection string (plain or
# encoded & and ;), whitespace, a quote or an angle bracket.
_VALUE = r"(?:[^&;%\s\"'<>]|%(?!(?:25)*(?:26|3[Bb]))(?:25)*[0-9A-Fa-f]{2}|%)*"
_TOKEN = re.compile(
    rf"(?P<name>{_NAME_CHAR}+)(?P<eq>{_EQUALS})(?P<value>{_VALUE})"
    rf"|{_ESC}"  # an escape that is not part of a name (an encoded ?, & or /) is skipped
    r"|[A-Za-z0-9_.~-]+"  # so is a word without "=": a name never starts mid-word
)
_SHARED_KEY = re.compile(r"(?i)(SharedKey\s+[^:\s]+:)\S+")


def decoded_name(name: str) -> str:
    """``name`` percent-decoded until it no longer changes (at most 8 levels), lowercase."""
    for _ in range(8):
        plain = unquote(name)
        if plain == name:
            break
        name = plain
    return name.lower()


def is_secret_name(name: str) -> bool:
    """Whether ``name`` (raw or percent-encoded at any depth) names a secret parameter."""
    return decoded_name(name) in SECRET_NAMES


def _redact_parameters(text: str) -> str:
    out: list[str] = []
    pos = 0
    while (match := _TOKEN.search(text, pos)) is not None:
        name = match.group("name")
        if name is not None and is_secret_name(name):
            out.append(text[pos : match.start("value")] + REDACTED)
            pos = match.end()
        elif name is not None:
            # not a secret: its value may hold a nested URL, so scan on inside it
            out.append(text[pos : match.end("eq")])
            pos = match.end("eq")
        else:
            out.append(text[pos : match.end()])
            pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def redact(text: str) -> str:
    """Return ``text`` with the value of every ``sig``, ``SharedAccessKey`` and
    ``AccountKey`` parameter, and every Shared Key signature, replaced by ``REDACTED``.
    Names are matched decoded and case-insensitively."""
    return _SHARED_KEY.sub(r"\1" + REDACTED, _redact_parameters(text))
