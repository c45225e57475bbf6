"""The OTA instruction parser: the twin's desired ``extFwInfo`` (reference design, "Cloud
contract": ``{version, size, url, sas, sha256}``, all required, version > 0, size > 0).

Fixture files in ``fixtures/twins/`` are named ``valid-*.json`` (parses to an
instruction), ``none-*.json`` (nothing about firmware) and ``invalid-<field>-*.json``
(raises :class:`InvalidInstruction` naming ``extFwInfo.<field>``, or ``extFwInfo``).
"""

import hashlib
import json
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.instruction import LOOPBACK_HOSTS, Instruction, InvalidInstruction, parse_instruction
from agent.redact import redact

pytestmark = pytest.mark.sim

IMAGE = b"\x5a" * 1000
SHA = hashlib.sha256(IMAGE).hexdigest().upper()
URL = "https://contosoota.blob.core.windows.net/ota/firmware.bin"
SIG = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
SAS = f"sv=2019-02-02&sr=c&sp=rl&se=2027-01-01T00%3A00%3A00Z&sig={SIG}"
TWINS = Path(__file__).resolve().parents[2] / "fixtures" / "twins"
LOOPBACK = LOOPBACK_HOSTS


def info(**changes: object) -> dict:
    """A valid extFwInfo with ``changes`` applied; ``...`` removes a key."""
    doc: dict = {"version": 3, "size": len(IMAGE), "url": URL, "sas": SAS, "sha256": SHA}
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def patch(**changes: object) -> dict:
    return {"extFwInfo": info(**changes), "$version": 4}


def field_of(**changes: object) -> str:
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(patch(**changes))
    assert SIG not in str(caught.value)
    return caught.value.field


# --- document shapes ----------------------------------------------------------------------


def test_desired_patch_parses_to_instruction() -> None:
    """A desired patch is the root object with extFwInfo (reference design, cloud contract)."""
    got = parse_instruction(patch())
    assert got == Instruction(
        version=3, size=len(IMAGE), url=URL, sas=SAS, sha256=hashlib.sha256(IMAGE).digest()
    )


def test_full_twin_uses_desired_not_reported() -> None:
    """A full twin (get_twin) carries the instruction under desired; reported.extFwInfo is
    the device's own status and must not be read as an instruction."""
    twin = {
        "desired": {"extFwInfo": info(version=9), "$version": 2},
        "reported": {"extFwInfo": {"Status": "applied", "Error": "None", "Version": 2}},
    }
    got = parse_instruction(twin)
    assert got is not None and got.version == 9


def test_full_twin_without_instruction_gives_none() -> None:
    """A full twin whose desired has no extFwInfo holds no job, even if reported has one."""
    twin = {"desired": {"$version": 1}, "reported": {"extFwInfo": {"Status": "applied"}}}
    assert parse_instruction(twin) is None


def test_full_twin_with_non_object_desired_is_invalid() -> None:
    """desired must be a JSON object (IoT Hub device twin schema)."""
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction({"desired": ["extFwInfo"], "reported": {}})
    assert caught.value.field == "desired"


def test_patch_about_another_property_gives_none() -> None:
    """A patch without extFwInfo is about something else: no job, no error."""
    assert parse_instruction({"telemetryInterval": 30, "$version": 5}) is None


def test_cleared_instruction_gives_none() -> None:
    """``extFwInfo: null`` deletes the property (JSON merge patch, RFC 7386): no new job."""
    assert parse_instruction({"extFwInfo": None, "$version": 6}) is None


def test_non_object_document_is_invalid() -> None:
    """A twin document is a JSON object; anything else is a malformed delivery."""
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(["extFwInfo"])  # type: ignore[arg-type]
    assert caught.value.field == "twin"


def test_extfwinfo_not_an_object_is_invalid() -> None:
    """extFwInfo is an object of five keys (reference design, cloud contract)."""
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction({"extFwInfo": "version 3"})
    assert caught.value.field == "extFwInfo"


# --- weakness #3: a patch missing a key ------------------------------------------------


@pytest.mark.parametrize("key", ["version", "size", "url", "sas", "sha256"])
def test_missing_key_is_invalid_not_a_crash(key: str) -> None:
    """Weakness #3: the original copied strings before its NULL check and crashed on a patch
    missing a key; each missing key must be a clear InvalidInstruction naming it."""
    assert field_of(**{key: ...}) == f"extFwInfo.{key}"


