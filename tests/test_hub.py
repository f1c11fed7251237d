"""Hub reads through the real huggingface_hub client against a local Hub-like server."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import safetensors

from conftest import DATA
from hubserver import HubServer, Repo, repo_from_folder
from test_gguf_reader import write_gguf
from vramcalc.sources import open_model
from vramcalc.sources.hf_config import read_config_file
from vramcalc.sources.hub import HubError
from vramcalc.sources.safetensors_header import read_file

MIB = 2**20


def _shard(src, dest_dir):
    """Split a real checkpoint into two shards with the real safetensors serializer."""
    from safetensors.numpy import TensorSpec

    raw = src.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    names = sorted(header)
    keep, weight_map = [], {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        fname = f"model-{i + 1:05d}-of-00002.safetensors"
        specs = {}
        for name in part:
            e = header[name]
            b, end = e["data_offsets"]
            buf = np.frombuffer(raw, np.uint8, count=end - b, offset=8 + n + b).copy()
            keep.append(buf)
            specs[name] = TensorSpec(dtype={"BF16": "bfloat16"}[e["dtype"]], shape=tuple(e["shape"]),
                                     data_ptr=buf.ctypes.data, data_len=buf.nbytes)
            weight_map[name] = fname
        safetensors.serialize_file(specs, str(dest_dir / fname))
    (dest_dir / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    server = HubServer()
    server.repos["acme/tiny-llama"] = repo_from_folder(DATA / "checkpoints" / "llama")
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_bytes((DATA / "checkpoints" / "qwen3_moe" / "config.json").read_bytes())
    _shard(DATA / "checkpoints" / "qwen3_moe" / "model.safetensors", sharded)
    server.repos["acme/tiny-moe"] = repo_from_folder(sharded)
    server.repos["acme/private"] = repo_from_folder(DATA / "checkpoints" / "llama", token="s3cret")
    server.repos["acme/gated"] = repo_from_folder(DATA / "checkpoints" / "llama", gated=True)
    url = server.start()
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.stop()


def test_single_file_repo_reads_config_and_header_only(hub):
    src = open_model("acme/tiny-llama")
    local = read_file(DATA / "checkpoints" / "llama" / "model.safetensors")
    assert src.weight_bytes == local.data_bytes
    assert src.spec == read_config_file(DATA / "checkpoints" / "llama").model_copy(
        update={"id": "acme/tiny-llama", "source": "hub:acme/tiny-llama@main"})
    # no tensor data: at most the first 100 KB range of the weights file was sent
    assert hub.sent("model.safetensors") <= min(100_001, local.header_bytes + 100_001)
    assert hub.sent("model.safetensors") < (DATA / "checkpoints" / "llama" / "model.safetensors").stat().st_size


def test_sharded_repo_sums_every_shard(hub):
    src = open_model("acme/tiny-moe")
    assert src.weight_bytes == 363_904  # the qwen3_moe checkpoint's tensor bytes, now over two shards
    assert src.weight_bytes_by_dtype == {"BF16": 363_904}


def test_revision_is_passed_through(hub):
    assert open_model("acme/tiny-llama", revision="0123456789abcdef0123456789abcdef01234567").weight_bytes
    with pytest.raises(HubError, match="revision"):
        open_model("acme/tiny-llama", revision="nope")


def test_private_repo_needs_the_token(hub, monkeypatch):
    with pytest.raises(HubError, match="not found"):
        open_model("acme/private")
    monkeypatch.setenv("HF_TOKEN", "s3cret")
    assert open_model("acme/private").weight_bytes


def test_gated_repo_says_so(hub):
    with pytest.raises(HubError, match="gated"):
        open_model("acme/gated")


def test_unknown_repo(hub):
    with pytest.raises(HubError, match="not found"):
        open_model("acme/does-not-exist")


def test_offline_uses_the_cache_and_says_weights_are_estimated(hub, monkeypatch):
    open_model("acme/tiny-llama")  # fills the cache
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = open_model("acme/tiny-llama")
    assert src.weight_bytes is None and src.spec.num_layers == 4
    with pytest.raises(HubError, match="cache"):
        open_model("acme/never-fetched")


def test_offline_set_then_cleared_in_one_process_follows_the_variable(hub, monkeypatch):
    """huggingface_hub reads HF_HUB_OFFLINE once at import; a notebook that sets it and clears it again is online."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="cache"):
        open_model("acme/tiny-llama")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert open_model("acme/tiny-llama").weight_bytes


