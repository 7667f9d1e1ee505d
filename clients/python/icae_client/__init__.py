"""Python client of the ICAE encoder and decoder services (package icae.v1).

::

    from icae_client import DecoderClient, EncoderClient

    encoder = EncoderClient("localhost:50051")
    decoder = DecoderClient("localhost:50052")
    docs = encoder.compress(["A long document ...", "Another one ..."])
    print(decoder.generate(context=docs, prompt="Summarize.", max_new_tokens=64).text)

The generated protobuf modules are found through ``ICAE_PYTHON_STUBS`` (see ``_proto``).
"""

from .channel import Connection, build_service_config, build_target
from .decoder import Chunk, DecoderClient, Result, Usage, build_request
from .encoder import EncoderClient, rendezvous_ranking, span_content_key
from .errors import IcaeError
from .slots import CompressResult, Handle, Slots, tensor_to_numpy
from ._proto import decoder_pb2, encoder_pb2, slots_pb2, tensor_pb2

__all__ = [
    "Chunk", "CompressResult", "Connection", "DecoderClient", "EncoderClient", "Handle",
    "IcaeError", "Result", "Slots", "Usage", "build_request", "build_service_config",
    "build_target", "decoder_pb2", "encoder_pb2", "rendezvous_ranking", "slots_pb2",
    "span_content_key", "tensor_pb2", "tensor_to_numpy",
]

__version__ = "0.1.0"
