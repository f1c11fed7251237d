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