def test_remote_gguf_reads_header_plus_at_most_one_mib(hub, tmp_path):
    spec = read_config_file(DATA / "checkpoints" / "llama")
    for vocab, name in ((256, "small.gguf"), (150_000, "bigvocab.gguf")):
        path = tmp_path / name
        big = spec.model_copy(update={"vocab_size": vocab})
        write_gguf(big, "Q8_0", path, "llama")
        hub.repos["acme/gguf"] = hub.repos.get("acme/gguf") or Repo(files={})
        hub.repos["acme/gguf"].files[name] = path.read_bytes()
        src = open_model(f"acme/gguf/{name}")
        header_bytes = open_model(str(path)).header_bytes_read
        assert hub.sent(name) <= header_bytes + MIB, (name, header_bytes, hub.sent(name))
        assert src.weight_bytes == open_model(str(path)).weight_bytes
        assert src.header_bytes_read == hub.sent(name)


def test_server_ignoring_range_is_not_streamed(hub, tmp_path):
    spec = read_config_file(DATA / "checkpoints" / "llama").model_copy(update={"vocab_size": 150_000})
    path = tmp_path / "m.gguf"
    write_gguf(spec, "Q8_0", path, "llama")
    hub.repos["acme/bad-range"] = Repo(files={"m.gguf": path.read_bytes() + bytes(8 * MIB)}, ignore_range=True)
    with pytest.raises(HubError, match="ignores Range"):
        open_model("acme/bad-range/m.gguf")
    assert hub.sent("m.gguf") < path.stat().st_size + 8 * MIB


