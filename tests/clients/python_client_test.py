#!/usr/bin/python3
"""The Python client (clients/python/icae_client) against the real icae-encoder / icae-decoder.

Starts two encoder replicas and one decoder (bearer token required) on 127.0.0.1:0 with the
golden tiny model (tests/testdata/tiny-llama + tiny-icae) and checks the client's results against
tests/testdata/tiny-icae/expected.safetensors. Fails (exit 1) when a service binary is
missing. Environment: ICAE_BIN_DIR (binaries), ICAE_TESTDATA, ICAE_PYTHON_STUBS (generated
modules), PYTHONPATH including clients/python.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("ICAE_BIN_DIR", REPO / "build" / "bin"))
TESTDATA = Path(os.environ.get("ICAE_TESTDATA", REPO / "tests" / "testdata"))
ENCODER_BIN = BIN_DIR / "icae-encoder"
DECODER_BIN = BIN_DIR / "icae-decoder"

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "clients" / "python"))
from service_process import ServiceProcess, read_safetensors, wait_for  # noqa: E402

import icae_client  # noqa: E402
from icae_client import DecoderClient, EncoderClient, IcaeError, Slots  # noqa: E402

TOKEN = "python-client-test-token"
CALL_TIMEOUT = 30.0


class PureFunctionsTest(unittest.TestCase):
    """Target and service-config building, as the C++ client does it."""

    def test_targets(self) -> None:
        self.assertEqual(icae_client.build_target("dns:///encoder:50051"), "dns:///encoder:50051")
        self.assertEqual(icae_client.build_target(["10.0.0.5:1", "localhost:2"]),
                         "ipv4:10.0.0.5:1,127.0.0.1:2")
        self.assertEqual(icae_client.build_target(["[::1]:1", "[fe80::2]:2"]),
                         "ipv6:[::1]:1,[fe80::2]:2")
        for bad in ([], [""], ["a.example:1", "b.example:2"], ["10.0.0.1:1", "[::1]:2"],
                    ["dns:///x:1", "10.0.0.1:1"], ["10.0.0.1", "10.0.0.2:1"]):
            with self.assertRaises(ValueError, msg=str(bad)):
                icae_client.build_target(bad)

    def test_service_config(self) -> None:
        import json
        config = json.loads(icae_client.build_service_config(9))
        self.assertEqual(config["loadBalancingConfig"], [{"round_robin": {}}])
        policy = config["methodConfig"][0]["retryPolicy"]
        self.assertEqual(policy["maxAttempts"], 5)
        self.assertEqual(policy["retryableStatusCodes"], ["UNAVAILABLE"])
        self.assertNotIn("methodConfig", json.loads(icae_client.build_service_config(1)))

    def test_bf16_widening(self) -> None:
        values = np.array([1.0, -2.5, 3.140625, 0.0, -0.0, 65280.0, 1e-38], dtype=np.float32)
        upper = (values.view(np.uint32) >> 16).astype("<u2")  # these values are exact in bf16
        tensor = icae_client.tensor_pb2.Tensor(dtype=icae_client.tensor_pb2.BFLOAT16,
                                               shape=[7], data=upper.tobytes())
        decoded = icae_client.tensor_to_numpy(tensor)
        self.assertEqual(decoded.dtype, np.float32)
        np.testing.assert_array_equal(decoded.view(np.uint32), values.view(np.uint32) & 0xFFFF0000)
        tensor.data = tensor.data[:-1]
        with self.assertRaises(ValueError):
            icae_client.tensor_to_numpy(tensor)


    def test_slot_count_follows_the_kind(self) -> None:
        # EMBEDDING [num_slots, hidden]; KV [layers, 2, kv_heads, num_slots, head_dim].
        embedding = icae_client.slots_pb2.MemorySlots(kind=icae_client.slots_pb2.EMBEDDING)
        embedding.slots.shape.extend([12, 64])
        kv = icae_client.slots_pb2.MemorySlots(kind=icae_client.slots_pb2.KV)
        kv.slots.shape.extend([6, 2, 4, 12, 64])
        for proto in (embedding, kv):
            slots = icae_client.Slots(proto)
            self.assertEqual(slots.num_slots, 12, slots.kind)
            self.assertEqual(slots.hidden_size, 64)
        self.assertEqual(icae_client.Slots(kv).kind, "KV")


class ServicesTest(unittest.TestCase):
    """Everything that needs the running services."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.golden = read_safetensors(TESTDATA / "tiny-icae" / "expected.safetensors")
        cls.llama_golden = read_safetensors(TESTDATA / "tiny-llama" / "expected.safetensors")
        cls.tmp = tempfile.TemporaryDirectory(prefix="icae-pyclient-")
        token_file = Path(cls.tmp.name) / "token"
        token_file.write_text(TOKEN + "\n")
        model = ["--model", str(TESTDATA / "tiny-llama"), "--adapter", str(TESTDATA / "tiny-icae"),
                 "--threads", "1", "--drain_seconds", "2"]
        cls.processes = []
        try:
            cls.encoder_a = cls._start(ENCODER_BIN, model, "encoder-a")
            cls.encoder_b = cls._start(ENCODER_BIN, model, "encoder-b")
            cls.decoder_proc = cls._start(
                DECODER_BIN, model + ["--auth_token_file", str(token_file)], "decoder")
            for p in cls.processes:
                p.wait_listening()
            cls.encoder = EncoderClient(cls.encoder_a.address, timeout=CALL_TIMEOUT)
            cls.decoder = DecoderClient(cls.decoder_proc.address, token=TOKEN,
                                        timeout=CALL_TIMEOUT)
            cls.encoder.wait_until_serving(30)
            cls.decoder.wait_until_serving(30)
            with EncoderClient(cls.encoder_b.address) as encoder_b:
                encoder_b.wait_until_serving(30)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls, binary: Path, args: list, name: str) -> ServiceProcess:
        process = ServiceProcess(binary, args, name)
        cls.processes.append(process)
        return process

    @classmethod
    def tearDownClass(cls) -> None:
        for client in ("encoder", "decoder"):
            if hasattr(cls, client):
                getattr(cls, client).close()
        for process in cls.processes:  # drain all at once: each takes ~2 s to stop
            process.terminate()
        failures = []
        for process in cls.processes:
            exit_code = process.stop()
            if exit_code not in (0, -9):  # -9: killed by test_round_robin_and_failover
                failures.append(f"{process.name} exited {exit_code}:\n{process.log()}")
            process.close()
        cls.tmp.cleanup()
        if failures:
            raise AssertionError("\n".join(failures))

    def ids(self, name: str) -> list:
        return [int(i) for i in self.golden[name].reshape(-1)]

    def compress_golden(self, **kwargs) -> Slots:
        result = self.encoder.compress([self.ids("context_ids")], bypass_cache=True, **kwargs)
        self.assertEqual(len(result), 1)
        return result[0]

    def test_info(self) -> None:
        enc, dec = self.encoder.get_info(), self.decoder.get_info()
        self.assertEqual(enc.encoder_id, dec.accepted_encoder_id)
        self.assertEqual(len(enc.encoder_id), 64)
        self.assertEqual((enc.hidden_size, enc.mem_size, enc.compression_rate), (64, 4, 4))
        self.assertIn("ae", list(dec.templates))
        self.assertEqual(self.encoder.health(), "SERVING")
        self.assertEqual(self.decoder.health(), "SERVING")

    def test_compress_matches_golden_slots(self) -> None:
        slots = self.compress_golden()
        self.assertEqual(slots.shape, (4, 64))
        self.assertEqual(slots.dtype, "FLOAT32")
        self.assertEqual(slots.kind, "EMBEDDING")
        self.assertEqual((slots.source_tokens, slots.num_segments, slots.mem_size), (16, 1, 4))
        self.assertEqual(slots.encoder_id, self.encoder.get_info().encoder_id)
        self.assertEqual(slots.compression_ratio, 4.0)
        array = slots.numpy()
        self.assertEqual(array.dtype, np.float32)
        np.testing.assert_allclose(array, self.golden["slots"], rtol=0, atol=1e-4)

    def test_multi_span_and_order(self) -> None:
        result = self.encoder.compress([self.ids("context40_ids"), self.ids("context_ids")],
                                       ids=["long", "short"], bypass_cache=True)
        self.assertEqual([s.id for s in result], ["long", "short"])
        self.assertEqual(result[0].num_segments, 3)
        np.testing.assert_allclose(result[0].numpy(), self.golden["slots40"], rtol=0, atol=1e-4)
        np.testing.assert_allclose(result[1].numpy(), self.golden["slots"], rtol=0, atol=1e-4)
        self.assertEqual((result.usage.spans, result.usage.tokens, result.usage.slots),
                         (2, 56, 16))
        answer = self.decoder.generate(context=[result[0]], template="ae", max_new_tokens=12)
        self.assertEqual(answer.token_ids, self.ids("ae40_greedy_ids"))

    def test_generate_ae_matches_golden_ids(self) -> None:
        slots = self.compress_golden()
        result = self.decoder.generate(context=[slots], template="ae", max_new_tokens=12,
                                       request_id="golden")
        self.assertEqual(result.token_ids, self.ids("ae_greedy_ids"))
        self.assertEqual(result.finish_reason, "LENGTH")
        self.assertEqual(result.request_id, "golden")
        self.assertEqual(result.usage.slot_tokens, 4)
        self.assertEqual(result.usage.generated_tokens, 12)
        self.assertEqual(result.usage.uncompressed_context_tokens, 16)
        self.assertGreater(result.usage.total_seconds, 0)

    def test_stream_concatenation_equals_unary(self) -> None:
        slots = self.compress_golden()
        unary = self.decoder.generate(context=slots, template="ae", max_new_tokens=12)
        chunks = list(self.decoder.stream(context=[slots], template="ae", max_new_tokens=12))
        self.assertGreaterEqual(len(chunks), 2)
        self.assertEqual([i for c in chunks for i in c.token_ids], unary.token_ids)
        self.assertEqual("".join(c.text for c in chunks), unary.text)
        self.assertTrue(all(c.finish_reason is None and c.usage is None for c in chunks[:-1]))
        self.assertEqual(chunks[-1].finish_reason, unary.finish_reason)
        self.assertEqual(chunks[-1].usage.generated_tokens, 12)

    def test_stream_close_cancels_on_server(self) -> None:
        slots = self.compress_golden()
        cancelled = "icae_decoder_requests_finished_total"
        before = self.decoder_proc.counter(cancelled, finish_reason="cancelled")
        stream = self.decoder.stream(context=[slots], template="ae", max_new_tokens=500,
                                     ignore_eos=True)
        first = next(stream)
        self.assertEqual(len(first.token_ids), 1)
        stream.close()
        self.assertTrue(wait_for(lambda: self.decoder_proc.counter(
            cancelled, finish_reason="cancelled") > before, timeout=10),
            "the decoder never counted the closed stream as cancelled")

    def test_second_question_reuses_the_slots_kv(self) -> None:
        # Slot-prefix reuse (the decoder's --prefix_cache_bytes, on by default): a span no other
        # test compresses, so the first question misses and the second reuses "[slots][FT]".
        span = [int(i) for i in self.golden["context40_ids"].reshape(-1)][5:21]
        slots = self.encoder.compress([span], bypass_cache=True)[0]
        kwargs = dict(context=[slots], template="icae-v1", max_new_tokens=6, ignore_eos=True)
        first = self.decoder.generate(prompt=[7], **kwargs)
        self.assertEqual(first.usage.cached_positions, 0)
        second = self.decoder.generate(prompt=[9], **kwargs)
        self.assertEqual(second.usage.cached_positions, slots.num_slots + 1)
        opted_out = self.decoder.generate(prompt=[9], skip_prefix_cache=True, **kwargs)
        self.assertEqual(opted_out.usage.cached_positions, 0)
        self.assertEqual(opted_out.token_ids, second.token_ids)
        streamed = list(self.decoder.stream(prompt=[11], **kwargs))
        self.assertEqual(streamed[-1].usage.cached_positions, slots.num_slots + 1)

    def test_token_id_context_and_prompt_ids(self) -> None:
        # Base-model greedy decoding through a token-id context part: the "raw" template places
        # the context and the prompt ids as they are.
        prompt = [int(i) for i in self.llama_golden["prompt_ids"].reshape(-1)]
        expected = [int(i) for i in self.llama_golden["greedy_ids"].reshape(-1)][len(prompt):]
        result = self.decoder.generate(context=[prompt[:5]], prompt=prompt[5:], template="raw",
                                       max_new_tokens=len(expected))
        self.assertEqual(result.token_ids, expected)
        self.assertEqual(result.usage.prompt_tokens, len(prompt))
        self.assertEqual(result.usage.slot_tokens, 0)

    def test_low_precision_wire_dtypes(self) -> None:
        golden = self.golden["slots"]
        for dtype, rel in (("bfloat16", 2.0**-8), ("float16", 2.0**-11)):
            with self.subTest(dtype=dtype):
                slots = self.compress_golden(slot_dtype=dtype)
                self.assertEqual(slots.dtype, dtype.upper())
                self.assertEqual(slots.nbytes, 4 * 64 * 2)
                array = slots.numpy(np.float32)
                self.assertEqual(array.shape, (4, 64))
                error = np.abs(array - golden)
                self.assertTrue(np.all(error <= rel * np.abs(golden) + 1e-4),
                                f"{dtype}: max error {error.max()}")
                result = self.decoder.generate(context=[slots], template="ae", max_new_tokens=12)
                self.assertEqual(len(result.token_ids), 12)

    def test_cache_and_serialized_slots(self) -> None:
        span = [int(i) for i in self.golden["context40_ids"].reshape(-1)][3:27]
        first = self.encoder.compress([span])[0]
        second = self.encoder.compress([span])[0]
        self.assertTrue(second.usage.cache_hit)
        self.assertEqual(first.serialize(), second.serialize())
        restored = Slots.parse(first.serialize())
        self.assertEqual(restored.proto, first.proto)
        a = self.decoder.generate(context=[first], template="ae", max_new_tokens=6)
        b = self.decoder.generate(context=[restored], template="ae", max_new_tokens=6)
        self.assertEqual(a.token_ids, b.token_ids)

    def test_errors_carry_code_names(self) -> None:
        with self.assertRaises(IcaeError) as bad_id:
            self.encoder.compress([[1, 2, 384]])
        self.assertEqual(bad_id.exception.code_name, "INVALID_ARGUMENT")
        self.assertIn("384", bad_id.exception.message)

        foreign = Slots(self.compress_golden().proto.__deepcopy__())
        foreign.proto.encoder_id = "0" * 64
        with self.assertRaises(IcaeError) as wrong_encoder:
            self.decoder.generate(context=[foreign], template="ae", max_new_tokens=2)
        self.assertEqual(wrong_encoder.exception.code_name, "FAILED_PRECONDITION")

        with self.assertRaises(IcaeError) as stream_error:
            list(self.decoder.stream(context=[foreign], template="ae", max_new_tokens=2))
        self.assertEqual(stream_error.exception.code_name, "FAILED_PRECONDITION")

        with DecoderClient(self.decoder_proc.address, timeout=CALL_TIMEOUT) as no_token:
            self.assertEqual(no_token.health(), "SERVING")  # health is exempt
            with self.assertRaises(IcaeError) as unauthenticated:
                no_token.get_info()
        self.assertEqual(unauthenticated.exception.code_name, "UNAUTHENTICATED")

        # Text reaches the servers as text (the golden model has no tokenizer to read it).
        with self.assertRaises(IcaeError) as text_span:
            self.encoder.compress("a text span")
        self.assertEqual(text_span.exception.code_name, "FAILED_PRECONDITION")
        self.assertIn("spans[0].text", text_span.exception.message)
        with self.assertRaises(IcaeError) as text_part:
            self.decoder.generate(context=[[5, 6], "text"], prompt=[7], template="raw")
        self.assertIn("context[1].text", text_part.exception.message)

        with self.assertRaises(TypeError):
            self.encoder.compress([1, 2, 3])  # one id list must be wrapped: [[1, 2, 3]]

    def test_round_robin_and_failover(self) -> None:
        replicas = (self.encoder_a, self.encoder_b)

        def compress_counts(processes=replicas):
            return [p.counter("icae_encoder_requests_total", method="Compress", code="OK")
                    for p in processes]

        with EncoderClient([self.encoder_a.address, self.encoder_b.address],
                           timeout=CALL_TIMEOUT) as both:
            self.assertTrue(both.target.startswith("ipv4:127.0.0.1:"))
            # Warm-up: round_robin only picks connected replicas; wait until both have served.
            start = compress_counts()
            for i in range(50):
                both.compress([[1, 2, 3 + i]], bypass_cache=True)
                if all(a > b for a, b in zip(compress_counts(), start)):
                    break
            before = compress_counts()
            self.assertTrue(all(a > b for a, b in zip(before, start)), f"{start} -> {before}")
            calls = 20
            for i in range(calls):
                both.compress([[1, 3 + i, 4, 5]], bypass_cache=True)
            after = compress_counts()
            served = [a - b for a, b in zip(after, before)]
            self.assertEqual(sum(served), calls)
            self.assertGreaterEqual(min(served), calls // 4, f"unbalanced: {served}")

            # One replica dies (no drain): every call still succeeds, retried on the other when
            # it was sent to the dead one.
            self.encoder_b.kill()
            for i in range(6):
                both.compress([[1, 3 + i, 6]], bypass_cache=True)
            self.assertEqual(compress_counts([self.encoder_a])[0] - after[0], 6)

    def test_rag_example(self) -> None:
        docs = []
        for n, name in enumerate(("context_ids", "context40_ids")):
            path = Path(self.tmp.name) / f"doc{n}.txt"
            path.write_text(" ".join(str(i) for i in self.ids(name)))
            docs.append(str(path))
        run = subprocess.run(
            [sys.executable, str(REPO / "clients" / "python" / "examples" / "rag.py"),
             "--encoder", self.encoder_a.address, "--decoder", self.decoder_proc.address,
             "--token", TOKEN, "--token-ids", "--template", "icae-v1", "--max-new-tokens", "4",
             "--question", "5 6 7", "--question", "8 9", *docs],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertIn("56 tokens -> 16 slots (3.50x)", run.stdout)
        self.assertEqual(run.stdout.count("Q:"), 2, run.stdout)


def main() -> int:
    missing = [str(b) for b in (ENCODER_BIN, DECODER_BIN) if not os.access(b, os.X_OK)]
    if missing:
        print(f"FAIL: missing service binaries (build them first): {', '.join(missing)}",
              file=sys.stderr)
        return 1
    program = unittest.main(exit=False, verbosity=2 if "-v" in sys.argv else 1)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
