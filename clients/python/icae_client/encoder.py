"""Client of the icae.v1.Encoder service."""

from __future__ import annotations

import hashlib
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union, cast

import grpc

from ._base import BaseClient
from ._proto import encoder_pb2, encoder_pb2_grpc, tensor_pb2
from .channel import Addresses, Connection
from .errors import IcaeError
from .slots import CompressResult, Handle, Slots

# A span: text (tokenized by the server, BOS prepended) or token ids (used verbatim).
SpanInput = Union[str, Sequence[int]]

_SLOT_DTYPES = {
    None: tensor_pb2.DATA_TYPE_UNSPECIFIED,
    "float32": tensor_pb2.FLOAT32,
    "float16": tensor_pb2.FLOAT16,
    "bfloat16": tensor_pb2.BFLOAT16,
    "int8": tensor_pb2.INT8,
}


def slot_dtype_value(dtype: Union[None, str, int]) -> "tensor_pb2.DataType":
    """``None`` (the server's compute dtype), ``"float32"``, ``"bfloat16"``, ``"float16"``,
    ``"int8"`` (any case, ``"FLOAT32"`` too) or a ``tensor_pb2.DataType`` value -> the enum
    value."""
    if isinstance(dtype, int):
        tensor_pb2.DataType.Name(dtype)  # ValueError when not a DataType
        return cast("tensor_pb2.DataType", dtype)
    key = dtype.lower() if dtype is not None else None
    if key not in _SLOT_DTYPES:
        raise ValueError(f"slot_dtype {dtype!r} is not one of float32, bfloat16, float16, int8")
    return _SLOT_DTYPES[key]


def token_ids(ids: Iterable[int], what: str) -> List[int]:
    """Validates a token-id list on the client side (ints that fit int32)."""
    out = []
    for i in ids:
        if isinstance(i, (bool, float, str, bytes)):
            raise TypeError(f"{what}: token ids must be integers, got {type(i).__name__}")
        value = int(i)  # also numpy integers
        if not -2**31 <= value < 2**31:
            raise ValueError(f"{what}: token id {value} does not fit int32")
        out.append(value)
    return out


def make_span(span: SpanInput, span_id: str = "") -> encoder_pb2.Span:
    """str -> a text span; a sequence of ints (list, tuple, NumPy array) -> a token-id span."""
    if isinstance(span, str):
        return encoder_pb2.Span(id=span_id, text=span)
    if isinstance(span, (bytes, bytearray)):
        raise TypeError("a span is str or a sequence of token ids, not bytes")
    if isinstance(span, int):
        raise TypeError("a span is str or a sequence of token ids; wrap a single id list in a "
                        "list: compress([ids])")
    return encoder_pb2.Span(id=span_id,
                            token_ids=encoder_pb2.TokenIds(ids=token_ids(span, "span")))


def span_content_key(span: encoder_pb2.Span) -> str:
    """64 hex digits of sha256 over a span's text or token ids: the routing key, identical to the
    C++ client's ``SpanContentKey``."""
    if span.WhichOneof("content") == "token_ids":
        data = b"ids\n" + struct.pack(f"<{len(span.token_ids.ids)}i", *span.token_ids.ids)
    else:
        data = b"text\n" + span.text.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def rendezvous_ranking(content_key: str, addresses: Sequence[str]) -> List[int]:
    """Replica indexes for ``content_key``, best first (highest sha256(key + "\n" + address)
    read as a big-endian 64-bit integer), as the C++ client ranks them."""
    scores = [(int(hashlib.sha256(f"{content_key}\n{a}".encode()).hexdigest()[:16], 16), i)
              for i, a in enumerate(addresses)]
    return [i for _, i in sorted(scores, key=lambda t: -t[0])]