def test_missing_key_message_names_the_key() -> None:
    """The error says which key is missing, so the operator can fix the configuration."""
    with pytest.raises(InvalidInstruction, match=r"extFwInfo\.sha256: missing"):
        parse_instruction(patch(sha256=...))


# --- version and size ------------------------------------------------------------------


@pytest.mark.parametrize("key", ["version", "size"])
def test_bool_is_not_an_integer(key: str) -> None:
    """JSON true is not a number (RFC 8259 section 3), though Python's bool is an int."""
    assert field_of(**{key: True}) == f"extFwInfo.{key}"


@pytest.mark.parametrize("key", ["version", "size"])
def test_numeric_string_is_not_an_integer(key: str) -> None:
    """ "5" is a JSON string, not a number; the contract says int."""
    assert field_of(**{key: "5"}) == f"extFwInfo.{key}"


@pytest.mark.parametrize("key", ["version", "size"])
def test_float_is_not_an_integer(key: str) -> None:
    """A fractional number is not a version or a byte count."""
    assert field_of(**{key: 3.0}) == f"extFwInfo.{key}"


@pytest.mark.parametrize("key", ["version", "size"])
def test_null_value_is_invalid(key: str) -> None:
    """A key present but null is as unusable as a missing one."""
    assert field_of(**{key: None}) == f"extFwInfo.{key}"


def test_version_zero_is_invalid() -> None:
    """Versions start at 0 (the factory image) and an instruction's must be > 0
    (reference design, ota.py: "VERSION must > 0")."""
    assert field_of(version=0) == "extFwInfo.version"


def test_negative_version_is_invalid() -> None:
    """version > 0 (reference design, cloud contract)."""
    assert field_of(version=-4) == "extFwInfo.version"


def test_size_zero_is_invalid() -> None:
    """size > 0 (reference design, cloud contract): an empty image is no firmware."""
    assert field_of(size=0) == "extFwInfo.size"


def test_negative_size_is_invalid() -> None:
    """size > 0 (reference design, cloud contract)."""
    assert field_of(size=-1) == "extFwInfo.size"


def test_size_larger_than_free_space_is_invalid() -> None:
    """Issue 4: a size larger than the free space is refused up front, not after a
    download that cannot fit."""
    with pytest.raises(InvalidInstruction, match="999 bytes free") as caught:
        parse_instruction(patch(size=1000), max_size=999)
    assert caught.value.field == "extFwInfo.size"


def test_size_equal_to_free_space_fits() -> None:
    """max_size is inclusive: an image exactly as large as the free space fits."""
    got = parse_instruction(patch(size=1000), max_size=1000)
    assert got is not None and got.size == 1000


def test_bad_max_size_is_a_programming_error() -> None:
    """max_size is the caller's figure, not the cloud's: a bad one is ValueError, not
    InvalidInstruction (which would be reported to the cloud as the operator's fault)."""
    with pytest.raises(ValueError, match="max_size") as caught:
        parse_instruction(patch(), max_size=-1)
    assert not isinstance(caught.value, InvalidInstruction)


# --- sha256 ------------------------------------------------------------------------------


def test_uppercase_sha256_is_accepted() -> None:
    """The original's ota.py sends the digest in upper-case hex."""
    got = parse_instruction(patch(sha256=SHA.upper()))
    assert got is not None and got.sha256 == hashlib.sha256(IMAGE).digest()


def test_lowercase_sha256_is_accepted() -> None:
    """Hex digits are case-insensitive (RFC 4648 section 8); sha256sum prints lower case."""
    got = parse_instruction(patch(sha256=SHA.lower()))
    assert got is not None and got.sha256 == hashlib.sha256(IMAGE).digest()


def test_short_sha256_is_invalid() -> None:
    """SHA-256 is 32 bytes, 64 hex digits (FIPS 180-4)."""
    assert field_of(sha256=SHA[:62]) == "extFwInfo.sha256"


def test_long_sha256_is_invalid() -> None:
    """SHA-256 is 32 bytes, 64 hex digits (FIPS 180-4)."""
    assert field_of(sha256=SHA + "00") == "extFwInfo.sha256"


def test_non_hex_sha256_is_invalid() -> None:
    """Only 0-9, a-f, A-F are hex digits."""
    assert field_of(sha256="G" + SHA[1:]) == "extFwInfo.sha256"


