"""Range headers are ASCII: ``bytes=`` DIGITs (RFC 9110 14.1.1, DIGIT is %x30-39).

Python's ``\\d`` and ``int`` accept any Unicode decimal digit (Arabic-Indic, fullwidth,
Devanagari); a range written in them is malformed, 400 ``InvalidHeaderValue`` naming
the header, as any other malformed range ("Specifying the range header").
"""

import pytest

from sim.cloud.blobserver.errors import BlobError
from sim.cloud.blobserver.ranges import parse_range, requested_range

pytestmark = pytest.mark.sim


@pytest.mark.parametrize(
    "value",
    [
        "bytes=\u0661-\u0662",
        "bytes=\uff10-\uff19",
        "bytes=0-\u0669",
        "bytes=\u0967-",
        "bytes=1\u00b2-",
    ],
)
@pytest.mark.parametrize("header", ["Range", "x-ms-range"])
def test_a_range_in_non_ascii_digits_is_malformed(value, header):
    with pytest.raises(BlobError) as caught:
        requested_range({header: value})
    assert caught.value.status == 400 and caught.value.code == "InvalidHeaderValue"
    assert caught.value.detail["HeaderName"] == header


def test_an_ascii_range_still_parses():
    got = parse_range("bytes=10-19")
    assert (got.start, got.end) == (10, 19)
