#!/usr/bin/env python3
"""Writes the seed corpus for safetensors_fuzz into fuzz/corpus/safetensors/.

Seeds are small valid files in the official layout (so the fuzzer starts from inputs
that pass every check), plus the first 4 KB of a golden shard (a real header, cut).
Run from the repository root; the output is checked in.
"""
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "fuzz", "corpus", "safetensors")
SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "I32": 4, "I64": 8, "F16": 2, "BF16": 2,
         "F32": 4, "F64": 8, "F8_E4M3": 1, "F8_E8M0": 1}


def safetensors(tensors):
    """tensors: list of (name, dtype, shape). Data bytes are a simple counter pattern."""
    header = {"__metadata__": {"format": "pt"}}
    data = bytearray()
    for name, dtype, shape in tensors:
        n = SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes((len(data) + i) % 251 for i in range(n))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "empty_header": safetensors([]),
        "all_dtypes": safetensors([(f"t.{d}", d, [2, 3]) for d in SIZES]),
        "scalar_and_empty": safetensors([("s", "F32", []), ("e", "BF16", [0, 4])]),
        "fp8_weight": safetensors([("layers.0.attn.wq_a.weight", "F8_E4M3", [3, 130]),
                                   ("layers.0.attn.wq_a.scale", "F8_E8M0", [1, 2])]),
        "fp4_expert": safetensors([("layers.0.ffn.experts.0.w1.weight", "I8", [4, 16]),
                                   ("layers.0.ffn.experts.0.w1.scale", "F8_E8M0", [4, 1]),
                                   ("layers.0.ffn.gate.tid2eid", "I64", [5, 2])]),
    }
    shard = os.path.join(ROOT, "tests", "data", "golden", "tiny_shrunk_p64", "model-00002-of-00002.safetensors")
    with open(shard, "rb") as f:
        seeds["golden_shard_first_4k"] = f.read(4096)
    for name, blob in seeds.items():
        with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