def test_sha256_with_spaces_is_invalid() -> None:
    """bytes.fromhex skips spaces; the parser must not: a spaced digest is malformed."""
    spaced = " ".join(SHA[i : i + 2] for i in range(0, 64, 2))[:64]
    assert field_of(sha256=spaced) == "extFwInfo.sha256"


def test_non_string_sha256_is_invalid() -> None:
    """sha256 is a hex string in the contract, not a number or an array."""
    assert field_of(sha256=12345) == "extFwInfo.sha256"


# --- url -------------------------------------------------------------------------------


def test_plain_http_url_is_invalid() -> None:
    """Issue 4: the URL must be https (the SAS is a bearer secret)."""
    assert field_of(url=URL.replace("https:", "http:")) == "extFwInfo.url"


def test_http_to_public_host_is_invalid_even_when_loopback_allowed() -> None:
    """allow_http_loopback opens plain http to loopback hosts only."""
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(patch(url=URL.replace("https:", "http:")), allow_http_loopback=True)
    assert caught.value.field == "extFwInfo.url"


def test_http_to_loopback_is_invalid_unless_allowed() -> None:
    """Plain http to loopback is a simulation convenience, off unless configured."""
    assert field_of(url="http://127.0.0.1:10000/devstoreaccount1/ota/fw.bin") == "extFwInfo.url"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:10000/devstoreaccount1/ota/fw.bin",
        "http://127.8.9.10/ota/fw.bin",
        "http://[::1]:8080/ota/fw.bin",
        "http://localhost:10000/devstoreaccount1/ota/fw.bin",
    ],
)
def test_http_to_loopback_is_accepted_when_allowed(url: str) -> None:
    """127.0.0.0/8 (RFC 1122 3.2.1.3), ::1 (RFC 4291 2.5.3) and localhost (RFC 6761 6.3)
    are loopback: plain http there is allowed when configured (Azurite's path-style URLs)."""
    got = parse_instruction(patch(url=url), allow_http_loopback=True, storage_hosts=LOOPBACK)
    assert got is not None and got.url == url


def test_other_scheme_is_invalid() -> None:
    """Only https (or http to loopback) can reach Blob storage."""
    assert field_of(url="ftp://contosoota.blob.core.windows.net/ota/fw.bin") == "extFwInfo.url"


def test_url_with_query_is_invalid() -> None:
    """The SAS goes in extFwInfo.sas; a URL already carrying a query would be joined into
    an ambiguous ``url?query?sas``."""
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(patch(url=f"{URL}?{SAS}"))
    assert caught.value.field == "extFwInfo.url"
    assert SIG not in str(caught.value)


def test_url_with_fragment_is_invalid() -> None:
    """A fragment is never sent to the server (RFC 3986 3.5): it can only be a mistake."""
    assert field_of(url=URL + "#v3") == "extFwInfo.url"


def test_url_without_blob_path_is_invalid() -> None:
    """A blob URL is https://{account}.blob.core.windows.net/{container}/{blob}."""
    assert field_of(url="https://contosoota.blob.core.windows.net/ota") == "extFwInfo.url"


def test_url_ending_in_slash_is_invalid() -> None:
    """A trailing slash names a virtual directory, not a blob."""
    assert field_of(url="https://contosoota.blob.core.windows.net/ota/fw/") == "extFwInfo.url"


def test_url_with_credentials_is_invalid() -> None:
    """user:password@host would put a secret where logs show it (RFC 3986 3.2.1
    deprecates it)."""
    assert field_of(url="https://me:pw@contosoota.blob.core.windows.net/ota/fw.bin") == (
        "extFwInfo.url"
    )


def test_url_with_space_is_invalid() -> None:
    """Spaces are not allowed unescaped in a URL (RFC 3986 section 2)."""
    assert field_of(url=URL.replace("firmware", "firm ware")) == "extFwInfo.url"


def test_url_with_bad_port_is_invalid() -> None:
    """A port is digits (RFC 3986 3.2.3)."""
    assert field_of(url="https://contosoota.blob.core.windows.net:x/ota/fw.bin") == (
        "extFwInfo.url"
    )


def test_non_string_url_is_invalid() -> None:
    """url is a string in the contract."""
    assert field_of(url=["https://a/b/c"]) == "extFwInfo.url"


# --- sas -------------------------------------------------------------------------------


