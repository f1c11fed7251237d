"""--override-kv against a real llama.cpp (the CPU backend of the build vendored by llama-cpp-python 0.3.35, commit
4df29be): tools/record_llamacpp_kv_overrides.py loaded the GGUF models of tests/llamacpp_models.py with KV overrides
(llama_model_params.kv_overrides, what common/common.cpp passes for --override-kv) and recorded the hparams it
printed, its buffers, and its refusals (tests/data/llamacpp_kv_override_runs.json). Here the same files are written
again, the overrides applied by vramcalc (sources/gguf_overrides.py), and the buffers predicted compared."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

from conftest import DATA
from llamacpp_models import write_gguf
from vramcalc.errors import InputError
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.sources import gguf_overrides, open_model

pytestmark = pytest.mark.xdist_group("test_llamacpp_kv_overrides")

MIB = 2**20
RECORDED = json.loads((DATA / "llamacpp_kv_override_runs.json").read_text())
RUNS = [r for r in RECORDED["runs"] if "error" not in r]
REFUSED = [r for r in RECORDED["runs"] if "error" in r]


@lru_cache(maxsize=None)
def _source(name: str, tmp: str):
    return open_model(str(write_gguf(name, Path(tmp) / f"{name}.gguf")))


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("kv_override_models"))


def _opts(s: dict) -> LlamaOptions:  # the recorder's context: llama-cpp-python keeps the library defaults
    return LlamaOptions(n_ctx=s.get("n_ctx") or None, n_parallel=s.get("n_seq_max", 1),
                        kv_unified=s.get("kv_unified", False), n_batch=s.get("n_batch", 2048),
                        n_ubatch=s.get("n_ubatch", 512), n_outputs_max=s.get("n_batch", 2048))


def _id(r):
    return f"{r['model']}-{'+'.join(r['overrides']) or 'none'}-" + "-".join(f"{k}={v}" for k, v in r["settings"].items())


@pytest.mark.parametrize("run", RUNS, ids=[_id(r) for r in RUNS])
def test_overridden_hparams_and_buffers_match_a_real_llama_cpp(run, gguf_dir):
    src, notes = gguf_overrides.apply(_source(run["model"], gguf_dir), tuple(run["overrides"]))
    spec, hp = src.spec, run["hparams"]
    assert spec.max_position_embeddings == int(hp["n_ctx_train"])
    moe = [layer.mlp for layer in spec.layers if layer.mlp.kind == "moe"]
    assert (moe[0].experts_per_token if moe else 0) == int(hp["n_expert_used"])
    windows = {layer.attention.window for layer in spec.layers if layer.attention and layer.attention.window}
    assert windows == ({int(hp["n_swa"])} if int(hp["n_swa"]) else set())
    r = check_llamacpp(spec, None, _opts(run["settings"]), src.llama_tensors(), solve=False)
    host = r.devices[-1]
    printed: dict[str, float] = {}
    for b in run["buffers"]:
        if b["buffer"] != "CPU_REPACK":
            printed[b["kind"]] = printed.get(b["kind"], 0.0) + b["mib"]
    assert r.n_ctx == run["n_ctx"]
    assert r.model_size_bytes == run["model_size_bytes"]
    assert round(host.kv_buffer_bytes / MIB, 2) == pytest.approx(printed.get("KV", 0.0), abs=0.011 * len(run["kv_caches"]))
    for cache in run["kv_caches"]:
        assert any(c.cells == cache["cells"] and c.layers == cache["layers"] for c in r.caches)
    assert round(host.compute_buffer_bytes / MIB, 2) == pytest.approx(printed["compute"], abs=0.011)
    # what llama.cpp logged of each override: applied ("Using metadata override") or not ("Bad metadata override type")
    codes = [n.code for n in notes]
    if any("Bad metadata override" in line for line in run["override_log"]):
        assert "llamacpp.kv_override.bad_type" in codes


@pytest.mark.parametrize("run", REFUSED, ids=[_id(r) for r in REFUSED])
def test_overrides_llama_cpp_refuses_are_refused(run, gguf_dir):
    """An override that changes tensor shapes (check_tensor_dims, done_getting_tensors, invalid n_rot) or fails an
    assert (n_expert_used <= n_expert) stops llama.cpp's load; vramcalc refuses it."""
    with pytest.raises(InputError, match="llama.cpp (fails to load|aborts loading)"):
        gguf_overrides.apply(_source(run["model"], gguf_dir), tuple(run["overrides"]))


