"""Memory slots as the encoder returned them, with a NumPy view of the tensor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from ._proto import encoder_pb2, slots_pb2, tensor_pb2

if TYPE_CHECKING:  # numpy is only needed by Slots.numpy() / tensor_to_numpy()
    import numpy

# Wire dtype -> (numpy dtype string, item size in bytes). BFLOAT16 has no numpy dtype.
_ITEM = {
    tensor_pb2.FLOAT32: ("<f4", 4),
    tensor_pb2.FLOAT16: ("<f2", 2),
    tensor_pb2.BFLOAT16: ("<u2", 2),
    tensor_pb2.INT32: ("<i4", 4),
    tensor_pb2.INT64: ("<i8", 8),
    tensor_pb2.INT8: ("<i1", 1),
}


def dtype_name(dtype: int) -> str:
    """``tensor_pb2.BFLOAT16`` -> ``"BFLOAT16"``."""
    return tensor_pb2.DataType.Name(dtype)


def tensor_to_numpy(tensor: tensor_pb2.Tensor) -> "numpy.ndarray":
    """Decodes a wire Tensor (raw little-endian, row-major) into a new NumPy array.

    FLOAT32, FLOAT16, INT32 and INT64 keep their dtype. BFLOAT16 (the upper half of a binary32)
    has no NumPy dtype, so it is widened exactly to float32 by shifting each value 16 bits left.
    INT8 (symmetric per-row quantization) is dequantized to float32 with its ``scale`` tensor.

    Raises:
        ValueError: unknown dtype, negative dimension, or a byte length that does not match
            the shape.
    """
    import numpy as np

    if tensor.dtype not in _ITEM:
        raise ValueError(f"tensor dtype {tensor.dtype} is not decodable")
    np_dtype, item_size = _ITEM[tensor.dtype]
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"tensor shape {list(shape)} has a negative dimension")
    count = 1
    for d in shape:
        count *= d
    if len(tensor.data) != count * item_size:
        raise ValueError(f"tensor of shape {list(shape)} and dtype {dtype_name(tensor.dtype)} "
                         f"needs {count * item_size} bytes, has {len(tensor.data)}")
    array = np.frombuffer(tensor.data, dtype=np_dtype, count=count)
    if tensor.dtype == tensor_pb2.INT8:
        if not shape:
            raise ValueError("an INT8 tensor needs rank >= 1")
        scale = tensor_to_numpy(tensor.scale) if tensor.HasField("scale") else None
        if (scale is None or tensor.scale.dtype != tensor_pb2.FLOAT32
                or tuple(scale.shape) != shape[:-1]):
            raise ValueError(f"INT8 tensor of shape {list(shape)} needs a FLOAT32 scale of "
                             f"shape {list(shape[:-1])}")
        return array.reshape(shape).astype(np.float32) * scale[..., None]
    if tensor.dtype == tensor_pb2.BFLOAT16:
        array = (array.astype(np.uint32) << 16).view(np.float32)
    else:
        array = array.astype(np_dtype[1:], copy=True)  # native byte order, writable
    return array.reshape(shape)


class _SpanResult:
    """What ``Slots`` and ``Handle`` share: the message as the encoder sent it, the span id and
    the span's usage."""

    __slots__ = ("_proto", "_id", "_usage")
    _MESSAGE: Any = None  # the message class, set by subclasses

    def __init__(self, proto: Any, span_id: str = "",
                 usage: Optional[encoder_pb2.SpanUsage] = None) -> None:
        if not isinstance(proto, self._MESSAGE):
            raise TypeError(f"expected icae.v1.{self._MESSAGE.__name__}, got "
                            f"{type(proto).__name__}")
        self._proto = proto
        self._id = span_id
        self._usage = usage

    @property
    def proto(self) -> Any:
        """The message (do not modify it)."""
        return self._proto

    @property
    def id(self) -> str:
        """The span id given to ``compress`` (empty when none was given)."""
        return self._id

    @property
    def usage(self) -> Optional[encoder_pb2.SpanUsage]:
        """Per-span usage from the encoder (tokens, segments, slots, cache_hit, store_hit), if
        known."""
        return self._usage

    @property
    def encoder_id(self) -> str:
        """Fingerprint of the encoder's model and adapter; a decoder accepts only its own."""
        return self._proto.encoder_id

    @property
    def source_tokens(self) -> int:
        """Tokens the span had before compression."""
        return self._proto.source_tokens


