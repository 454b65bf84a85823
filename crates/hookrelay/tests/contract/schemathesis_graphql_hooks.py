"""Schemathesis hooks for the GraphQL run of tests/it/contract.rs.

`no_server_error` replaces schemathesis's `not_a_server_error` for hookrelay's GraphQL
API. That check counts as a server failure every GraphQL error that does not carry one of
the client-error labels it knows (Apollo's, graphql-java's), and hookrelay's documented
answers carry Buy with Prime's (docs/api.md#errors): an id that does not exist is an
`AccessDeniedError`, a failed AWS call an `UpstreamError`; both are the contract, not
failures. What is a server failure here: an HTTP 5xx, and a GraphQL error classified
`InternalError` (hookrelay's answer for anything unexpected).
"""

import schemathesis
from schemathesis.core.failures import Failure, Severity


class HookrelayServerError(Failure):
    """hookrelay answered a GraphQL request with a server error."""

    code = "HR500"
    checks = ("no_server_error",)
    kind_title = "hookrelay server error"

    def __init__(self, *, operation: str, message: str) -> None:
        super().__init__(operation=operation, message=message, severity=Severity.CRITICAL)

    @property
    def _unique_key(self) -> str:
        return self.message


@schemathesis.check
def no_server_error(ctx, response, case):
    if response.status_code >= 500:
        raise HookrelayServerError(
            operation=case.operation.label,
            message=f"HTTP {response.status_code}: {response.text[:2000]}",
        )
    try:
        body = response.json()
    except ValueError:
        return None  # response_schema_conformance reports a body that is not JSON
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors or []:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        if isinstance(extensions, dict) and extensions.get("classification") == "InternalError":
            raise HookrelayServerError(
                operation=case.operation.label,
                message=f"InternalError: {error.get('message')!r} (the server's log has the detail)",
            )
    return None
