"""Credentials, local paths and bounds (issue 20), through the local Hub-like server and the real
huggingface_hub client: the token reaches only the Hub endpoint, a local-looking name never reaches
the Hub, and every read is bounded in time, bytes and counts, each limit named in one error line."""

import json
import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from conftest import DATA
from hubserver import HubServer, Repo, repo_from_folder
from test_gguf_reader import write_gguf
from test_hub import hub  # noqa: F401  (the fixture: a local Hub on HF_ENDPOINT)
from vramcalc.cli import main
from vramcalc.errors import VramcalcError
from vramcalc.sources import open_model
from vramcalc.sources.gguf_header import MAX_TENSORS, GGUFError, read_header
from vramcalc.sources.hf_config import read_config_file
from vramcalc.sources.hub import HubError, token_goes_to
from vramcalc.sources.limits import LocalPathError, looks_local, redact
from vramcalc.sources.safetensors_header import MAX_HEADER_ITEMS, SafetensorsError, parse_header, read_folder

MIB = 2**20
LLAMA = DATA / "checkpoints" / "llama"


@pytest.fixture()
def other_host():
    """A second server on another loopback address: another host to the client."""
    server = HubServer(host="127.0.0.2")
    url = server.start()
    yield server, url
    server.stop()


def _gguf_bytes(tmp_path, name="m.gguf"):
    spec = read_config_file(LLAMA).model_copy(update={"vocab_size": 256})
    path = tmp_path / name
    write_gguf(spec, "Q8_0", path, "llama")
    return path


def _one_line(e) -> str:
    text = str(e.value) if hasattr(e, "value") else str(e)
    assert "\n" not in text, text
    return text


# --- the token goes only to the Hub endpoint ------------------------------------------------------

def test_token_rule_is_the_endpoints_origin(hub, monkeypatch):
    base = os.environ["HF_ENDPOINT"]
    assert token_goes_to(f"{base}/acme/x/resolve/main/m.gguf")
    port = base.rsplit(":", 1)[1]
    assert not token_goes_to(f"http://127.0.0.2:{port}/acme/x")  # another host
    assert not token_goes_to(f"http://127.0.0.1:{int(port) + 1}/acme/x")  # another port
    assert not token_goes_to(f"https://127.0.0.1:{port}/acme/x")  # another scheme
    monkeypatch.delenv("HF_ENDPOINT")
    assert token_goes_to("https://huggingface.co/acme/x/resolve/main/m.gguf")
    assert not token_goes_to("https://huggingface.co.evil.example/acme/x")


def test_gguf_url_on_another_host_gets_no_token(hub, other_host, tmp_path, monkeypatch):
    """huggingface_hub.utils imported, as any program using the library has it: still no token."""
    import huggingface_hub.utils  # noqa: F401

    server, url = other_host
    path = _gguf_bytes(tmp_path)
    server.repos["cdn/files"] = Repo(files={"m.gguf": path.read_bytes()})
    monkeypatch.setenv("HF_TOKEN", "s3cret")
    src = open_model(f"{url}/cdn/files/resolve/main/m.gguf")
    assert src.weight_bytes == open_model(str(path)).weight_bytes
    assert server.requests and all(r["authorization"] is None for r in server.requests)
    assert hub.requests == []  # and nothing went to the Hub