class Slots(_SpanResult):
    """The compressed form of one span, as one ``icae.v1.MemorySlots`` message.

    The message is kept exactly as the encoder sent it (``proto``), so passing a Slots to
    ``DecoderClient.generate`` sends the same bytes back, in the same wire dtype. Slots can be
    cached: ``serialize()`` / ``Slots.parse()`` round-trip them through bytes.
    """

    __slots__ = ()
    _MESSAGE = slots_pb2.MemorySlots

    @property
    def num_slots(self) -> int:
        """Slot positions (``num_segments * mem_size``): axis 0 of EMBEDDING slots
        ``[num_slots, hidden]``, axis 3 of KV slots ``[layers, 2, kv_heads, num_slots, head_dim]``."""
        shape = self._proto.slots.shape
        axis = 3 if self._proto.kind == slots_pb2.KV else 0
        return int(shape[axis]) if len(shape) > axis else 0

    @property
    def hidden_size(self) -> int:
        """The last dimension: the hidden size (EMBEDDING) or the head dimension (KV)."""
        shape = self._proto.slots.shape
        return int(shape[-1]) if len(shape) >= 2 else 0

    @property
    def num_segments(self) -> int:
        return self._proto.num_segments

    @property
    def mem_size(self) -> int:
        return self._proto.mem_size

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(int(d) for d in self._proto.slots.shape)

    @property
    def dtype(self) -> str:
        """Wire dtype name: ``"FLOAT32"``, ``"BFLOAT16"``, ``"FLOAT16"`` or ``"INT8"``."""
        return dtype_name(self._proto.slots.dtype)

    @property
    def kind(self) -> str:
        """``"EMBEDDING"`` (ICAE) or ``"KV"``."""
        return slots_pb2.SlotKind.Name(self._proto.kind)

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data."""
        return len(self._proto.slots.data)

    @property
    def compression_ratio(self) -> float:
        """Source tokens per slot position (0 when there are no slots)."""
        return self.source_tokens / self.num_slots if self.num_slots else 0.0

    def numpy(self, dtype: Any = None) -> "numpy.ndarray":
        """The slot tensor ``[num_slots, hidden]`` as a new NumPy array.

        Args:
            dtype: convert to this dtype. By default FLOAT32 and FLOAT16 keep theirs, BFLOAT16
                is widened (exactly) to float32 and INT8 is dequantized to float32.
        """
        array = tensor_to_numpy(self._proto.slots)
        return array if dtype is None else array.astype(dtype)

    def serialize(self) -> bytes:
        """The MemorySlots message as protobuf bytes (for a cache; see ``parse``)."""
        return self._proto.SerializeToString()

    @classmethod
    def parse(cls, data: bytes) -> "Slots":
        """Inverse of ``serialize``."""
        proto = slots_pb2.MemorySlots()
        proto.ParseFromString(data)
        return cls(proto)

    def __repr__(self) -> str:
        return (f"Slots(id={self._id!r}, shape={list(self.shape)}, dtype={self.dtype}, "
                f"source_tokens={self.source_tokens}, encoder_id={self.encoder_id[:12]}...)")


class Handle(_SpanResult):
    """Slots kept in the shared slot store (``compress(..., handles=True)``): an
    ``icae.v1.SlotHandle`` whose key a decoder with the same store fetches. Passing a Handle to
    ``DecoderClient.generate`` sends the key instead of the tensor; ``source`` is the span it was
    made from, so an expired handle can be compressed again (``generate(..., recompress=...)``).
    """

    __slots__ = ("source",)
    _MESSAGE = slots_pb2.SlotHandle

    def __init__(self, proto: slots_pb2.SlotHandle, span_id: str = "",
                 usage: Optional[encoder_pb2.SpanUsage] = None,
                 source: Optional[encoder_pb2.Span] = None) -> None:
        super().__init__(proto, span_id, usage)
        self.source = source

    @property
    def key(self) -> str:
        """The store key (``icae:slots:`` + 64 hex digits)."""
        return self._proto.key

    @property
    def num_slots(self) -> int:
        return self._proto.num_slots

    @property
    def dtype(self) -> str:
        return dtype_name(self._proto.dtype)

    @property
    def nbytes(self) -> int:
        """Bytes the store holds for it (what the handle saves on every Generate call)."""
        return self._proto.bytes

    def __repr__(self) -> str:
        return f"Handle(id={self._id!r}, key={self.key[:24]}..., num_slots={self.num_slots})"


class CompressResult(List[Any]):
    """``list`` of ``Slots`` (or ``Handle`` when handles were asked for and stored), one per span
    in request order, plus the request's ``usage`` (``icae.v1.CompressUsage``: spans, tokens,
    segments, slots, cache_hits, store_hits, queue_seconds, compute_seconds)."""

    def __init__(self, slots: List[Any], usage: encoder_pb2.CompressUsage) -> None:
        super().__init__(slots)
        self.usage = usage