class EncoderClient(BaseClient):
    """Compresses documents into memory slots on one or more encoder replicas.

    ::

        with EncoderClient(["10.0.0.5:50051", "10.0.0.6:50051"], token="s3cret") as encoder:
            docs = encoder.compress(["first document ...", "second document ..."])
            print(docs[0].num_slots, docs[0].numpy().shape)

    Args:
        addresses: ``"HOST:PORT"``, a target URI (``"dns:///encoder:50051"``), or several
            ``"IP:PORT"`` balanced round-robin with UNAVAILABLE retried on another replica.
        routing: ``"round_robin"`` (the default) or ``"hash"``: with several addresses, each
            span goes to the replica ranked first for its content by rendezvous hashing, so a
            document's repeats hit that replica's cache; a span whose replica is UNAVAILABLE
            falls back to its next one.
        connection: an existing ``Connection`` to share instead of ``addresses``.
        **options: ``Connection`` options: ``token`` / ``token_file`` (bearer token), ``tls``,
            ``tls_ca_file``, ``tls_cert_file``, ``tls_key_file``, ``tls_server_name``,
            ``timeout`` (default deadline in seconds, None = none), ``max_attempts``,
            ``max_message_bytes``.

    Every call raises ``IcaeError`` (with the gRPC code name) when it fails.
    """

    SERVICE = "icae.v1.Encoder"

    def __init__(self, addresses: Optional[Addresses] = None, *, routing: str = "round_robin",
                 **kwargs: Any) -> None:
        if routing not in ("round_robin", "hash"):
            raise ValueError(f"routing {routing!r}: expected 'hash' or 'round_robin'")
        super().__init__(addresses, **kwargs)
        self._stub = encoder_pb2_grpc.EncoderStub(self.connection.channel)
        # Content-hash routing: one connection per literal address, no gRPC-level retry (the
        # fallback is each span's next replica).
        self._replicas: List[Any] = []
        literal = (isinstance(addresses, (list, tuple)) and len(addresses) > 1
                   and all(":///" not in a for a in addresses))
        if routing == "hash" and literal:
            options = {k: v for k, v in kwargs.items() if k != "connection"}
            options["max_attempts"] = 1
            for address in cast(Sequence[str], addresses):
                connection = Connection(address, **options)
                self._replicas.append(
                    (address, connection, encoder_pb2_grpc.EncoderStub(connection.channel)))

    @property
    def replicas(self) -> List[str]:
        """The addresses spans are routed over by content (empty: round-robin)."""
        return [a for a, _, _ in self._replicas]

    def close(self) -> None:
        for _, connection, _ in self._replicas:
            connection.close()
        super().close()

    def compress(self, spans: Union[SpanInput, Sequence[SpanInput]], *,
                 slot_dtype: Union[None, str, int] = None, bypass_cache: bool = False,
                 ids: Optional[Sequence[str]] = None, handles: bool = False,
                 timeout: Optional[float] = None) -> CompressResult:
        """Compresses spans; returns one Slots per span, in order.

        Args:
            spans: a list whose items are text (``str``, tokenized by the server with BOS) or
                token ids (a sequence of ints, used verbatim). A single ``str`` is one span.
            slot_dtype: wire dtype of the slots: ``"float32"``, ``"bfloat16"``, ``"float16"``,
                ``"int8"`` (per-slot scales, a quarter of float32's bytes), or None for the
                server's compute dtype.
            bypass_cache: neither read nor write the server's slot cache.
            ids: optional span ids, echoed back as ``Slots.id``.
            handles: return a ``Handle`` (a key into the shared slot store) per span instead of
                the slots; the server needs ``--slot_store``. A span the store could not take
                comes back as ``Slots``.
            timeout: deadline of this call in seconds (default: the connection's).

        Returns:
            A ``CompressResult``: a ``list[Slots]`` with the request's ``usage``.
        """
        items: List[Any] = [spans] if isinstance(spans, str) else list(spans)
        if items and all(isinstance(s, int) for s in items):
            raise TypeError("compress takes a list of spans; for one token-id span write "
                            "compress([ids])")
        if ids is not None and len(ids) != len(items):
            raise ValueError(f"{len(ids)} ids for {len(items)} spans")
        request = encoder_pb2.CompressRequest(
            spans=[make_span(s, ids[i] if ids is not None else "") for i, s in enumerate(items)],
            slot_dtype=slot_dtype_value(slot_dtype), bypass_cache=bypass_cache,
            return_handles=handles)
        return self.compress_request(request, timeout=timeout)

    def compress_request(self, request: encoder_pb2.CompressRequest, *,
                         timeout: Optional[float] = None) -> CompressResult:
        """``compress`` with a ready ``icae.v1.CompressRequest``."""
        if self._replicas:
            response = self._routed(request, timeout)
        else:
            response = self._call(self._stub.Compress, request, timeout)
        out: List[Any] = []
        for source, span in zip(request.spans, response.spans):
            if span.HasField("handle"):
                out.append(Handle(span.handle, span.id, span.usage, source))
            else:
                out.append(Slots(span.slots, span.id, span.usage))
        return CompressResult(out, response.usage)

    def _routed(self, request: encoder_pb2.CompressRequest,
                timeout: Optional[float]) -> encoder_pb2.CompressResponse:
        addresses = self.replicas
        ranking = [rendezvous_ranking(span_content_key(s), addresses) for s in request.spans]
        attempt = [0] * len(request.spans)
        placed: List[Any] = [None] * len(request.spans)
        usage = encoder_pb2.CompressUsage()
        pending = list(range(len(request.spans)))
        while pending:
            groups: Dict[int, List[int]] = {}
            for i in pending:
                groups.setdefault(ranking[i][attempt[i]], []).append(i)

            def send(replica: int, members: List[int]) -> Any:
                _, connection, stub = self._replicas[replica]
                sub = encoder_pb2.CompressRequest(
                    spans=[request.spans[i] for i in members], slot_dtype=request.slot_dtype,
                    bypass_cache=request.bypass_cache, return_handles=request.return_handles)
                try:
                    return stub.Compress(sub, **connection.call_kwargs(timeout))
                except grpc.RpcError as e:
                    return IcaeError.from_rpc_error(e)

            with ThreadPoolExecutor(max_workers=len(groups)) as pool:
                results = list(pool.map(lambda kv: (kv[0], kv[1], send(*kv)), groups.items()))
            pending = []
            for replica, members, result in results:
                if isinstance(result, IcaeError):
                    retry = result.code == grpc.StatusCode.UNAVAILABLE
                    for i in members:
                        attempt[i] += 1
                        if not retry or attempt[i] >= len(addresses):
                            raise IcaeError(result.code, f"encoder {addresses[replica]} (request "
                                            f"spans {members}): {result.message}")
                        pending.append(i)
                    continue
                for i, span in zip(members, result.spans):
                    placed[i] = span
                u = result.usage
                usage.spans += u.spans
                usage.tokens += u.tokens
                usage.segments += u.segments
                usage.slots += u.slots
                usage.cache_hits += u.cache_hits
                usage.store_hits += u.store_hits
                usage.queue_seconds = max(usage.queue_seconds, u.queue_seconds)
                usage.compute_seconds = max(usage.compute_seconds, u.compute_seconds)
            pending.sort()
        return encoder_pb2.CompressResponse(spans=placed, usage=usage)

    def get_info(self, timeout: Optional[float] = None) -> encoder_pb2.EncoderInfo:
        """The loaded model, adapter, encoder_id, slot geometry and limits
        (``icae.v1.EncoderInfo``)."""
        return self._call(self._stub.GetInfo, encoder_pb2.GetEncoderInfoRequest(), timeout)
