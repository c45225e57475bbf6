"""Redaction of secrets on decoded parameter names, in any percent-encoding.

A query parameter's name may be percent-encoded (RFC 3986 section 2.1: ``%73`` is ``s``)
and servers decode it before looking it up: ``si%67=`` is ``sig=`` to Azure Storage, to
aiohttp/yarl and to :func:`urllib.parse.parse_qsl`. So redaction decodes names too,
single or nested (``%2573`` inside an encoded URL), in any case of the hex digits.
"""

from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.redact import REDACTED, redact

pytestmark = pytest.mark.sim

SECRET = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"


@pytest.mark.parametrize(
    "name",
    ["si%67", "%73ig", "%73%69%67", "S%49G", "%53%49%47", "si%4" + "7", "sig"],
)
def test_a_percent_encoded_sig_name_is_redacted(name: str) -> None:
    """``GET ...?sv=...&si%67=<sig>`` is a signature to the server: it never reaches a log."""
    out = redact(f"GET /acct/c/b?sv=2025-01-05&{name}={SECRET}&se=2030")
    assert SECRET not in out
    assert f"{name}={REDACTED}&se=2030" in out


@pytest.mark.parametrize("name", ["Shared%41ccessKey", "%41ccount%4Bey", "AccountK%65y"])
def test_percent_encoded_key_names_of_connection_strings_are_redacted(name: str) -> None:
    out = redact(f"HostName=h;DeviceId=d;{name}={SECRET};x=1")
    assert SECRET not in out and "DeviceId=d" in out and ";x=1" in out


def test_a_nested_url_with_an_encoded_sig_name_is_redacted() -> None:
    """A SAS URL inside another's query: ``%3F``, ``%26`` and ``%3D`` separate, and the
    name inside may itself be encoded once more (``%2573`` is ``%73`` is ``s``)."""
    for nested in (
        f"next=https%3A%2F%2Fh%2Fc%2Fb%3Fsv%3D1%26si%2567%3D{SECRET}%26se%3D2",
        f"next=https%3A%2F%2Fh%2Fc%2Fb%3F%2573ig%3D{SECRET}",
        f"next=https%3A%2F%2Fh%2Fc%2Fb%3Fsig%3D{SECRET}",
    ):
        assert SECRET not in redact(nested), nested


def test_names_that_only_contain_sig_are_left_alone() -> None:
    """Only a parameter named sig is a signature: ``xsig``, ``sigma`` or ``design`` are not."""
    text = "xsig=1&sigma=2&design=3&si%67x=4"
    assert redact(text) == text


def test_the_shared_key_authorization_header_is_redacted() -> None:
    """``Authorization: SharedKey account:signature`` (Authorize with Shared Key)."""
    out = redact(f"Authorization: SharedKey devstoreaccount1:{SECRET}")
    assert SECRET not in out and "devstoreaccount1" in out


_ENCODINGS = st.sampled_from(["plain", "lower", "upper"])


def _encode(name: str, picks: list[str]) -> str:
    out = []
    for char, how in zip(name, picks, strict=False):
        if how == "plain":
            out.append(char)
        else:
            hex_ = f"{ord(char):02X}"
            out.append("%" + (hex_.lower() if how == "lower" else hex_))
    return "".join(out)


@given(
    name=st.sampled_from(["sig", "SharedAccessKey", "AccountKey"]),
    picks=st.lists(_ENCODINGS, min_size=16, max_size=16),
    value=st.text(alphabet="ABCDEFabcdef0123456789+/%=", min_size=8, max_size=40).filter(
        lambda v: "%" not in v
    ),
    before=st.sampled_from(["?", "&", ";", " ", "%3F", "%26"]),
)
def test_any_encoding_of_a_secret_name_is_redacted(
    name: str, picks: list[str], value: str, before: str
) -> None:
    """Whatever characters of the name are percent-encoded (either case of hex), the
    value is gone; the value itself is base64 as Azure signs it, plain or encoded."""
    encoded_value = quote(value, safe="")
    text = f"https://h/c/b{before}{_encode(name, picks)}={encoded_value}&se=1"
    out = redact(text)
    assert encoded_value not in out
    assert value not in out.replace("&se=1", "")


@given(
    name=st.sampled_from(["sig", "sv", "se", "sp"]),
    picks=st.lists(_ENCODINGS, min_size=3, max_size=3),
)
def test_every_name_a_parser_reads_as_sig_is_redacted(name: str, picks: list[str]) -> None:
    """Agreement with a real parser: whenever ``parse_qsl`` reads a parameter as ``sig``
    its value never survives redaction."""
    query = f"sv=1&{_encode(name, picks)}={SECRET}"
    parsed = dict(parse_qsl(query))
    if parsed.get("sig") is not None:
        assert SECRET not in redact(query)


def test_reports_and_instruction_errors_redact_encoded_names_too() -> None:
    """What reaches the twin (``Detail``) and what an exception says go through the same
    redaction: a SAS whose ``sig`` name is encoded leaks through neither."""
    from agent.instruction import InvalidInstruction
    from agent.report import ErrorText, Report, Status, to_reported

    detail = f"GET https://a.blob.core.windows.net/c/b?sv=1&%73ig={SECRET} failed"
    sent = to_reported(Report(Status.INTERRUPTED, ErrorText.NETWORK_TIMEOUT, detail=detail))
    assert SECRET not in str(sent)
    assert SECRET not in str(InvalidInstruction("extFwInfo.url", detail))