def test_sas_without_sig_is_invalid() -> None:
    """A SAS grants access only with its signature (Azure "Create a service SAS")."""
    assert field_of(sas="sv=2019-02-02&sr=c&sp=rl") == "extFwInfo.sas"


def test_sas_with_empty_sig_is_invalid() -> None:
    """An empty signature can never authenticate."""
    assert field_of(sas="sv=2019-02-02&sig=") == "extFwInfo.sas"


def test_sas_that_is_not_a_query_string_is_invalid() -> None:
    """A SAS is name=value pairs joined by & (Azure "Create a service SAS")."""
    assert field_of(sas="just-a-token") == "extFwInfo.sas"


def test_sas_with_space_is_invalid() -> None:
    """A query string has no unescaped spaces (RFC 3986 section 2)."""
    assert field_of(sas="sv=2019 02&sig=abc") == "extFwInfo.sas"


def test_empty_sas_is_invalid() -> None:
    """The contract requires a SAS: the container is private."""
    assert field_of(sas="") == "extFwInfo.sas"


def test_non_string_sas_is_invalid() -> None:
    """sas is a string in the contract."""
    assert field_of(sas={"sig": "x"}) == "extFwInfo.sas"


def test_sas_with_leading_question_mark_is_accepted_without_it() -> None:
    """The portal copies a SAS token with its leading "?"; the contract's form lacks it,
    so it is dropped rather than doubled in the download URL."""
    got = parse_instruction(patch(sas="?" + SAS))
    assert got is not None and got.sas == SAS
    assert got.download_url() == f"{URL}?{SAS}"


def test_invalid_sas_message_never_shows_the_signature() -> None:
    """A SAS is a bearer secret: errors are logged and reported, so they must not carry it."""
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(patch(sas=f"sig={SIG}&sig={SIG}"))
    assert caught.value.field == "extFwInfo.sas"
    assert SIG not in str(caught.value) and SIG not in repr(caught.value)


# --- extra keys --------------------------------------------------------------------------


def test_unknown_key_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Unknown keys are ignored so a newer operator tool does not break older agents, but
    a warning names them."""
    with caplog.at_level(logging.WARNING, logger="agent.instruction"):
        got = parse_instruction(patch(product="washer"))
    assert got is not None and got.version == 3
    assert "product" in caplog.text


# --- the instruction record ------------------------------------------------------------


def test_repr_and_str_never_show_the_signature() -> None:
    """The SAS is a bearer secret: an Instruction in a log line must not leak it."""
    got = parse_instruction(patch())
    assert got is not None
    assert SIG not in repr(got) and SIG not in str(got)
    assert URL in repr(got)


def test_download_url_joins_url_and_sas() -> None:
    """The original downloads url + "?" + sas (reference design, flow)."""
    got = parse_instruction(patch())
    assert got is not None and got.download_url() == f"{URL}?{SAS}"


def test_redacted_url_hides_only_the_signature() -> None:
    """Logs show where the image comes from and the SAS's other fields, never sig."""
    got = parse_instruction(patch())
    assert got is not None
    shown = got.redacted_url()
    assert SIG not in shown
    assert shown.startswith(URL + "?sv=2019-02-02") and "sig=REDACTED" in shown


def test_identity_ignores_the_sas() -> None:
    """A rotated SAS for the same blob is the same job: identity is (version, sha256, size,
    url) so a redelivery with a fresh SAS continues, not restarts."""
    first = parse_instruction(patch())
    second = parse_instruction(patch(sas="sv=2020-01-01&sig=other"))
    assert first is not None and second is not None
    assert first.identity() == second.identity()
    assert first.identity() == (3, hashlib.sha256(IMAGE).digest(), len(IMAGE), URL)


def test_identity_changes_with_the_digest() -> None:
    """A different image under the same version and URL is a different job."""
    first = parse_instruction(patch())
    other = parse_instruction(patch(sha256="00" * 32))
    assert first is not None and other is not None
    assert first.identity() != other.identity()


def test_instruction_rejects_wrong_length_digest_on_construction() -> None:
    """An Instruction built in code is validated too: sha256 is 32 raw bytes."""
    with pytest.raises(InvalidInstruction) as caught:
        Instruction(version=1, size=1, url=URL, sas=SAS, sha256=b"\x00" * 31)
    assert caught.value.field == "extFwInfo.sha256"


