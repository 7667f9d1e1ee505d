"""Client of the icae.v1.Encoder service."""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Union, cast

from ._base import BaseClient
from ._proto import encoder_pb2, encoder_pb2_grpc, tensor_pb2
from .channel import Addresses
from .slots import CompressResult, Slots

# A span: text (tokenized by the server, BOS prepended) or token ids (used verbatim).
SpanInput = Union[str, Sequence[int]]

_SLOT_DTYPES = {
    None: tensor_pb2.DATA_TYPE_UNSPECIFIED,
    "float32": tensor_pb2.FLOAT32,
    "float16": tensor_pb2.FLOAT16,
    "bfloat16": tensor_pb2.BFLOAT16,
}


def slot_dtype_value(dtype: Union[None, str, int]) -> "tensor_pb2.DataType":
    """``None`` (the server's compute dtype), ``"float32"``, ``"bfloat16"``, ``"float16"`` (any
    case, ``"FLOAT32"`` too) or a ``tensor_pb2.DataType`` value -> the enum value."""
    if isinstance(dtype, int):
        tensor_pb2.DataType.Name(dtype)  # ValueError when not a DataType
        return cast("tensor_pb2.DataType", dtype)
    key = dtype.lower() if dtype is not None else None
    if key not in _SLOT_DTYPES:
        raise ValueError(f"slot_dtype {dtype!r} is not one of float32, bfloat16, float16")
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


class EncoderClient(BaseClient):
    """Compresses documents into memory slots on one or more encoder replicas.

    ::

        with EncoderClient(["10.0.0.5:50051", "10.0.0.6:50051"], token="s3cret") as encoder:
            docs = encoder.compress(["first document ...", "second document ..."])
            print(docs[0].num_slots, docs[0].numpy().shape)

    Args:
        addresses: ``"HOST:PORT"``, a target URI (``"dns:///encoder:50051"``), or several
            ``"IP:PORT"`` balanced round-robin with UNAVAILABLE retried on another replica.
        connection: an existing ``Connection`` to share instead of ``addresses``.
        **options: ``Connection`` options: ``token`` / ``token_file`` (bearer token), ``tls``,
            ``tls_ca_file``, ``tls_cert_file``, ``tls_key_file``, ``tls_server_name``,
            ``timeout`` (default deadline in seconds, None = none), ``max_attempts``,
            ``max_message_bytes``.

    Every call raises ``IcaeError`` (with the gRPC code name) when it fails.
    """

    SERVICE = "icae.v1.Encoder"

    def __init__(self, addresses: Optional[Addresses] = None, **kwargs: Any) -> None:
        super().__init__(addresses, **kwargs)
        self._stub = encoder_pb2_grpc.EncoderStub(self.connection.channel)

    def compress(self, spans: Union[SpanInput, Sequence[SpanInput]], *,
                 slot_dtype: Union[None, str, int] = None, bypass_cache: bool = False,
                 ids: Optional[Sequence[str]] = None,
                 timeout: Optional[float] = None) -> CompressResult:
        """Compresses spans; returns one Slots per span, in order.

        Args:
            spans: a list whose items are text (``str``, tokenized by the server with BOS) or
                token ids (a sequence of ints, used verbatim). A single ``str`` is one span.
            slot_dtype: wire dtype of the slots: ``"float32"``, ``"bfloat16"``, ``"float16"``, or
                None for the server's compute dtype.
            bypass_cache: neither read nor write the server's slot cache.
            ids: optional span ids, echoed back as ``Slots.id``.
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
            slot_dtype=slot_dtype_value(slot_dtype), bypass_cache=bypass_cache)
        response = self._call(self._stub.Compress, request, timeout)
        slots = [Slots(span.slots, span.id, span.usage) for span in response.spans]
        return CompressResult(slots, response.usage)

    def get_info(self, timeout: Optional[float] = None) -> encoder_pb2.EncoderInfo:
        """The loaded model, adapter, encoder_id, slot geometry and limits
        (``icae.v1.EncoderInfo``)."""
        return self._call(self._stub.GetInfo, encoder_pb2.GetEncoderInfoRequest(), timeout)
