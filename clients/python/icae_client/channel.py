"""Channel set-up shared by the encoder and decoder clients.

Mirrors the C++ client (common/client/client_options.cc): several literal addresses become one
``ipv4:a,b`` (or ``ipv6:[a],[b]``) target balanced round-robin, and the service config retries
UNAVAILABLE (a replica going away or draining) on another address.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import grpc

from .errors import IcaeError

DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
DEFAULT_TIMEOUT_SECONDS = 60.0
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
_HEALTH_STATES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

Addresses = Union[str, Sequence[str]]


def _literal(address: str) -> Tuple[int, str]:
    """``"HOST:PORT"`` with an IP literal (``localhost`` counts as 127.0.0.1) -> (family, addr)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port:
        raise ValueError(f"address {address!r} is not HOST:PORT")
    if host == "localhost":
        host = "127.0.0.1"
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        ip = None
    if ip is not None and ip.version == 4 and not bracketed:
        return 4, f"{host}:{port}"
    if ip is not None and ip.version == 6 and bracketed:
        return 6, f"{host}:{port}"
    raise ValueError(f"address {address!r}: several addresses must be IP literals; for a DNS "
                     "name use one dns:///NAME:PORT target")


def build_target(addresses: Addresses) -> str:
    """The channel target for one address / target URI, or for several ``HOST:PORT`` literals."""
    if isinstance(addresses, str):
        addresses = [addresses]
    addresses = list(addresses)
    if not addresses:
        raise ValueError("no server address given")
    if len(addresses) == 1:
        if not addresses[0]:
            raise ValueError("empty server address")
        return addresses[0]  # "HOST:PORT" (DNS) or a target URI, used as is
    family = 4
    parts: List[str] = []
    for i, address in enumerate(addresses):
        if "://" in address or address.startswith("ipv"):
            raise ValueError(f"{address!r}: a target URI must be the only address")
        fam, literal = _literal(address)
        if i > 0 and fam != family:
            raise ValueError("cannot mix IPv4 and IPv6 addresses in one channel")
        family = fam
        parts.append(literal)
    return ("ipv4:" if family == 4 else "ipv6:") + ",".join(parts)


def build_service_config(max_attempts: int) -> str:
    """round_robin plus, when ``max_attempts > 1``, a retry policy on UNAVAILABLE for
    icae.v1.Encoder and icae.v1.Decoder (gRPC caps attempts at 5)."""
    config: dict = {"loadBalancingConfig": [{"round_robin": {}}]}
    if max_attempts > 1:
        config["methodConfig"] = [{
            "name": [{"service": "icae.v1.Encoder"}, {"service": "icae.v1.Decoder"}],
            "retryPolicy": {
                "maxAttempts": min(max_attempts, 5),
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }]
    return json.dumps(config)


def _read(path: Optional[str]) -> Optional[bytes]:
    return Path(path).read_bytes() if path else None


class Connection:
    """A gRPC channel plus the per-call settings (deadline, bearer token).

    Thread-safe once created (gRPC channels are). Close it, or use it as a context manager.
    """

    def __init__(self, addresses: Addresses, *, token: Optional[str] = None,
                 token_file: Optional[str] = None, tls: bool = False,
                 tls_ca_file: Optional[str] = None, tls_cert_file: Optional[str] = None,
                 tls_key_file: Optional[str] = None, tls_server_name: Optional[str] = None,
                 timeout: Optional[float] = DEFAULT_TIMEOUT_SECONDS, max_attempts: int = 3,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if not 0 < max_message_bytes <= 2**31 - 1:
            raise ValueError(f"max_message_bytes {max_message_bytes} is not in 1..{2**31 - 1}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be > 0 seconds, or None for no deadline")
        self.target = build_target(addresses)
        self.timeout = timeout
        if token is None and token_file:
            token = Path(token_file).read_text().strip()
        self._metadata: Tuple[Tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ())
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.enable_retries", 1),
            # Our config wins over one published in DNS TXT records.
            ("grpc.service_config_disable_resolution", 1),
            ("grpc.service_config", build_service_config(max_attempts)),
        ]
        use_tls = tls or any((tls_ca_file, tls_cert_file, tls_key_file))
        if use_tls:
            if bool(tls_cert_file) != bool(tls_key_file):
                raise ValueError("tls_cert_file and tls_key_file must be given together")
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca_file), private_key=_read(tls_key_file),
                certificate_chain=_read(tls_cert_file))
            self.channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(self.target, options=options)
        self._health = self.channel.unary_unary(
            HEALTH_CHECK_METHOD, request_serializer=_encode_health_request,
            response_deserializer=_decode_health_response)

    def call_kwargs(self, timeout: Optional[float]) -> dict:
        """Keyword arguments of a stub call: the deadline (``timeout`` or the default) and the
        bearer token metadata."""
        return {"timeout": self.timeout if timeout is None else timeout,
                "metadata": self._metadata}

    def health(self, service: str = "", timeout: Optional[float] = None) -> str:
        """``grpc.health.v1.Health/Check``: ``"SERVING"``, ``"NOT_SERVING"``,
        ``"SERVICE_UNKNOWN"`` or ``"UNKNOWN"``. Raises IcaeError when the call fails."""
        try:
            return self._health(service, **self.call_kwargs(timeout))
        except grpc.RpcError as e:
            raise IcaeError.from_rpc_error(e) from None

    def close(self) -> None:
        """Closes the channel; calls after this fail."""
        self.channel.close()


def _encode_health_request(service: str) -> bytes:
    """HealthCheckRequest { string service = 1; } (the health protos are not in Debian's grpcio)."""
    data = service.encode()
    if not data:
        return b""
    return b"\x0a" + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _decode_health_response(data: bytes) -> str:
    """HealthCheckResponse { ServingStatus status = 1; }; other fields are skipped."""
    status, pos = 0, 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            if field == 1:
                status = value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("malformed HealthCheckResponse")
    return _HEALTH_STATES.get(status, "UNKNOWN")


def _read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("malformed HealthCheckResponse")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
