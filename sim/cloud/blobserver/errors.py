"""Azure Storage error responses: a status, an error code, and an XML body.

Body and headers as the service sends them (Status and error codes,
learn.microsoft.com/rest/api/storageservices/status-and-error-codes2)::

    <?xml version="1.0" encoding="utf-8"?>
    <Error><Code>BlobNotFound</Code><Message>...
    RequestId:...
    Time:...</Message></Error>

plus ``x-ms-error-code``, which the SDK reads to raise its typed errors.
"""

from datetime import UTC, datetime
from xml.sax.saxutils import escape

MESSAGES: dict[str, str] = {
    "AuthenticationFailed": "Server failed to authenticate the request. Make sure the value of "
    "Authorization header is formed correctly including the signature.",
    "AuthorizationFailure": "This request is not authorized to perform this operation.",
    "AuthorizationPermissionMismatch": "This request is not authorized to perform this operation "
    "using this permission.",
    "AuthorizationResourceTypeMismatch": "This request is not authorized to perform this "
    "operation using this resource type.",
    "AuthorizationProtocolMismatch": "This request is not authorized to perform this operation "
    "using this protocol.",
    "AuthorizationSourceIPMismatch": "This request is not authorized to perform this operation "
    "using this source IP.",
    "BlobNotFound": "The specified blob does not exist.",
    "ContainerNotFound": "The specified container does not exist.",
    "ContainerAlreadyExists": "The specified container already exists.",
    "ResourceNotFound": "The specified resource does not exist.",
    "ConditionNotMet": "The condition specified using HTTP conditional header(s) is not met.",
    "InvalidRange": "The range specified is invalid for the current size of the resource.",
    "InvalidHeaderValue": "The value for one of the HTTP headers is not in the correct format.",
    "InvalidQueryParameterValue": "Value for one of the query parameters specified in the "
    "request URI is invalid.",
    "InvalidResourceName": "The specifed resource name contains invalid characters.",
    "InvalidBlockList": "The specified block list is invalid.",
    "InvalidBlockId": "The specified block ID is invalid. The block ID must be Base64-encoded.",
    "InvalidXmlDocument": "XML specified is not syntactically valid.",
    "InvalidInput": "One of the request inputs is not valid.",
    "Md5Mismatch": "The MD5 value specified in the request did not match with the MD5 value "
    "calculated by the server.",
    "OutOfRangeInput": "One of the request inputs is out of range.",
    "UnsupportedHttpVerb": "The resource doesn't support specified Http Verb.",
    "InternalError": "The server encountered an internal error. Please retry the request.",
    "ServerBusy": "The server is currently unable to receive requests. Please retry your request.",
    "OperationTimedOut": "The operation could not be completed within the permitted time.",
    "TooManyRequests": "The request was throttled. Please retry your request.",
    "LeaseIdMissing": "There is currently a lease on the blob and no lease ID was specified in "
    "the request.",
}


class BlobError(Exception):
    """A request the server refuses: raised anywhere in a handler, answered as Azure does."""

    def __init__(
        self,
        status: int,
        code: str,
        *,
        detail: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.detail = dict(detail or {})
        self.headers = dict(headers or {})


def error_body(code: str, request_id: str, detail: dict[str, str] | None = None) -> bytes:
    """The XML body of an error; ``detail`` adds elements such as ``HeaderName``."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    message = MESSAGES.get(code, code)
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f"<Error><Code>{escape(code)}</Code>",
        f"<Message>{escape(message)}\nRequestId:{escape(request_id)}\nTime:{now}</Message>",
    ]
    for name, value in (detail or {}).items():
        parts.append(f"<{name}>{escape(value)}</{name}>")
    parts.append("</Error>")
    return "".join(parts).encode("utf-8")