def test_instruction_is_frozen() -> None:
    """An instruction is a record: it cannot change under the agent's feet."""
    got = parse_instruction(patch())
    assert got is not None
    with pytest.raises(AttributeError):
        got.version = 4  # type: ignore[misc]


# --- fixtures/twins ----------------------------------------------------------------------


def _twins(prefix: str) -> list[Path]:
    return sorted(TWINS.glob(f"{prefix}-*.json"))


@pytest.mark.parametrize("path", _twins("valid"), ids=lambda p: p.stem)
def test_valid_fixture_twin_parses(path: Path) -> None:
    """Every valid-*.json example is a usable instruction."""
    got = parse_instruction(json.loads(path.read_text()))
    assert isinstance(got, Instruction)


@pytest.mark.parametrize("path", _twins("none"), ids=lambda p: p.stem)
def test_none_fixture_twin_holds_no_instruction(path: Path) -> None:
    """Every none-*.json example says nothing about firmware."""
    assert parse_instruction(json.loads(path.read_text())) is None


@pytest.mark.parametrize("path", _twins("invalid"), ids=lambda p: p.stem)
def test_invalid_fixture_twin_names_its_field(path: Path) -> None:
    """Every invalid-<field>-*.json example is refused, naming that field, without the sig."""
    field = path.stem.split("-")[1]
    expected = field if field == "extFwInfo" else f"extFwInfo.{field}"
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(json.loads(path.read_text()))
    assert caught.value.field == expected
    assert "FAKEsignature" not in str(caught.value)


def test_fixture_folder_has_examples_of_each_kind() -> None:
    """The fixture folder must not silently empty (which would make the tests above vacuous)."""
    assert _twins("valid") and _twins("none") and len(_twins("invalid")) >= 10


# --- redact ------------------------------------------------------------------------------


def test_redact_removes_sig_and_keys() -> None:
    """sig (SAS), SharedAccessKey (IoT Hub) and AccountKey (storage) values are secrets."""
    text = (
        f"GET {URL}?sv=1&sig={SIG}&se=2 "
        "HostName=h;DeviceId=d;SharedAccessKey=a2V5a2V5 "
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=c3RvcmFnZQ==;"
    )
    out = redact(text)
    assert SIG not in out and "a2V5a2V5" not in out and "c3RvcmFnZQ==" not in out
    assert "sig=REDACTED&se=2" in out and "DeviceId=d" in out and "AccountName=x" in out


def test_redact_handles_url_encoded_and_mixed_case_keys() -> None:
    """A SAS nested in an encoded URL carries sig%3D; query names are matched as Azure
    does, case-insensitively."""
    out = redact(f"next=https%3A%2F%2Fh%2Fc%2Fb%3Fsig%3D{SIG} SIG={SIG}")
    assert SIG not in out


# --- any document ------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_field_values = st.one_of(
    _json,
    st.integers(min_value=-2, max_value=2**40),
    st.sampled_from([URL, URL + "?a=b", "http://127.0.0.1/c/b", SHA, SHA.lower(), SAS]),
)


@given(
    changes=st.dictionaries(
        st.sampled_from(["version", "size", "url", "sas", "sha256", "extra"]),
        _field_values | st.just(...),
        max_size=5,
    )
)
def test_any_extfwinfo_parses_or_is_invalid_never_crashes(changes: dict) -> None:
    """Weakness #3 in general: whatever the cloud sends in extFwInfo, the parser returns an
    instruction or raises InvalidInstruction (reported as invalid), never another error,
    and never echoes the signature."""
    try:
        got = parse_instruction(patch(**changes), allow_http_loopback=True)
    except InvalidInstruction as exc:
        assert SIG not in str(exc)
    else:
        assert isinstance(got, Instruction) and got.version > 0 and got.size > 0


@given(doc=_json)
def test_any_json_document_parses_or_is_invalid_never_crashes(doc: object) -> None:
    """Any JSON value delivered as a twin document gives None, an instruction, or
    InvalidInstruction: nothing else escapes to crash the agent."""
    try:
        got = parse_instruction(doc)  # type: ignore[arg-type]
    except InvalidInstruction:
        return
    assert got is None or isinstance(got, Instruction)


# --- SAS names percent-encoded -----------------------------------------------------------


