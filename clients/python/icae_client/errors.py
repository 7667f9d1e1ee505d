"""The one exception type the client raises for failed calls."""

from __future__ import annotations

from typing import Optional

import grpc


class IcaeError(Exception):
    """A call to an icae service failed.

    Attributes:
        code: the gRPC status code (``grpc.StatusCode``).
        code_name: its canonical name, e.g. ``"INVALID_ARGUMENT"``, ``"FAILED_PRECONDITION"``,
            ``"RESOURCE_EXHAUSTED"``, ``"UNAVAILABLE"``, ``"UNAUTHENTICATED"``.
        message: the server's (or gRPC's) message.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.code_name: str = code.name
        self.message = message
        super().__init__(f"{self.code_name}: {message}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "IcaeError":
        """Converts a ``grpc.RpcError`` (which is also a ``grpc.Call``) into an IcaeError."""
        code: Optional[grpc.StatusCode] = None
        details: Optional[str] = None
        if isinstance(error, grpc.Call):
            code = error.code()
            details = error.details()
        return cls(code or grpc.StatusCode.UNKNOWN, details or str(error))
