"""Client of the icae.v1.Decoder service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence, Union

import grpc

from ._base import BaseClient
from ._proto import decoder_pb2, decoder_pb2_grpc, encoder_pb2, slots_pb2
from .channel import Addresses
from .encoder import token_ids
from .errors import IcaeError
from .slots import Handle, Slots

# One context part: compressed slots, a handle to stored slots, plain text (tokenized without
# BOS), or token ids.
ContextPart = Union[Slots, Handle, slots_pb2.MemorySlots, slots_pb2.SlotHandle, str,
                    Sequence[int]]


@dataclass(frozen=True)
class Usage:
    """What a generation read, produced and took (``icae.v1.GenerateUsage``).

    ``cached_positions``: leading context positions whose KV the decoder reused from an earlier
    request over the same context prefix (same slots and template tokens) instead of prefilling
    them again; 0 on a miss, with ``skip_prefix_cache`` or with the server's prefix cache off.
    """

    slot_tokens: int
    prompt_tokens: int
    generated_tokens: int
    uncompressed_context_tokens: int
    queue_seconds: float
    time_to_first_token_seconds: float
    total_seconds: float
    kv_cache_bytes: int
    cached_positions: int = 0

    @classmethod
    def from_proto(cls, usage: decoder_pb2.GenerateUsage) -> "Usage":
        return cls(usage.slot_tokens, usage.prompt_tokens, usage.generated_tokens,
                   usage.uncompressed_context_tokens, usage.queue_seconds,
                   usage.time_to_first_token_seconds, usage.total_seconds, usage.kv_cache_bytes,
                   usage.cached_positions)


@dataclass(frozen=True)
class Result:
    """A whole generation.

    Attributes:
        text: the generated text (stop string excluded; empty when the model has no tokenizer).
        token_ids: the generated ids.
        finish_reason: ``"EOS"``, ``"LENGTH"`` or ``"STOP"``.
        usage: token counts and timings.
        request_id: echoed from the request.
    """

    text: str
    token_ids: List[int]
    finish_reason: str
    usage: Usage
    request_id: str = ""


@dataclass(frozen=True)
class Chunk:
    """One streamed step: text and ids generated since the previous chunk. Only the last chunk
    has ``finish_reason`` and ``usage`` (None on the others)."""

    text: str
    token_ids: List[int]
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None
    request_id: str = ""


def _finish_reason(value: int) -> Optional[str]:
    if value == decoder_pb2.FINISH_REASON_UNSPECIFIED:
        return None
    return decoder_pb2.FinishReason.Name(value)


def make_context_part(part: ContextPart) -> decoder_pb2.ContextPart:
    """Slots / MemorySlots -> slots part; Handle / SlotHandle -> handle part; str -> text part;
    sequence of ints -> token-id part."""
    if isinstance(part, Slots):
        return decoder_pb2.ContextPart(slots=part.proto)
    if isinstance(part, slots_pb2.MemorySlots):
        return decoder_pb2.ContextPart(slots=part)
    if isinstance(part, Handle):
        return decoder_pb2.ContextPart(handle=part.proto)
    if isinstance(part, slots_pb2.SlotHandle):
        return decoder_pb2.ContextPart(handle=part)
    if isinstance(part, str):
        return decoder_pb2.ContextPart(text=part)
    if isinstance(part, (bytes, bytearray, int)):
        raise TypeError(f"a context part is Slots, str or a sequence of token ids, not "
                        f"{type(part).__name__}")
    return decoder_pb2.ContextPart(
        token_ids=encoder_pb2.TokenIds(ids=token_ids(part, "context")))


def build_request(context: Union[ContextPart, Sequence[ContextPart]] = (),
                  prompt: Union[str, Sequence[int]] = "", *, template: Optional[str] = None,
                  max_new_tokens: int = 0, temperature: float = 0.0, top_k: int = 0,
                  top_p: float = 0.0, seed: Optional[int] = None, stop: Sequence[str] = (),
                  request_id: str = "", ignore_eos: bool = False,
                  skip_prefix_cache: bool = False) -> decoder_pb2.GenerateRequest:
    """The GenerateRequest for ``DecoderClient.generate`` / ``stream`` (same arguments)."""
    parts: List[Any] = ([context] if isinstance(context, (Slots, Handle, slots_pb2.MemorySlots,
                                                          slots_pb2.SlotHandle, str))
                        else list(context))
    if isinstance(stop, str):
        stop = [stop]
    request = decoder_pb2.GenerateRequest(
        context=[make_context_part(p) for p in parts], template_name=template or "",
        max_new_tokens=max_new_tokens, stop=list(stop), request_id=request_id,
        ignore_eos=ignore_eos, skip_prefix_cache=skip_prefix_cache)
    if isinstance(prompt, str):
        request.prompt = prompt
    else:
        request.prompt_ids.ids.extend(token_ids(prompt, "prompt"))
    request.sampling.temperature = temperature
    request.sampling.top_k = top_k
    request.sampling.top_p = top_p
    if seed is not None:
        request.sampling.seed = seed
    return request


class DecoderClient(BaseClient):
    """Generates answers from memory slots (plus text) on one or more decoder replicas.

    ::

        with DecoderClient("localhost:50052") as decoder:
            result = decoder.generate(context=docs, prompt="Who wrote it?", max_new_tokens=64)
            print(result.text, result.finish_reason, result.usage.total_seconds)
            for chunk in decoder.stream(context=docs, prompt="And when?"):
                print(chunk.text, end="", flush=True)

    Constructor arguments are those of ``EncoderClient``. Every call raises ``IcaeError`` (with
    the gRPC code name) when it fails, e.g. FAILED_PRECONDITION for slots of another encoder.
    """

    SERVICE = "icae.v1.Decoder"

    def __init__(self, addresses: Optional[Addresses] = None, **kwargs: Any) -> None:
        super().__init__(addresses, **kwargs)
        self._stub = decoder_pb2_grpc.DecoderStub(self.connection.channel)

    def generate(self, context: Union[ContextPart, Sequence[ContextPart]] = (),
                 prompt: Union[str, Sequence[int]] = "", *, template: Optional[str] = None,
                 max_new_tokens: int = 0, temperature: float = 0.0, top_k: int = 0,
                 top_p: float = 0.0, seed: Optional[int] = None, stop: Sequence[str] = (),
                 request_id: str = "", ignore_eos: bool = False,
                 skip_prefix_cache: bool = False, timeout: Optional[float] = None,
                 recompress: Any = None) -> Result:
        """Generates a whole answer.

        Args:
            context: ordered parts the model reads: ``Slots`` from ``EncoderClient.compress``
                (sent exactly as received), ``str`` (plain text, tokenized without BOS) or a
                sequence of token ids.
            prompt: the question (``str``) or its token ids. Ignored by the ``"ae"`` template.
            template: ``"icae-v2-instruct"``, ``"icae-v1"``, ``"ae"`` or ``"raw"``; None lets the
                server choose (instruct with a prompt, else ae).
            max_new_tokens: 1..the server's limit; 0 = the server's default.
            temperature: 0 = greedy; > 0 samples (with ``top_k``, ``top_p``, ``seed``).
            stop: strings that end the generation (not returned).
            request_id: echoed in the result.
            ignore_eos: keep generating past EOS until ``max_new_tokens``.
            skip_prefix_cache: neither reuse nor keep the KV of this request's context prefix
                on the decoder (e.g. a one-off document that should not displace shared ones);
                ``usage.cached_positions`` is then 0.
            timeout: deadline of this call in seconds (default: the connection's).
            recompress: an ``EncoderClient``. When the decoder answers NOT_FOUND (a ``Handle``
                in the context expired from the slot store), its handles are compressed again
                from their source spans and the call retried once.
        """
        request = build_request(context, prompt, template=template,
                                max_new_tokens=max_new_tokens, temperature=temperature,
                                top_k=top_k, top_p=top_p, seed=seed, stop=stop,
                                request_id=request_id, ignore_eos=ignore_eos,
                                skip_prefix_cache=skip_prefix_cache)
        try:
            return self.generate_request(request, timeout=timeout)
        except IcaeError as e:
            parts = [context] if not isinstance(context, (list, tuple)) else list(context)
            stale = [i for i, p in enumerate(parts)
                     if isinstance(p, Handle) and p.source is not None]
            if recompress is None or e.code != grpc.StatusCode.NOT_FOUND or not stale:
                raise
            fresh = recompress.compress_request(
                encoder_pb2.CompressRequest(spans=[parts[i].source for i in stale],
                                            slot_dtype=parts[stale[0]].proto.dtype,
                                            return_handles=True))
            for i, replacement in zip(stale, fresh):
                request.context[i].CopyFrom(make_context_part(replacement))
            return self.generate_request(request, timeout=timeout)

    def generate_request(self, request: decoder_pb2.GenerateRequest, *,
                         timeout: Optional[float] = None) -> Result:
        """``generate`` with a ready ``icae.v1.GenerateRequest``."""
        response = self._call(self._stub.Generate, request, timeout)
        return Result(response.text, list(response.token_ids),
                      _finish_reason(response.finish_reason) or "",
                      Usage.from_proto(response.usage), response.request_id)

    def stream(self, context: Union[ContextPart, Sequence[ContextPart]] = (),
               prompt: Union[str, Sequence[int]] = "", *, template: Optional[str] = None,
               max_new_tokens: int = 0, temperature: float = 0.0, top_k: int = 0,
               top_p: float = 0.0, seed: Optional[int] = None, stop: Sequence[str] = (),
               request_id: str = "", ignore_eos: bool = False,
               skip_prefix_cache: bool = False,
               timeout: Optional[float] = None) -> Iterator[Chunk]:
        """Like ``generate``, streamed: yields a Chunk per decoded step; the last one has
        ``finish_reason`` and ``usage``. Closing the iterator early (``break``, ``close()``)
        cancels the call on the server."""
        request = build_request(context, prompt, template=template,
                                max_new_tokens=max_new_tokens, temperature=temperature,
                                top_k=top_k, top_p=top_p, seed=seed, stop=stop,
                                request_id=request_id, ignore_eos=ignore_eos,
                                skip_prefix_cache=skip_prefix_cache)
        return self.stream_request(request, timeout=timeout)

    def stream_request(self, request: decoder_pb2.GenerateRequest, *,
                       timeout: Optional[float] = None) -> Iterator[Chunk]:
        """``stream`` with a ready ``icae.v1.GenerateRequest``."""
        call = self._call(self._stub.GenerateStream, request, timeout)
        return self._chunks(call)

    def _chunks(self, call: Any) -> Iterator[Chunk]:
        try:
            for chunk in call:
                finish = _finish_reason(chunk.finish_reason)
                yield Chunk(chunk.text, list(chunk.token_ids), finish,
                            Usage.from_proto(chunk.usage) if chunk.HasField("usage") else None,
                            chunk.request_id)
        except grpc.RpcError as e:
            raise IcaeError.from_rpc_error(e) from None
        finally:
            call.cancel()  # no-op once the call has finished

    def get_info(self, timeout: Optional[float] = None) -> decoder_pb2.DecoderInfo:
        """The loaded model, accepted encoder_id, templates and limits
        (``icae.v1.DecoderInfo``)."""
        return self._call(self._stub.GetInfo, decoder_pb2.GetDecoderInfoRequest(), timeout)