@pytest.mark.parametrize("name", ["si%67", "%73ig", "%73%69%67"])
def test_a_sas_with_a_percent_encoded_sig_name_is_parsed_and_redacted(name: str) -> None:
    """``si%67`` decodes to ``sig`` for the parser (parse_qsl) as for Azure: the SAS is
    accepted, and its signature never shows in ``redacted_url`` or ``repr``."""
    got = parse_instruction(patch(sas=SAS.replace("sig=", f"{name}=")))
    assert got is not None
    assert SIG not in got.redacted_url() and SIG not in repr(got)
    assert got.download_url().endswith(SIG)


def test_a_sas_naming_sig_twice_once_encoded_is_invalid_without_echoing_either() -> None:
    """Two signatures once names are decoded: invalid, and neither value is shown."""
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(patch(sas=f"{SAS}&si%67=AAAAsecondsig"))
    assert caught.value.field == "extFwInfo.sas"
    assert SIG not in str(caught.value) and "AAAAsecondsig" not in str(caught.value)


def test_a_sas_naming_any_parameter_twice_once_decoded_is_invalid() -> None:
    """The blob server refuses ``se=..&s%65=..`` (which one is checked?); so does the
    agent, before any request, naming the parameter."""
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(patch(sas=f"{SAS}&s%65=2031-01-01"))
    assert caught.value.field == "extFwInfo.sas"
    assert "se" in caught.value.problem


# --- where the agent may download from -------------------------------------------------


def url_problem(url: str, **kwargs: object) -> str:
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(patch(url=url), **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == "extFwInfo.url"
    return caught.value.problem


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",
        "[::ffff:10.0.0.1]",
        "[::ffff:192.168.0.1]",
        "[fe80::1]",
        "[::]",
        "0.0.0.0",
        "128.0.0.1",
        "126.255.255.255",
        "localhost.example.com",
        "evil.localhost",
        "localhost.",
        "127.0.0.1.nip.io",
        "127.1",
        "2130706433",
    ],
)
@pytest.mark.parametrize("allowed", [False, True])
def test_plain_http_beyond_loopback_is_invalid_with_the_flag_on_or_off(
    host: str, allowed: bool
) -> None:
    """Loopback means 127.0.0.0/8, ::1 and the name ``localhost`` (RFC 1122 3.2.1.3,
    RFC 4291 2.5.3); private, link-local (the cloud metadata address), mapped private,
    unspecified and look-alike names are not, whatever the flag says."""
    problem = url_problem(
        f"http://{host}:10000/devstoreaccount1/ota/fw.bin",
        allow_http_loopback=allowed,
        storage_hosts=LOOPBACK,
    )
    assert "http" in problem or "host" in problem


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.255.255.254", "[::1]", "localhost", "[::ffff:127.0.0.1]"]
)
def test_plain_http_to_loopback_needs_the_flag(host: str) -> None:
    """The same loopback URLs: refused without ``allow_http_loopback``, accepted with it."""
    url = f"http://{host}:10000/devstoreaccount1/ota/fw.bin"
    assert "https" in url_problem(url, storage_hosts=LOOPBACK)
    got = parse_instruction(patch(url=url), allow_http_loopback=True, storage_hosts=LOOPBACK)
    assert got is not None and got.url == url


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/a/b",
        "https://contosoota.blob.core.windows.net.evil.example/ota/fw.bin",
        "https://evil.example/contosoota.blob.core.windows.net/fw.bin",
        "https://blob.core.windows.net/ota/fw.bin",
        "https://a.b.blob.core.windows.net/ota/fw.bin",
        "https://contosoota.blob.core.windows.com/ota/fw.bin",
        "https://contosoota.blob.core.windows.net:0/ota/fw.bin",
        "https://contosoota.blob.core.windows.net/ota/../other/fw.bin",
        "https://contosoota.blob.core.windows.net/ota/./fw.bin",
        "https://contosoota.blob.core.windows.net/ota/%2e%2e/fw.bin",
        "https://contosoota.blob.core.windows.net/ota/%2E./fw.bin",
        "https://contosoota.blob.core.windows.net/ota/fw.bin/..",
        "https://contosoota\uff0eblob.core.windows.net/ota/fw.bin",
        "https://contosoota.blob\u3002core.windows.net/ota/fw.bin",
        "https://contosoota.blob.core.windows.n\u0435t/ota/fw.bin",
        "https://\uff43ontosoota.blob.core.windows.net/ota/fw.bin",
        "https://xn--80ak6aa92e.blob.core.windows.net/ota/fw.bin",
        "https://contos_ota.blob.core.windows.net/ota/fw.bin",
        "https://-contosoota.blob.core.windows.net/ota/fw.bin",
        "https://127.0.0.1/ota/fw.bin",
    ],
)
def test_a_url_outside_the_storage_hosts_is_invalid_naming_the_url(url: str) -> None:
    """The original's app manifest lets it connect to named hosts only. The default
    allow-list is Azure Blob's public endpoints, ``{account}.blob.core.windows.net``
    (one label of letters, digits and inner hyphens); a port of 0, a dot segment
    (RFC 3986 5.2.4: the server would resolve it elsewhere) and a host with a character
    an IDNA resolver folds into ASCII (a fullwidth dot, a Cyrillic letter) are invalid
    too, and the problem names the URL."""
    problem = url_problem(url)
    assert url.split("//")[1].split("/")[0].split(":")[0][:10] in problem or url[:20] in problem


