"""JSON from files anyone can publish (config.json, model.safetensors.index.json): bounded in size
before it is read and in nesting while it is parsed, so a hostile file ends in our own error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import VramcalcError
from .limits import regular_file_size

# A bound chosen, not measured: config.json files are kilobytes and shard indexes of the largest
# checkpoints tens to hundreds of kilobytes; 16 MiB leaves ample room and bounds what is read or
# downloaded.
MAX_JSON_BYTES = 16 * 2**20


class JSONFileError(VramcalcError):
    pass


def loads(raw: bytes | str, where: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise JSONFileError(f"{where}: not valid JSON ({e})") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits, 4,300)
        raise JSONFileError(f"{where}: a number too long to be any model's value") from None
    except RecursionError:  # the C decoder's depth guard: "[[[[...": not a config anyone writes
        raise JSONFileError(f"{where}: JSON nested too deeply to be a model file") from None


def read(path: Path, where: str | None = None) -> Any:
    where = where or str(path)
    size = regular_file_size(path, JSONFileError)  # a FIFO named config.json is refused, not opened
    if size > MAX_JSON_BYTES:
        raise JSONFileError(f"{where}: {size:,} bytes, larger than any real model file ({MAX_JSON_BYTES:,} allowed)")
    with path.open("rb") as f:
        raw = f.read(MAX_JSON_BYTES + 1)  # the bytes actually read are bounded too: a file may grow after stat
    if len(raw) > MAX_JSON_BYTES:
        raise JSONFileError(f"{where}: more than {MAX_JSON_BYTES:,} bytes, larger than any real model file")
    return loads(raw, where)
