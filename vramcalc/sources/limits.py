"""What a model source may cost to read and where its credentials may go.

- URLs are printed without their userinfo (`user:password@`), in every message and error.
- A name that looks like a local path is read as one or refused; it never becomes a Hub repo id.
- Only regular files are opened: FIFOs, devices and sockets are refused from os.stat, before any
  open() that could block; symbolic links are followed and a dangling one is refused.

The bounds on bytes and counts live with the readers they bound (bounded_json, gguf_header,
safetensors_header, hub); docs/security.md lists them all.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UnknownModelError, VramcalcError

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s]*@")  # up to the last @ of the authority


def redact(text: str) -> str:
    """`text` with the userinfo of every URL in it removed: https://u:p@host/x -> https://host/x."""
    return _USERINFO.sub(r"\1", text)


class LocalPathError(UnknownModelError):
    """A local path that cannot be read as a model: missing, a dangling link, not a regular file."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class SpecialFileError(VramcalcError):
    """A file that is not a regular file where one is read (a FIFO named like a shard)."""


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def regular_file_size(path: Path, error: type[VramcalcError] = SpecialFileError) -> int:
    """The size of `path`, a regular file (symbolic links followed), from os.stat alone: nothing
    is opened, so a FIFO cannot block the read. Anything else raises `error` with one line."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise error(f"{path}: a symbolic link to a file that does not exist") from None
        raise error(f"{path}: no such file") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: {kind_of(st.st_mode)}, not a regular file: not read")
    return st.st_size


def local_kind(path: Path) -> str:
    """'file', 'dir', 'dangling' (a link to nothing), 'special' (FIFO, device, socket) or 'missing'."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "dangling" if os.path.lexists(path) else "missing"
    except OSError:  # a path too long or through a file: nothing local to read
        return "missing"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "special"


LOCAL_SUFFIXES = (".gguf", ".safetensors", ".json")


def is_url(name: str) -> bool:
    return urlsplit(name).scheme.lower() in ("http", "https") and "://" in name


def looks_local(name: str) -> bool:
    """A name meant as a local path: `./x`, `../x`, `/x`, `~x`, a file name ending in .gguf,
    .safetensors or .json, or a path whose parent folder exists here. Such a name is read or
    refused, never sent to the Hub as a repo id."""
    if is_url(name):
        return False
    if name.startswith(("./", "../", "/", "~", ".\\", os.sep)):
        return True
    path = Path(name)
    if path.suffix in LOCAL_SUFFIXES and (path.suffix != ".gguf" or name.count("/") < 2):
        return True  # org/repo/file.gguf (two slashes or more) is a Hub GGUF unless its folder is here
    parent = path.parent
    return str(parent) not in ("", ".") and parent.expanduser().is_dir()


def refuse_local(name: str, kind: str) -> LocalPathError:
    """The one-line error for a local-looking path that cannot be read."""
    path = Path(name).expanduser()
    if kind == "dangling":
        return LocalPathError(f"{name}: a symbolic link to a file that does not exist ({os.readlink(path)})")
    if kind == "special":
        try:
            what = kind_of(os.stat(path).st_mode)
        except OSError:
            what = "not a regular file"
        return LocalPathError(f"{name}: {what}, not a regular file or a model folder: not read")
    return LocalPathError(f"{name}: no such file or folder")


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: what must match for two URLs
    to be the same server."""
    u = urlsplit(url)
    scheme = u.scheme.lower()
    try:
        port = u.port
    except ValueError:
        port = None
    return scheme, (u.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)