def test_cli_end_to_end_with_hf_endpoint(hub, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": os.environ["HF_ENDPOINT"], "HF_HOME": str(tmp_path / "home")}
    p = subprocess.run([sys.executable, "-m", "vramcalc", "check", "acme/tiny-llama", "--gpu", "4090", "--ctx", "64",
                        "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["weights_bytes"] == 312_448
    p = subprocess.run([sys.executable, "-m", "vramcalc", "check", "acme/gated", "--gpu", "4090"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2 and "gated" in p.stderr and len(p.stderr.strip().splitlines()) == 1


# --- network faults (issue 9): each ends in one clear HubError line or a bounded retry, never a
# traceback, and none downloads more than it asked for -------------------------------------------

def _gguf_repo(hub, tmp_path, name="m.gguf", **kw):
    spec = read_config_file(DATA / "checkpoints" / "llama").model_copy(update={"vocab_size": 150_000})
    path = tmp_path / name
    write_gguf(spec, "Q8_0", path, "llama")
    hub.repos["acme/faulty"] = Repo(files={name: path.read_bytes()}, **kw)
    return path


def test_stalled_server_times_out_with_a_clear_line(hub, tmp_path, monkeypatch):
    import time

    import vramcalc.sources.hub as hubmod

    monkeypatch.setattr(hubmod, "TIMEOUT_S", 0.5)
    _gguf_repo(hub, tmp_path, stall={"m.gguf": 3.0})
    t = time.perf_counter()
    with pytest.raises(HubError, match=r"no answer within 0.5 s"):
        open_model("acme/faulty/m.gguf")
    assert time.perf_counter() - t < 2.5  # not retried: one timeout is the whole wait


def test_connection_reset_is_retried_once(hub, tmp_path):
    path = _gguf_repo(hub, tmp_path, resets={"m.gguf": 1})
    src = open_model("acme/faulty/m.gguf")  # the second try succeeds
    assert src.weight_bytes == open_model(str(path)).weight_bytes
    assert [e["status"] for e in hub.log if e.get("file") == "m.gguf"][0] == "reset"


def test_connection_reset_every_time_gives_up_after_the_retry(hub, tmp_path):
    _gguf_repo(hub, tmp_path, resets={"m.gguf": 99})
    with pytest.raises(HubError, match="the connection failed 2 times"):
        open_model("acme/faulty/m.gguf")
    assert sum(1 for e in hub.log if e.get("file") == "m.gguf") == 2


def test_body_cut_short_of_its_length_is_an_error_not_a_short_header(hub, tmp_path):
    _gguf_repo(hub, tmp_path, truncate={"m.gguf"})
    with pytest.raises(HubError, match="the connection failed"):
        open_model("acme/faulty/m.gguf")


def test_short_range_answers_are_continued(hub, tmp_path):
    """A server (or proxy) that answers each range with at most 64 KiB: the reader asks for the rest."""
    path = _gguf_repo(hub, tmp_path, range_cap=65536)
    src = open_model("acme/faulty/m.gguf")
    assert src.weight_bytes == open_model(str(path)).weight_bytes
    local = open_model(str(path)).header_bytes_read
    assert hub.sent("m.gguf") <= local + MIB  # still only the header and the read-ahead
    sharded = hub.repos["acme/tiny-moe"]
    sharded.range_cap = 4096  # safetensors headers through 4 KiB answers
    assert open_model("acme/tiny-moe").weight_bytes == hub_weight_bytes_of_local_moe()


def hub_weight_bytes_of_local_moe():
    return read_file(DATA / "checkpoints" / "qwen3_moe" / "model.safetensors").data_bytes


def test_range_past_the_end_416_ends_in_a_clear_error(hub, tmp_path):
    """A safetensors header length that points past the end of the file: the second range gets a 416."""
    raw = (DATA / "checkpoints" / "llama" / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    lying = (len(raw) + 50_000).to_bytes(8, "little") + raw[8:8 + n]  # header claims more than the file holds
    hub.repos["acme/lying"] = Repo(files={"config.json": (DATA / "checkpoints" / "llama" / "config.json").read_bytes(),
                                          "model.safetensors": lying})
    with pytest.raises(Exception, match="header cut short|not valid|JSON"):
        open_model("acme/lying")
    assert 416 in [e["status"] for e in hub.log if e.get("file") == "model.safetensors"]


def test_redirect_to_a_cdn_is_followed_without_the_token(hub, tmp_path):
    cdn = HubServer()
    spec = read_config_file(DATA / "checkpoints" / "llama").model_copy(update={"vocab_size": 150_000})
    path = tmp_path / "m.gguf"
    write_gguf(spec, "Q8_0", path, "llama")
    cdn.repos["cdn/files"] = Repo(files={"m.gguf": path.read_bytes()})
    cdn_url = cdn.start()
    try:
        hub.repos["acme/private-gguf"] = Repo(files={"m.gguf": b""}, token="s3cret",
                                              redirect={"m.gguf": f"{cdn_url}/cdn/files/resolve/main"})
        src = open_model("acme/private-gguf/m.gguf", token="s3cret")
        assert src.weight_bytes == open_model(str(path)).weight_bytes
        served = [e for e in cdn.log if e.get("file") == "m.gguf"]
        assert served and not any(e["auth"] for e in served)  # the token stays with the Hub's host
        assert cdn.sent("m.gguf") <= open_model(str(path)).header_bytes_read + MIB
    finally:
        cdn.stop()


def test_redirect_loop_is_cut(hub, tmp_path):
    url = os.environ["HF_ENDPOINT"]
    hub.repos["acme/loop"] = Repo(files={"m.gguf": b"x"}, redirect={"m.gguf": f"{url}/acme/loop/resolve/main"})
    with pytest.raises(HubError, match="too many redirects"):
        open_model("acme/loop/m.gguf")


def test_no_network_is_one_clear_line(hub, monkeypatch):
    """huggingface_hub retries a refused connection 5 times with backoff (1+2+4+8+8 s, its
    http_backoff): a bounded retry. The test skips the waits, not the retries."""
    import socket
    import types

    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http, "time", types.SimpleNamespace(**{**vars(hf_http.time), "sleep": lambda s: None}))

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError) as e:
        open_model("acme/tiny-llama")
    assert "cannot be reached" in str(e.value) and "\n" not in str(e.value)


def test_oversized_config_is_refused_before_download(hub):
    hub.repos["acme/huge-config"] = Repo(files={"config.json": b" " * (17 * MIB)})
    with pytest.raises(HubError, match="larger than any real model file; not downloaded"):
        open_model("acme/huge-config")
    assert hub.sent("config.json") == 0


def test_slow_reads_show_progress_on_a_terminal_only(hub, tmp_path, monkeypatch):
    import io

    import vramcalc.sources.hub as hubmod

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    _gguf_repo(hub, tmp_path, stall={"m.gguf": 0.3})
    monkeypatch.setattr(hubmod, "PROGRESS_AFTER_S", 0.2)
    term = Terminal()
    monkeypatch.setattr(hubmod.Progress, "stream", term)
    open_model("acme/faulty/m.gguf")
    shown = term.getvalue()
    assert "\rvramcalc: reading acme/faulty/m.gguf header: " in shown and "MiB" in shown and shown.endswith("\n")
    pipe = io.StringIO()  # not a terminal: nothing, however slow
    monkeypatch.setattr(hubmod.Progress, "stream", pipe)
    open_model("acme/faulty/m.gguf")
    assert pipe.getvalue() == ""


def test_cli_without_network_is_one_line_and_exit_2(hub, monkeypatch, capsys):
    import socket
    import types

    import huggingface_hub.utils._http as hf_http

    from vramcalc.cli import main

    monkeypatch.setattr(hf_http, "time", types.SimpleNamespace(**{**vars(hf_http.time), "sleep": lambda s: None}))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert main(["check", "acme/tiny-llama", "--gpu", "4090"]) == 2
    err = capsys.readouterr().err
    assert "cannot be reached" in err and len(err.strip().splitlines()) == 1


HF_QUANT = {"producer": {"name": "modelopt", "version": "0.33.0"},
            "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
                             "exclude_modules": ["lm_head"]}}  # nvidia/Qwen3-32B-NVFP4's, as bundled


def test_modelopt_export_takes_hf_quant_config_json(hub, tmp_path):
    """vLLM reads hf_quant_config.json when config.json has no quantization_config
    (weight_utils.get_quant_config); `--kv-cache-dtype auto` then takes its FP8 KV cache."""
    from vramcalc.quant import scheme_from_config
    from vramcalc.vllm.kv import resolve_kv_dtype

    cfg = (DATA / "checkpoints" / "llama" / "config.json").read_bytes()
    hub.repos["acme/nvfp4"] = Repo(files={"config.json": cfg, "hf_quant_config.json": json.dumps(HF_QUANT).encode()})
    remote = open_model("acme/nvfp4").spec
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "config.json").write_bytes(cfg)
    (tmp_path / "local" / "hf_quant_config.json").write_text(json.dumps(HF_QUANT))
    local = read_config_file(tmp_path / "local")
    for spec in (remote, local):
        assert spec.quantization_config["quant_method"] == "modelopt"
        scheme = scheme_from_config(spec.quantization_config, spec)
        assert (scheme.method, scheme.group_size, scheme.ignore) == ("modelopt_nvfp4", 16, ("lm_head",))
        assert resolve_kv_dtype(spec, "auto")[0] == "fp8"
        assert resolve_kv_dtype(spec, "bfloat16")[0] == "bfloat16"
    plain = open_model("acme/tiny-llama").spec  # no hf_quant_config.json: a 404 the reader expects
    assert plain.quantization_config is None and resolve_kv_dtype(plain, "auto")[0] == plain.dtype