def test_the_default_storage_hosts_accept_azure_blob_endpoints() -> None:
    """Account names are 3-24 lowercase letters and digits; the secondary endpoint
    (``-secondary``) and an explicit port 443 are the same service."""
    for url in (
        URL,
        "https://contosoota-secondary.blob.core.windows.net/ota/fw.bin",
        "https://contosoota.blob.core.windows.net:443/ota/fw.bin",
        "https://ContosoOta.Blob.Core.Windows.Net/ota/fw.bin",
        "https://contosoota.blob.core.windows.net/ota/v1//fw.bin",
    ):
        got = parse_instruction(patch(url=url))
        assert got is not None, url


def test_storage_hosts_accept_names_wildcards_and_networks() -> None:
    """An allow-list entry is a host name, ``*.`` and a domain (exactly one more
    label), or an IP network; nothing else matches."""
    hosts = ("fw.example.com", "*.cdn.example.net", "192.0.2.0/24", "2001:db8::/32")
    for url in (
        "https://fw.example.com/ota/fw.bin",
        "https://eu.cdn.example.net/ota/fw.bin",
        "https://192.0.2.77/ota/fw.bin",
        "https://[2001:db8::5]/ota/fw.bin",
    ):
        assert parse_instruction(patch(url=url), storage_hosts=hosts) is not None, url
    for url in (
        "https://x.fw.example.com/ota/fw.bin",
        "https://cdn.example.net/ota/fw.bin",
        "https://a.eu.cdn.example.net/ota/fw.bin",
        "https://192.0.3.1/ota/fw.bin",
        URL,
    ):
        assert "allowed" in url_problem(url, storage_hosts=hosts), url


@pytest.mark.parametrize("entry", ["", "*", "*.com.*", "ex ample.com", "10.0.0.0/33", "a..b"])
def test_a_malformed_storage_hosts_entry_is_a_configuration_error(entry: str) -> None:
    """A bad allow-list is the integrator's mistake, refused at once (ValueError), never
    an instruction problem nor a silent allow-all."""
    with pytest.raises(ValueError, match="storage_hosts"):
        parse_instruction(patch(), storage_hosts=(entry,))


@pytest.mark.parametrize(
    "version", [2**31, 2**32, 2**63, 10**400], ids=["2^31", "2^32", "2^63", "10^400"]
)
def test_a_version_beyond_a_c_int_is_invalid(version: int) -> None:
    """The original keeps the version in a C ``int`` (at most 2**31 - 1): a version it
    could not store is invalid, not silently wrapped."""
    with pytest.raises(InvalidInstruction) as caught:
        parse_instruction(patch(version=version))
    assert caught.value.field == "extFwInfo.version"
    assert str(2**31 - 1) in caught.value.problem


def test_the_largest_c_int_version_is_accepted() -> None:
    got = parse_instruction(patch(version=2**31 - 1))
    assert got is not None and got.version == 2**31 - 1


def test_agent_config_checks_its_storage_hosts_when_built() -> None:
    """``AgentConfig`` defaults to Azure Blob's endpoints and refuses a malformed entry
    (or a bare string, which would be a list of its characters) when constructed."""
    from agent.engine import AgentConfig

    assert AgentConfig().storage_hosts == ("*.blob.core.windows.net",)
    for bad in (("*",), "localhost", ()):
        with pytest.raises(ValueError, match="storage_hosts"):
            AgentConfig(storage_hosts=bad)  # type: ignore[arg-type]