def test_cli_reads_a_gguf_url_without_crashing_or_sending_the_token(hub, other_host, tmp_path):
    server, url = other_host
    server.repos["cdn/files"] = Repo(files={"m.gguf": _gguf_bytes(tmp_path).read_bytes()})
    env = {**os.environ, "HF_TOKEN": "s3cret", "HF_HOME": str(tmp_path / "home")}
    p = subprocess.run([sys.executable, "-m", "vramcalc", "check", f"{url}/cdn/files/resolve/main/m.gguf",
                        "--gpu", "4090", "--ctx", "64", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["weights_bytes"] > 0
    assert server.requests and all(r["authorization"] is None for r in server.requests)


def test_redirect_to_another_host_drops_the_token(hub, other_host, tmp_path):
    server, url = other_host
    server.repos["cdn/files"] = Repo(files={"m.gguf": _gguf_bytes(tmp_path).read_bytes()})
    hub.repos["acme/private-gguf"] = Repo(files={"m.gguf": b""}, token="s3cret",
                                          location={"m.gguf": f"{url}/cdn/files/resolve/main/m.gguf"})
    assert open_model("acme/private-gguf/m.gguf", token="s3cret").weight_bytes
    assert any(r["authorization"] == "Bearer s3cret" for r in hub.requests)  # the Hub got it
    assert server.requests and all(r["authorization"] is None for r in server.requests)  # the other host never


def test_redirect_to_file_url_is_one_line(hub):
    hub.repos["acme/file-redirect"] = Repo(files={"m.gguf": b"x"}, location={"m.gguf": "file:///etc/passwd"})
    with pytest.raises(HubError) as e:
        open_model("acme/file-redirect/m.gguf")
    assert "redirected to a file URL; only http and https are followed" in _one_line(e)


def test_redirect_count_is_bounded_and_named(hub):
    url = os.environ["HF_ENDPOINT"]
    hub.repos["acme/loop"] = Repo(files={"m.gguf": b"x"}, location={"m.gguf": f"{url}/acme/loop/resolve/main/m.gguf"})
    with pytest.raises(HubError, match=r"too many redirects \(more than 10\)"):
        open_model("acme/loop/m.gguf")
    assert len([r for r in hub.requests if r["path"].endswith("m.gguf")]) == 11


def test_userinfo_is_stripped_from_errors(hub, capsys):
    base = os.environ["HF_ENDPOINT"].replace("http://", "http://alice:pa55word@")
    with pytest.raises(HubError) as e:
        open_model(f"{base}/acme/nothing/resolve/main/m.gguf")
    text = _one_line(e)
    assert "pa55word" not in text and "alice" not in text and "127.0.0.1" in text
    assert main(["check", f"{base}/acme/nothing/resolve/main/m.gguf", "--gpu", "4090"]) == 2
    err = capsys.readouterr().err
    assert "pa55word" not in err and "alice" not in err and len(err.strip().splitlines()) == 1
    assert redact("see https://u:p@h.example/x and http://tok@h2/y") == "see https://h.example/x and http://h2/y"
    assert redact("https://u:p@ss@h.example/a@b") == "https://h.example/a@b"  # an unescaped @ in the password


# --- a local-looking name never reaches the Hub ------------------------------------------------------

@pytest.mark.parametrize("make,name,needle", [
    ("fifo", "acme/tiny-llama", "a FIFO, not a regular file"),
    ("dangling", "acme/tiny-llama", "symbolic link to a file that does not exist"),
    ("parent", "acme/tiny-llama", "no such file or folder"),
    (None, "./acme/tiny-llama", "no such file or folder"),
    (None, "models/x.gguf", "no such file or folder"),
    (None, "acme/model.safetensors", "no such file or folder"),
    (None, "~/nowhere/acme/tiny-llama", "no such file or folder"),
    ("fifo", "m.gguf", "a FIFO, not a regular file"),
])
def test_local_looking_names_never_reach_the_hub(hub, tmp_path, monkeypatch, make, name, needle):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_TOKEN", "s3cret")
    target = tmp_path / name
    if make:
        target.parent.mkdir(parents=True, exist_ok=True)
    if make == "fifo":
        os.mkfifo(target)
    elif make == "dangling":
        target.symlink_to(tmp_path / "gone")
    assert looks_local(name) or make in ("fifo", "dangling")
    t = time.perf_counter()
    with pytest.raises(LocalPathError) as e:
        open_model(name)
    assert needle in _one_line(e) and time.perf_counter() - t < 1
    assert hub.requests == []  # the server saw no request at all
    assert main(["check", name, "--gpu", "4090"]) == 2


def test_hub_prefix_still_asks_the_hub(hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "acme").mkdir()
    assert open_model("hub:acme/tiny-llama").weight_bytes  # explicit: the local folder does not matter


def _guard_fifo(path):
    """If a reader ever opens the FIFO, a writer opens and closes it after a second so the test ends
    (and fails) instead of hanging."""
    def release():
        time.sleep(1.0)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # nobody is reading: the code under test never opened it
    threading.Thread(target=release, daemon=True).start()


def test_fifo_named_like_a_shard_is_refused_without_opening(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_bytes((LLAMA / "config.json").read_bytes())
    os.mkfifo(folder / "model.safetensors")
    _guard_fifo(folder / "model.safetensors")
    t = time.perf_counter()
    with pytest.raises(SafetensorsError) as e:
        open_model(str(folder))
    assert "model.safetensors: a FIFO, not a regular file" in _one_line(e) and time.perf_counter() - t < 0.9


def test_fifo_part_of_a_split_gguf_and_dangling_link_are_refused(tmp_path):
    spec = read_config_file(LLAMA)
    write_gguf(spec, "Q8_0", tmp_path / "m.gguf", "llama", split_max_tensors=10)
    parts = sorted(tmp_path.glob("m-*-of-*.gguf"))
    parts[-1].unlink()
    os.mkfifo(parts[-1])
    _guard_fifo(parts[-1])
    with pytest.raises(GGUFError, match="a FIFO, not a regular file"):
        open_model(str(parts[0]))
    parts[-1].unlink()
    parts[-1].symlink_to(tmp_path / "gone.gguf")
    with pytest.raises(GGUFError, match="symbolic link to a file that does not exist"):
        open_model(str(parts[0]))


def test_fifo_config_json_is_refused(tmp_path):
    from vramcalc.sources import bounded_json

    os.mkfifo(tmp_path / "config.json")
    _guard_fifo(tmp_path / "config.json")
    with pytest.raises(bounded_json.JSONFileError, match="a FIFO, not a regular file"):
        bounded_json.read(tmp_path / "config.json")


# --- shard sets must be complete -----------------------------------------------------------------

def test_incomplete_shard_set_is_refused_naming_the_missing(tmp_path, capsys):
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "config.json").write_bytes((LLAMA / "config.json").read_bytes())
    (folder / "model-00001-of-00030.safetensors").write_bytes((LLAMA / "model.safetensors").read_bytes())
    with pytest.raises(SafetensorsError) as e:
        read_folder(folder)
    text = _one_line(e)
    assert "incomplete shard set: 1 of 30 shards" in text and "missing model-00002-of-00030.safetensors" in text
    assert "and 24 more" in text
    assert main(["check", str(folder), "--gpu", "4090"]) == 2
    err = capsys.readouterr().err
    assert "model-00002-of-00030.safetensors" in err and len(err.strip().splitlines()) == 1


def test_index_naming_a_missing_shard_is_refused(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "config.json").write_bytes((LLAMA / "config.json").read_bytes())
    (folder / "model-00001-of-00002.safetensors").write_bytes((LLAMA / "model.safetensors").read_bytes())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(SafetensorsError, match="the index names 2 shards, missing model-00002-of-00002"):
        open_model(str(folder))


def test_complete_shard_set_still_reads(tmp_path):
    from test_hub import _shard

    folder = tmp_path / "ok"
    folder.mkdir()
    (folder / "config.json").write_bytes((DATA / "checkpoints" / "qwen3_moe" / "config.json").read_bytes())
    _shard(DATA / "checkpoints" / "qwen3_moe" / "model.safetensors", folder)
    assert open_model(str(folder)).weight_bytes == 363_904
    (folder / "model.safetensors.index.json").unlink()  # no index: the -of-N names are complete
    assert open_model(str(folder)).weight_bytes == 363_904


# --- time: a total deadline per read ---------------------------------------------------------------

def test_slow_loris_is_cut_at_the_deadline(hub, tmp_path, monkeypatch):
    import vramcalc.sources.hub as hubmod

    monkeypatch.setattr(hubmod, "DEADLINE_S", 0.8)
    hub.repos["acme/loris"] = Repo(files={"m.gguf": _gguf_bytes(tmp_path).read_bytes()}, trickle={"m.gguf": 0.3},
                                   trickle_bytes=20)
    t = time.perf_counter()
    with pytest.raises(HubError) as e:
        open_model("acme/loris/m.gguf")
    elapsed = time.perf_counter() - t
    assert "not read within 0.8 s, the limit on one read (set VRAMCALC_HTTP_DEADLINE" in _one_line(e)
    assert elapsed < 1.5, elapsed  # one byte every 0.3 s never resets the clock


# --- bytes: a lying HEAD -------------------------------------------------------------------------

def test_lying_head_does_not_let_a_large_body_through(hub):
    from vramcalc.sources.bounded_json import MAX_JSON_BYTES

    body = b"{" + b" " * (64 * MIB)
    hub.repos["acme/liar"] = Repo(files={"config.json": body}, head_size={"config.json": 1000})
    with pytest.raises(HubError) as e:
        open_model("acme/liar")
    assert f"more than {MAX_JSON_BYTES:,} bytes received (the limit on a JSON file)" in _one_line(e)
    for _ in range(100):  # the server logs what it sent once the client has hung up
        if hub.sent("config.json"):
            break
        time.sleep(0.02)
    assert 0 < hub.sent("config.json") < 40 * MIB  # stopped at the first 10 MB chunk past 16 MiB


# --- counts: GGUF and safetensors headers ----------------------------------------------------------

def _tensor_info(name: bytes) -> bytes:
    return struct.pack("<Q", len(name)) + name + struct.pack("<IQIQ", 1, 1, 0, 0)  # F32 [1] at offset 0


def test_gguf_of_a_million_tiny_tensors_is_refused_before_reading_them():
    fetched = []
    payload = b"GGUF" + struct.pack("<IQQ", 3, 2**20, 0) + _tensor_info(b"t") * 4

    def fetch(off, n):
        fetched.append(n)
        return payload[off:off + n]

    with pytest.raises(GGUFError) as e:
        read_header(fetch, "tiny.gguf")
    assert f"claims 1,048,576 tensors, over the limit of {MAX_TENSORS:,} per file" in _one_line(e)


def _read_measured(payload: bytes):
    """The header read from `payload`, and the peak of the memory its reading allocated."""
    tracemalloc.start()
    try:
        header, _ = read_header(lambda off, k: payload[off:off + k], "measured.gguf")
        return header, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gguf_tensors_cost_bounded_memory():
    """Measured on 4,096 tensors (tracemalloc is slow), the cost per tensor times the limit: a header
    at MAX_TENSORS stays near 100 MB, where 2^20 tensors cost 1.4 GB before the limit."""
    n = 4096
    payload = b"GGUF" + struct.pack("<IQQ", 3, n, 0) + b"".join(_tensor_info(b"t%d" % i) for i in range(n))
    header, peak = _read_measured(payload)
    assert len(header.tensors) == n
    assert peak / n * MAX_TENSORS < 160 * MIB, peak / n


def test_gguf_tensor_name_over_llama_cpp_limit_is_refused():
    payload = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + _tensor_info(b"x" * 64)
    with pytest.raises(GGUFError, match="a tensor name claims a string of 64 bytes, over the limit of 63"):
        read_header(lambda off, n: payload[off:off + n], "long.gguf")


def test_long_string_array_is_skipped_without_keeping_it():
    n = 2**13  # kept, its 16-byte strings would take some 660 KB
    arr = struct.pack("<Q", 3) + b"tok" + struct.pack("<IIQ", 9, 8, n) + (struct.pack("<Q", 16) + b"s" * 16) * n
    header, peak = _read_measured(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + arr)
    assert header.metadata["tok"] == {"array_length": n, "type": 8}
    assert peak < 256 * 1024, peak  # nothing of the array is kept


def test_safetensors_header_of_too_many_values_is_refused_before_parsing():
    raw = b'{"a":[' + b"0," * MAX_HEADER_ITEMS + b'0]}'
    t = time.perf_counter()
    with pytest.raises(SafetensorsError) as e:
        parse_header(raw, "many.safetensors")
    assert f"over the limit of {MAX_HEADER_ITEMS:,} per header" in _one_line(e)
    assert time.perf_counter() - t < 1


def test_every_refusal_is_a_vramcalc_error():
    for cls in (HubError, GGUFError, SafetensorsError, LocalPathError):
        assert issubclass(cls, VramcalcError)


def test_slow_config_download_is_given_up_at_the_deadline(hub, monkeypatch):
    """config.json comes through huggingface_hub, whose timeouts are per socket read: the whole call
    is bounded by the same deadline."""
    import vramcalc.sources.hub as hubmod

    monkeypatch.setattr(hubmod, "DEADLINE_S", 0.8)
    body = b'{"x": 1}  '
    hub.repos["acme/slow-config"] = Repo(files={"config.json": body}, trickle={"config.json": 0.2},
                                         trickle_bytes=len(body))  # the server is done in 2 s
    t = time.perf_counter()
    with pytest.raises(HubError) as e:
        open_model("acme/slow-config")
    assert "not read within 0.8 s, the limit on one read" in _one_line(e)
    assert time.perf_counter() - t < 1.5


def test_redirect_of_config_json_to_a_file_url_is_one_line(hub):
    cfg = (LLAMA / "config.json").read_bytes()
    hub.repos["acme/file-config"] = Repo(files={"config.json": cfg}, location={"config.json": "file:///etc/passwd"})
    with pytest.raises(HubError) as e:
        open_model("acme/file-config")
    assert "acme/file-config@main config.json: redirected to a URL that is not http or https; refused" in _one_line(e)


def test_printed_llama_server_command_carries_no_userinfo(hub, other_host, tmp_path, capsys):
    """The launch command names the URL the user gave, less its user:password."""
    server, url = other_host
    server.repos["cdn/files"] = Repo(files={"m.gguf": _gguf_bytes(tmp_path).read_bytes()})
    secret_url = url.replace("http://", "http://joe:hunter2@") + "/cdn/files/resolve/main/m.gguf"
    code = main(["check", secret_url, "--gpu", "cpu", "--engine", "llamacpp", "--ctx", "64", "--ram", "8"])
    out = capsys.readouterr().out
    assert code == 0
    assert "llama-server" in out and "/cdn/files/resolve/main/m.gguf" in out
    assert "hunter2" not in out and "joe:" not in out


def test_remote_shard_shorter_than_its_header_says_is_refused(hub):
    """A remote safetensors file cut short: its header's data offsets run past the size the server's
    Content-Range states, so the weights are not taken as exact (as for a local file)."""
    files = repo_from_folder(LLAMA).files
    files["model.safetensors"] = files["model.safetensors"][:-4096]
    hub.repos["acme/cut"] = Repo(files=files)
    with pytest.raises(SafetensorsError) as e:
        open_model("acme/cut")
    assert "truncated" in _one_line(e) and "model.safetensors" in _one_line(e)
    assert open_model("acme/tiny-llama").weight_bytes  # an intact file still reads
