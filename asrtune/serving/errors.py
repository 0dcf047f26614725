"""Errors as the OpenAI API returns them: ``{"error": {"message", "type", "param", "code"}}``.

>>> e = APIError(413, "file is 30.0 MiB; the limit is 25 MiB", param="file", code="file_too_large")
>>> e.body()["error"]["type"], e.status
('invalid_request_error', 413)
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
SERVER = "server_error"
RETRY_AFTER_S = 1  # what a 503 tells the client to wait before retrying, in seconds


class APIError(Exception):
    """An HTTP error answered with the OpenAI error object."""

    def __init__(self, status: int, message: str, *, type: str = INVALID_REQUEST, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def queue_full(max_queue: int) -> APIError:
    return APIError(503, f"server busy: {max_queue} requests are already queued; retry shortly", type=SERVER,
                    code="queue_full", headers={"Retry-After": str(RETRY_AFTER_S)})
