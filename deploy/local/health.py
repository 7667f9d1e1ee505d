#!/usr/bin/python3
"""grpc.health.v1 check of an icae service, for scripts (deploy/local/run.sh, tests).

  health.py 127.0.0.1:50051 [--service icae.v1.Encoder] [--wait 120]

Prints the serving status and exits 0 when it is SERVING, 1 otherwise; with --wait, polls until
SERVING or the time is up. Uses Debian's python3-grpcio with the two one-field messages encoded by
hand, so no generated code or grpcio-health-checking package is needed.
"""

import argparse
import sys
import time

import grpc

_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def encode_request(service):
    """HealthCheckRequest { string service = 1; }"""
    data = service.encode()
    if len(data) > 127:
        raise ValueError("service name too long")
    return b"\x0a" + bytes([len(data)]) + data if data else b""


def decode_response(data):
    """HealthCheckResponse { ServingStatus status = 1; } -> the status number."""
    if not data:
        return 0
    if data[0] != 0x08:
        raise ValueError(f"unexpected health response {data!r}")
    return data[1]


def check(address, service="", timeout=2.0):
    """Returns the status name, or the gRPC error code name when the call fails."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            return _STATUS.get(decode_response(call(encode_request(service), timeout=timeout)),
                               "UNKNOWN")
        except grpc.RpcError as err:
            return err.code().name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="HOST:PORT of the gRPC port")
    parser.add_argument("--service", default="", help='health service name ("" = the server)')
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for SERVING")
    args = parser.parse_args()
    deadline = time.monotonic() + args.wait
    while True:
        status = check(args.address, args.service)
        if status == "SERVING" or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    print(f"{args.address} {args.service or '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