def test_the_recording_covers_each_kind():
    said = {o.split("=")[0].split(".", 1)[1] for r in RUNS for o in r["overrides"]}
    assert {"expert_used_count", "context_length", "attention.sliding_window"} <= said
    assert any("wrong shape" in " ".join(r["error"]) for r in REFUSED)
    assert any("wrong number of tensors" in " ".join(r["error"]) for r in REFUSED)
    assert any("GGML_ASSERT" in " ".join(r["error"]) for r in REFUSED)


def test_first_item_of_a_key_wins_and_items_parse_as_llama_cpp_parses_them():
    # src/llama-model-loader.cpp: kv_overrides.insert keeps the first (the recording: 6, then 1 -> n_expert_used 6)
    assert [o.value for o in gguf_overrides.parse(["a.b=int:6,a.b=int:1"])] == [6]
    # common/common.cpp string_parse_kv_override: std::atol; bool only true|false; an unknown type refused
    assert gguf_overrides.parse_item("a.b=int:12abc").value == 12
    assert gguf_overrides.parse_item("a.b=int:x").value == 0
    for bad in ("a.b=bool:yes", "a.b=long:3", "a.b", "a.b=str:" + "x" * 128):
        with pytest.raises(InputError, match="Invalid type for KV override"):
            gguf_overrides.parse_item(bad)


def test_a_pasted_command_reads_its_overrides(gguf_dir):
    """Through `check --`: the modelled keys go to the check; tokenizer keys alone are no effect; other keys
    warn as not modelled; the figures follow the override (the recording's qwen3moe at 2 and 6 experts)."""
    from vramcalc.pasted_command import check_command, read_command

    path = write_gguf("qwen3moe", Path(gguf_dir) / "cmd-qwen3moe.gguf")
    _, r = read_command(f"llama-server -m {path} --override-kv qwen3moe.expert_used_count=int:6,"
                        "tokenizer.ggml.add_bos_token=bool:false")
    assert r.options["kv_overrides"] == ("qwen3moe.expert_used_count=int:6",) and not r.warnings
    _, r = read_command(f"llama-server -m {path} --override-kv tokenizer.ggml.add_bos_token=bool:false")
    assert r.no_effect == ["--override-kv tokenizer.ggml.add_bos_token=bool:false"] and "kv_overrides" not in r.options
    with pytest.raises(InputError, match='error while handling argument "--override-kv": error: Invalid type'):
        read_command(f"llama-server -m {path} --override-kv qwen3moe.expert_used_count=4")
    base = check_command(f"llama-server -m {path} -c 4096 -np 1", system="cpu")
    six = check_command(f"llama-server -m {path} -c 4096 -np 1 --override-kv qwen3moe.expert_used_count=int:6",
                        system="cpu")
    assert six.result.devices[-1].compute_buffer_bytes > base.result.devices[-1].compute_buffer_bytes
    assert "llamacpp.kv_override.applied" in [w.code for w in six.result.warnings]
    assert "--override-kv qwen3moe.expert_used_count=int:6" in (six.result.command or "")
    assert "--override-kv qwen3moe.expert_used_count=int:6" in six.vramcalc_command
    # the library call the command stands for gives the same figures
    import vramcalc

    lib = vramcalc.check(str(path), "cpu", engine="llamacpp", n_ctx=4096, n_parallel=1, kv_unified=False,
                         kv_overrides="qwen3moe.expert_used_count=int:6")
    assert lib.devices[-1].compute_buffer_bytes == six.result.devices[-1].compute_buffer_bytes
