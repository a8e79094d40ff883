#!/usr/bin/python3
"""A stand-in for ntopng's ZMQ collector, used by packetless's end-to-end tests.

It subscribes like ntopng (SUB socket, ntopng's topics), decodes each two-frame
message with its own implementation of the header layouts and of nDPI's TLV
format (independent of packetless's Rust decoder), and prints one JSON object per
message on stdout:

  {"topic": "flow", "hdr_len": 28, "version": 3, "msg_id": 7, "source_id": 42,
   "tlv": true, "compressed": false, "records": [{"8": "127.0.0.1", ...}]}

Event and listening-ports payloads are JSON and are printed under "json".
Runs with Debian's python3 and python3-zmq (pyzmq on the system libzmq).
"""
import argparse
import json
import struct
import sys
import zlib

import zmq

TOPICS = [b"flow", b"event", b"counter", b"template", b"option", b"hello",
          b"listening-ports", b"snmp-ifaces", b"message"]


def decode_header(h):
    if len(h) == 28:
        topic = h[:16].split(b"\0")[0].decode()
        version = h[16]
        (msg_id,) = struct.unpack(">I", h[20:24])
        (source_id,) = struct.unpack("<I", h[24:28])
        return dict(topic=topic, hdr_len=28, version=version, msg_id=msg_id, source_id=source_id,
                    tlv=version == 3, compressed=False)
    if len(h) == 36:
        topic = h[:16].split(b"\0")[0].decode()
        version, flags = h[16], h[17]
        (uncompressed,) = struct.unpack(">I", h[20:24])
        (compressed_size,) = struct.unpack("<I", h[24:28])
        (msg_id,) = struct.unpack(">I", h[28:32])
        (source_id,) = struct.unpack("<I", h[32:36])
        return dict(topic=topic, hdr_len=36, version=version, msg_id=msg_id, source_id=source_id,
                    tlv=bool(flags & 2), compressed=bool(flags & 4), uncompressed_size=uncompressed,
                    compressed_size=compressed_size)
    raise ValueError("header of %d bytes" % len(h))


def decode_tlv(p):
    if p[:2] != b"\x01\x01":
        raise ValueError("TLV payload starts with %r" % p[:2])
    pos, records, record = 2, [], {}
    ints = {2: ">B", 3: ">H", 4: ">I", 5: ">Q", 6: ">b", 7: ">h", 8: ">i", 9: ">q"}

    def take(fmt):
        nonlocal pos
        size = struct.calcsize(fmt)
        (v,) = struct.unpack(fmt, p[pos:pos + size])
        pos += size
        return v

    def string():
        nonlocal pos
        n = take(">H")
        s = p[pos:pos + n].decode()
        pos += n
        return s

    while pos < len(p):
        t = p[pos]
        pos += 1
        if t == 1:
            records.append(record)
            record = {}
            continue
        kt, vt = t >> 4, t & 15
        key = string() if kt == 11 else take(ints[kt])
        if vt in ints:
            value = take(ints[vt])
        elif vt == 10:
            value = take("<f")
        elif vt == 11:
            value = string()
        else:
            raise ValueError("value type %d" % vt)
        record[str(key)] = value
    if record:
        raise ValueError("unterminated record")
    return records


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", help="bind (ntopng collector mode, -i tcp://*:PORTc)")
    ap.add_argument("--connect", help="connect to a probe that binds")
    ap.add_argument("--curve-secret", help="be a CURVE server with this Z85 secret key")
    args = ap.parse_args()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 100000)
    if args.curve_secret:
        sub.curve_server = True
        sub.curve_secretkey = args.curve_secret.encode()
    for topic in TOPICS:
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    if args.bind:
        sub.bind(args.bind)
    else:
        sub.connect(args.connect)
    print("READY %s" % sub.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
    while True:
        header, payload = sub.recv_multipart()[:2]
        out = decode_header(header)
        if out["compressed"]:
            payload = zlib.decompress(payload)
        out["payload_len"] = len(payload)
        if out["topic"] == "flow" and out["tlv"]:
            out["records"] = decode_tlv(payload)
        else:
            out["json"] = json.loads(payload)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
