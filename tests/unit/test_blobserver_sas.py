"""Service SAS checks one field at a time, with the clock injected (``check_sas(now=...)``).

Source: "Create a service SAS" (learn.microsoft.com/rest/api/storageservices/
create-service-sas): ``sv`` and ``sr`` and ``sig`` are required, ``sr`` is ``b`` or
``c``, ``st`` is when the token becomes valid and ``se`` when it becomes invalid,
``sip`` limits the client address, ``spr`` is ``https`` or ``https,http``.
Tokens are signed with the server's string-to-sign, which the SDK round-trip
tests pin to the SDK's.
"""

from datetime import UTC, datetime, timedelta

import pytest

from agent.redact import redact
from sim.cloud.blobserver.errors import BlobError
from sim.cloud.blobserver.sas import READ, Operation, check_sas, sas_string_to_sign, sign
from sim.cloud.dev_account import DEV_ACCOUNT, DEV_KEY

pytestmark = pytest.mark.sim

START = datetime(2030, 1, 1, tzinfo=UTC)
EXPIRY = START + timedelta(hours=1)
READ_FW = Operation("firmware", "fw.bin", READ)


def token(**fields):
    """A blob SAS for firmware/fw.bin, signed; a field set to None is left out."""
    params = {
        "sv": "2025-01-05",
        "st": "2030-01-01T00:00:00Z",
        "se": "2030-01-01T01:00:00Z",
        "sp": "r",
        "sr": "b",
    }
    params.update(fields)
    params = {k: v for k, v in params.items() if v is not None}
    path = "firmware" if params.get("sr") != "b" else "firmware/fw.bin"
    params["sig"] = sign(DEV_KEY, sas_string_to_sign(params, DEV_ACCOUNT, path))
    return params


def check(params, *, now=START + timedelta(minutes=5), ip="127.0.0.1", operation=READ_FW):
    check_sas(params, account=DEV_ACCOUNT, key=DEV_KEY, operation=operation, client_ip=ip, now=now)


def refusal(params, **kwargs):
    with pytest.raises(BlobError) as caught:
        check(params, **kwargs)
    return caught.value.status, caught.value.code


def test_a_well_formed_token_is_accepted_within_its_window():
    """The reference case for the refusals below: nothing is wrong with it."""
    check(token())


def test_a_token_becomes_valid_at_its_start_instant():
    """st: "the time when the shared access signature becomes valid" (inclusive)."""
    check(token(), now=START)


def test_a_token_is_refused_at_its_expiry_instant():
    """se: "the time when the shared access signature becomes invalid"."""
    assert refusal(token(), now=EXPIRY) == (403, "AuthenticationFailed")


def test_a_token_without_sv_is_refused():
    """sv (signedVersion) is required."""
    assert refusal(token(sv=None)) == (403, "AuthenticationFailed")


def test_a_token_without_se_is_refused():
    """se (signedExpiry) is required unless a stored access policy gives it."""
    assert refusal(token(se=None)) == (403, "AuthenticationFailed")


def test_a_token_with_an_unknown_resource_type_is_refused():
    """sr is b (blob) or c (container) for a blob service SAS."""
    assert refusal(token(sr="x")) == (403, "AuthorizationResourceTypeMismatch")


def test_a_token_naming_a_stored_access_policy_is_refused():
    """si names a container's stored access policy, which this server does not keep."""
    assert refusal(token(si="policy1")) == (403, "AuthenticationFailed")


def test_a_token_allowing_https_and_http_is_accepted_over_http():
    """spr=https,http permits both protocols."""
    check(token(spr="https,http"))


def test_a_token_for_another_ip_range_is_refused():
    """sip: requests from outside the range answer AuthorizationSourceIPMismatch."""
    params = token(sip="127.0.0.2-127.0.0.9")
    assert refusal(params, ip="127.0.0.1") == (403, "AuthorizationSourceIPMismatch")
    check(params, ip="127.0.0.5")


def test_an_ipv6_client_is_outside_an_ipv4_range():
    """sip: an IPv4 range cannot contain an IPv6 client (``::1``): refused with 403, not
    a server error from comparing addresses of two IP versions."""
    params = token(sip="127.0.0.1-127.0.0.9")
    assert refusal(params, ip="::1") == (403, "AuthorizationSourceIPMismatch")


def test_the_time_frame_refusal_says_so():
    """The cloud's AuthenticationErrorDetail for st/se: "Signature not valid in the
    specified time frame"."""
    with pytest.raises(BlobError) as caught:
        check(token(), now=EXPIRY + timedelta(days=1))
    assert "specified time frame" in caught.value.detail["AuthenticationErrorDetail"]


def test_redact_hides_shared_key_signatures():
    """House rule: never log secrets; an Authorization header keeps only scheme and account."""
    text = "Authorization: SharedKey devstoreaccount1:c2VjcmV0K3NpZw=="
    assert redact(text) == "Authorization: SharedKey devstoreaccount1:REDACTED"


def test_an_expiry_with_seven_fractional_digits_is_azures_own_format():
    """Azure writes SAS times with up to seven fractional digits
    (``2030-01-01T01:00:00.0000000Z``, the .NET round-trip format); they are valid."""
    params = token(st="2030-01-01T00:00:00.1234567Z", se="2030-01-01T01:00:00.0000000Z")
    check(params)
    with pytest.raises(BlobError) as caught:
        check(params, now=EXPIRY)
    assert "time frame" in str(caught.value.detail)


@pytest.mark.parametrize(
    "value", ["2030-01-01T01:00:00.12345678Z", "2030-01-01T01:00:00.Z", "2030-01-01T01:00:0\u0661Z"]
)
def test_an_expiry_with_more_than_seven_fractional_digits_or_non_ascii_is_refused(value):
    with pytest.raises(BlobError) as caught:
        check(token(se=value), now=START)
    assert caught.value.status == 403 and "se" in str(caught.value.detail)
