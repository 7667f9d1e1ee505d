#!/usr/bin/python3
"""The Python client's slot-store features against the real services and a real redis-server:
content-hash routing over two encoder replicas, handles (with recompression after expiry), and
INT8 slots. redis-server is Debian's, installed by tools/setup.sh (missing: the test fails).
Environment as python_client_test.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("ICAE_BIN_DIR", REPO / "build" / "bin"))
TESTDATA = Path(os.environ.get("ICAE_TESTDATA", REPO / "tests" / "testdata"))
REDIS_SERVER = Path("/usr/bin/redis-server")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "clients" / "python"))
from service_process import ServiceProcess, read_safetensors  # noqa: E402

from icae_client import (DecoderClient, EncoderClient, Handle, IcaeError, Slots,  # noqa: E402
                         encoder_pb2, rendezvous_ranking, span_content_key)

CALL_TIMEOUT = 30.0
# rendezvous_ranking(key of ids [1, 2, 3], ["a:1", "b:2", "c:3"]), asserted by the C++ test too.
RANKING_123 = [1, 2, 0]


class KeysTest(unittest.TestCase):
    def test_content_keys_match_the_cpp_client(self) -> None:
        # The same values are asserted by tests/common/client/encoder_router_test.cc: both
        # clients must send a document to the same replica.
        ids = encoder_pb2.Span(token_ids=encoder_pb2.TokenIds(ids=[1, 2, 3]))
        self.assertEqual(span_content_key(ids),
                         "79ae57b5a2cc8051b389dbfcd049dcd5384fc4001e39201278902818b22a8b4a")
        self.assertEqual(span_content_key(encoder_pb2.Span(text="héllo")),
                         "38c5a283ffb18030641554c44cbbc74be291bbd0caaf34fe320021ad67f05e8c")
        self.assertEqual(rendezvous_ranking(span_content_key(ids), ["a:1", "b:2", "c:3"]),
                         RANKING_123)


class SlotStoreServicesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if not os.access(REDIS_SERVER, os.X_OK):
            raise AssertionError(f"{REDIS_SERVER} is missing: run tools/setup.sh")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            cls.redis_port = s.getsockname()[1]
        cls.redis = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(cls.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{cls.redis_port}"
        model = ["--model", str(TESTDATA / "tiny-llama"), "--adapter", str(TESTDATA / "tiny-icae"),
                 "--threads", "1", "--drain_seconds", "1", "--slot_store", url]
        cls.processes = [ServiceProcess(BIN_DIR / "icae-encoder", model, "store-encoder-a"),
                         ServiceProcess(BIN_DIR / "icae-encoder",
                                        model + ["--slot_store_ttl", "1"], "store-encoder-b"),
                         ServiceProcess(BIN_DIR / "icae-decoder", model, "store-decoder")]
        try:
            for p in cls.processes:
                p.wait_listening()
            cls.encoder_a, cls.encoder_b, cls.decoder_proc = cls.processes
            cls.decoder = DecoderClient(cls.decoder_proc.address, timeout=CALL_TIMEOUT)
            cls.decoder.wait_until_serving(30)
            for p in (cls.encoder_a, cls.encoder_b):
                with EncoderClient(p.address) as e:
                    e.wait_until_serving(30)
        except BaseException:
            cls.tearDownClass()
            raise
        cls.golden = read_safetensors(TESTDATA / "tiny-icae" / "expected.safetensors")

    @classmethod
    def tearDownClass(cls) -> None:
        if hasattr(cls, "decoder"):
            cls.decoder.close()
        for p in cls.processes:
            p.kill()
            p.close()
        cls.redis.kill()
        cls.redis.wait()

    def ids(self, name: str) -> list:
        return [int(i) for i in self.golden[name].reshape(-1)]

    def test_hash_routing_keeps_each_document_on_one_replica(self) -> None:
        addresses = [self.encoder_a.address, self.encoder_b.address]
        with EncoderClient(addresses, routing="hash", timeout=CALL_TIMEOUT) as routed:
            self.assertEqual(routed.replicas, addresses)
            docs = [[40 + d, 41, 42, 43 + d] for d in range(8)]
            hits = 0
            for _ in range(3):
                for d in range(0, 8, 2):
                    result = routed.compress([docs[d], docs[d + 1]], bypass_cache=False)
                    self.assertEqual([s.source_tokens for s in result], [4, 4])
                    hits += result.usage.cache_hits + result.usage.store_hits
            self.assertEqual(hits, 16)  # every repeat: a hit on the replica that computed it
        with self.assertRaises(ValueError):
            EncoderClient(addresses, routing="random")

    def test_handles_decode_and_are_recompressed_after_expiry(self) -> None:
        with EncoderClient(self.encoder_b.address, timeout=CALL_TIMEOUT) as encoder:
            result = encoder.compress([self.ids("context_ids")], handles=True)
            handle = result[0]
            self.assertIsInstance(handle, Handle)
            self.assertTrue(handle.key.startswith("icae:slots:"))
            self.assertGreater(handle.nbytes, 0)
            expected = self.ids("ae_greedy_ids")
            answer = self.decoder.generate(context=[handle], template="ae", max_new_tokens=12)
            self.assertEqual(answer.token_ids, expected)
            time.sleep(2.2)  # encoder-b's entries live 1 s
            with self.assertRaises(IcaeError) as expired:
                self.decoder.generate(context=[handle], template="ae", max_new_tokens=12)
            self.assertEqual(expired.exception.code_name, "NOT_FOUND")
            self.assertIn(handle.key, expired.exception.message)
            again = self.decoder.generate(context=[handle], template="ae", max_new_tokens=12,
                                          recompress=encoder)
            self.assertEqual(again.token_ids, expected)

    def test_int8_slots(self) -> None:
        with EncoderClient(self.encoder_a.address, timeout=CALL_TIMEOUT) as encoder:
            f32 = encoder.compress([self.ids("context_ids")], slot_dtype="float32")[0]
            i8 = encoder.compress([self.ids("context_ids")], slot_dtype="int8")[0]
            self.assertIsInstance(i8, Slots)
            self.assertEqual(i8.dtype, "INT8")
            self.assertEqual(i8.nbytes * 4, f32.nbytes)
            exact, approx = f32.numpy(), i8.numpy()
            self.assertEqual(approx.dtype, np.float32)
            step = np.abs(exact).max(axis=1, keepdims=True) / 127
            self.assertTrue(np.all(np.abs(approx - exact) <= step * 0.5001 + 1e-7))
            answer = self.decoder.generate(context=[i8], template="ae", max_new_tokens=12)
            self.assertEqual(len(answer.token_ids), 12)


if __name__ == "__main__":
    missing = [str(b) for b in (BIN_DIR / "icae-encoder", BIN_DIR / "icae-decoder")
               if not os.access(b, os.X_OK)]
    if missing:
        print(f"missing binaries: {missing}", file=sys.stderr)
        sys.exit(1)
    unittest.main()
