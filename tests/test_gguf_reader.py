"""GGUF headers written by the real writer (gguf.GGUFWriter), read back header-only."""

import struct

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFWriter

from conftest import DATA
from vramcalc.ggml import row_bytes
from vramcalc.gguf_mix import plan_gguf, predict_gguf
from vramcalc.kv import kv_bytes_per_token
from vramcalc.params import count_params
from vramcalc.sources.gguf_header import GGUFError, read_local
from vramcalc.sources.gguf_spec import spec_from_gguf
from vramcalc.sources.hf_config import read_config_file


def write_gguf(spec, ftype, path, arch, split_max_tensors=0):
    """A GGUF of the model as llama-quantize would lay it out, through gguf.GGUFWriter."""
    w = GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    a = spec.layers[0].attention
    w.add_block_count(spec.num_layers)
    w.add_context_length(spec.max_position_embeddings or 512)
    w.add_embedding_length(spec.hidden_size)
    w.add_head_count(a.num_heads)
    w.add_head_count_kv(a.num_kv_heads)
    w.add_key_length(a.head_dim_k)
    w.add_value_length(a.head_dim_v)
    m = spec.layers[-1].mlp
    if m.kind == "moe":
        w.add_expert_count(m.num_experts)
        w.add_expert_used_count(m.experts_per_token)
        w.add_expert_feed_forward_length(m.expert_intermediate_size)
        w.add_feed_forward_length(spec.layers[0].mlp.intermediate_size or m.expert_intermediate_size)
    else:
        w.add_feed_forward_length(m.intermediate_size)
    if any(layer.attention.window for layer in spec.layers):
        w.add_sliding_window(next(layer.attention.window for layer in spec.layers if layer.attention.window))
    w.add_token_list([f"t{i}" for i in range(spec.vocab_size)])
    for t, ggml in plan_gguf(spec, ftype):
        shape = tuple(reversed(t.ne))
        if ggml in ("F32", "F16"):
            w.add_tensor(t.name, np.zeros(shape, np.float32 if ggml == "F32" else np.float16))
        else:
            raw = np.zeros(shape[:-1] + (row_bytes(ggml, t.ne[0]),), np.uint8)
            w.add_tensor(t.name, raw, raw_dtype=GGMLQuantizationType[ggml])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


CASES = [("llama", "llama", "Q8_0"), ("qwen3_moe", "qwen3moe", "Q8_0"), ("gpt_oss", "gpt-oss", "MXFP4_MOE"),
         ("gemma3_text", "gemma3", "Q4_0"), ("qwen2", "qwen2", "F16")]


@pytest.mark.parametrize("name,arch,ftype", CASES)
def test_gguf_bytes_and_spec_round_trip(tmp_path, name, arch, ftype):
    spec = read_config_file(DATA / "checkpoints" / name)
    path = tmp_path / "m.gguf"
    write_gguf(spec, ftype, path, arch)
    header = read_local(path)
    # exact weight bytes from the header, equal to the prediction without the file
    assert header.data_bytes == predict_gguf(spec, ftype, unquantized="F16").total_bytes
    assert header.header_bytes < path.stat().st_size
    back = spec_from_gguf(header, model_id="x", source="gguf", where=str(path))
    assert kv_bytes_per_token(back, "float16") == kv_bytes_per_token(spec, "float16")
    assert [layer.attention.kind for layer in back.layers] == [layer.attention.kind for layer in spec.layers]
    assert count_params(back).total == count_params(spec).total


def test_split_gguf_parts_are_merged(tmp_path):
    spec = read_config_file(DATA / "checkpoints" / "llama")
    write_gguf(spec, "Q8_0", tmp_path / "m.gguf", "llama", split_max_tensors=10)
    parts = sorted(tmp_path.glob("m-*-of-*.gguf"))
    assert len(parts) > 2
    header = read_local(parts[0])
    assert header.data_bytes == predict_gguf(spec, "Q8_0").total_bytes
    parts[-1].unlink()
    with pytest.raises(GGUFError, match="missing"):
        read_local(parts[0])


def _bad(tmp_path, payload: bytes):
    p = tmp_path / "bad.gguf"
    p.write_bytes(payload)
    return p


GOOD_START = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)


@pytest.mark.parametrize("payload,needle", [
    (b"GGML" + b"\0" * 20, "bad magic"),
    (b"GGUF" + struct.pack("<IQQ", 7, 0, 0), "version 7"),
    (b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0), "claims"),
    (GOOD_START + struct.pack("<Q", 2**50), "claims a string"),
    (GOOD_START + struct.pack("<Q", 3) + b"abc" + struct.pack("<IIQ", 9, 4, 2**40), "array of"),
    (GOOD_START + struct.pack("<Q", 3) + b"abc" + struct.pack("<I", 99), "unknown value type"),
    (GOOD_START + struct.pack("<Q", 3) + b"ab", "ends inside its header"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"w" + struct.pack("<I", 9), "dimensions"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"w" + struct.pack("<IQIQ", 1, 32, 77, 0),
     "unknown ggml type"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 1) + b"w" + struct.pack("<IQIQ", 1, 2**40, 0, 0),
     "past the end"),
])
def test_hostile_headers_give_one_clear_error(tmp_path, payload, needle):
    path = _bad(tmp_path, payload)
    with pytest.raises(GGUFError) as e:
        read_local(path)
    assert needle in str(e.value) and str(path) in str(e.value)


def test_claimed_huge_array_is_not_fetched():
    # a scalar array of 2^26 u64 (512 MiB) inside the header: the reader stops at its header cap
    # instead of fetching it, which matters for remote reads
    payload = GOOD_START + struct.pack("<Q", 3) + b"abc" + struct.pack("<IIQ", 9, 10, 2**26)
    fetched = []

    def fetch(off, n):
        fetched.append(n)
        return payload[off:off + n] + bytes(min(n, 2**20))  # a server that keeps sending zeros

    from vramcalc.sources.gguf_header import read_header
    with pytest.raises(GGUFError, match="header larger than"):
        read_header(fetch, "big.gguf")
    assert sum(fetched) <= 2**20 + len(payload) + 2**20
