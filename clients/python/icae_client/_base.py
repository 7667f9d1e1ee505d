"""What the encoder and decoder clients share: the connection, health, closing."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, TypeVar

import grpc

from .channel import Addresses, Connection
from .errors import IcaeError

T = TypeVar("T")
SelfClient = TypeVar("SelfClient", bound="BaseClient")


class BaseClient:
    """Owns (or borrows) a Connection. Thread-safe; use as a context manager or call close()."""

    SERVICE = ""  # fully qualified gRPC service name, set by subclasses

    def __init__(self, addresses: Optional[Addresses] = None, *,
                 connection: Optional[Connection] = None, **options: Any) -> None:
        if (addresses is None) == (connection is None):
            raise ValueError("give exactly one of addresses or connection")
        if connection is not None and options:
            raise ValueError("connection options go to Connection(...), not here")
        self._owns_connection = connection is None
        if connection is None:
            assert addresses is not None
            connection = Connection(addresses, **options)
        self.connection = connection

    @property
    def target(self) -> str:
        """The gRPC target the channel connects to (e.g. ``ipv4:10.0.0.5:50051,10.0.0.6:50051``)."""
        return self.connection.target

    def health(self, timeout: Optional[float] = None) -> str:
        """Health of this service on one of the addresses: ``"SERVING"``, ``"NOT_SERVING"``, ..."""
        return self.connection.health(self.SERVICE, timeout)

    def wait_until_serving(self, timeout: float = 60.0, poll_seconds: float = 0.05) -> None:
        """Blocks until health is SERVING (a server loading its model answers NOT_SERVING).

        Raises:
            IcaeError: DEADLINE_EXCEEDED after ``timeout`` seconds, with the last state or error.
        """
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise IcaeError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"{self.SERVICE} at {self.target} not SERVING after {timeout} s "
                                f"(last: {last})")
            try:
                last = self.health(timeout=min(remaining, 5.0))
                if last == "SERVING":
                    return
            except IcaeError as e:
                last = str(e)
            time.sleep(min(poll_seconds, max(remaining, 0)))

    def close(self) -> None:
        """Closes the channel if this client created it."""
        if self._owns_connection:
            self.connection.close()

    def __enter__(self: SelfClient) -> SelfClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: Callable[..., T], request: Any, timeout: Optional[float]) -> T:
        try:
            return method(request, **self.connection.call_kwargs(timeout))
        except grpc.RpcError as e:
            raise IcaeError.from_rpc_error(e) from None
