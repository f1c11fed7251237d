"""Where a ModelSpec comes from: the bundled catalog, a local config.json or model folder, a
local GGUF (split files too), a Hub repo id, or a remote GGUF. Readers of files give the exact
weight bytes from the headers as well."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UnknownModelError
from ..spec import ModelSpec
from . import catalog
from .gguf_header import GGUFHeader
from .gguf_header import read_local as read_gguf
from .gguf_spec import spec_from_gguf
from .hf_config import read_config_file
from .limits import is_url, local_kind, looks_local, redact, refuse_local
from .safetensors_header import read_folder, shard_files


class ModelSource(BaseModel):
    """A ModelSpec and, when files were read, the exact bytes their tensors hold."""

    model_config = ConfigDict(frozen=True)

    spec: ModelSpec
    weight_bytes: int | None = None  # exact, from safetensors or GGUF headers
    weight_bytes_by_dtype: dict[str, int] | None = None
    header_bytes_read: int = 0
    gguf_tensors: list[tuple[str, tuple[int, ...], str]] | None = None  # (name, ggml dims, type) of a GGUF read
    # the GGUF header read, for --override-kv (sources/gguf_overrides.py): its metadata and tensors
    gguf_header: GGUFHeader | None = Field(default=None, exclude=True, repr=False)

    def llama_tensors(self) -> list | None:
        """The GGUF's tensors as the llama.cpp engine takes them: [(GGUFTensor, ggml type)]."""
        from ..gguf_mix import GGUFTensor

        if self.gguf_tensors is None:
            return None
        return [(GGUFTensor(n, tuple(ne)), t) for n, ne, t in self.gguf_tensors]


def open_model(name: str, revision: str | None = None, token: str | None = None) -> ModelSource:
    """In this order: a local .gguf file, config.json or model folder; a catalog id or alias
    (`qwen3-32b`, `meta-llama/Llama-3.1-8B`: no network); a remote GGUF (`org/repo/file.gguf` or an
    http(s) URL); a Hub repo id (config.json and safetensors headers). `hub:org/name` skips the
    catalog. token defaults to HF_TOKEN and goes only to the Hub endpoint.

    A name that exists here, or looks like a local path (see limits.looks_local), is read as one or
    refused with one line (no such file, a dangling link, a FIFO or device): it never reaches the Hub."""
    if name.startswith("hub:"):
        from .hub import read_repo

        return read_repo(name[4:], revision, token)
    path = Path(name).expanduser()
    kind = "missing" if is_url(name) else local_kind(path)
    if kind == "file" and path.suffix == ".gguf":
        h = read_gguf(path)
        spec = spec_from_gguf(h, model_id=path.name, source=f"gguf:{path}", where=str(path))
        return ModelSource(spec=spec, weight_bytes=h.data_bytes, weight_bytes_by_dtype=h.bytes_by_type(),
                           header_bytes_read=h.header_bytes, gguf_tensors=[(t.name, t.ne, t.type) for t in h.tensors],
                           gguf_header=h)
    if kind == "file":
        return ModelSource(spec=read_config_file(path))
    if kind in ("dangling", "special"):
        raise refuse_local(name, kind)
    if kind == "dir" and (path / "config.json").is_file():
        spec = read_config_file(path)
        if shard_files(path):
            st = read_folder(path)
            return ModelSource(spec=spec, weight_bytes=st.data_bytes, weight_bytes_by_dtype=st.bytes_by_dtype(),
                               header_bytes_read=st.header_bytes)
        return ModelSource(spec=spec)
    if catalog.resolve(name) is not None and revision is None:
        return ModelSource(spec=catalog.load(name))
    if kind == "dir":
        raise UnknownModelError(f"{name}: folder has no config.json")
    if looks_local(name):
        raise refuse_local(name, kind)
    if name.endswith(".gguf") and (is_url(name) or name.count("/") >= 2):
        from .hub import read_remote_gguf

        return read_remote_gguf(name, revision, token)
    from .hub import looks_like_repo_id, read_repo

    if looks_like_repo_id(name):
        return read_repo(name, revision, token)
    close = catalog.suggestions(name)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `vramcalc models` lists the catalog"
    raise UnknownModelError(redact(f"unknown model {name!r}: not in the bundled catalog and not a local file{hint}"))


def load_model(name: str) -> ModelSpec:
    """The ModelSpec of `name` (see open_model)."""
    return open_model(name).spec
