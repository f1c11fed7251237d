"""--kv-transfer-config: the KV connector of vLLM 0.33.0 (data/vllm_features.json kv_transfer names each rule's
source). What it changes on the GPU: the hybrid KV cache manager goes off where the connector does not support it
(sliding-window layers are then sized at full length, as with --disable-hybrid-kv-cache-manager); the connectors
whose code allocates nothing on the device beyond the KV cache they register change nothing else there; the others'
own buffers are named as not sized. --kv-offloading-size replaces the connector with its own
(vllm/config/vllm.py VllmConfig._post_init_kv_transfer_config)."""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..messages import Message, error, warning
from .features import config_object, features

SRC = "vllm/config/vllm.py VllmConfig.__post_init__, vllm/distributed/kv_transfer/kv_connector/factory.py (0.33.0)"


def parse_kv_transfer_config(v: Any) -> dict[str, Any]:
    """One JSON object of KVTransferConfig's fields (its dotted keys arrive merged as one)."""
    v = config_object("--kv-transfer-config", v, "KVTransferConfig", features().kv_transfer.fields,
                      "vllm/config/kv_transfer.py")
    if not isinstance(v.get("kv_connector_extra_config", {}), dict):
        raise InputError("argument --kv-transfer-config: kv_connector_extra_config is a JSON object")
    return dict(v)


def _children(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The connectors a config names: MultiConnector's children (kv_connector_extra_config.connectors)."""
    if cfg.get("kv_connector") == "MultiConnector":
        kids = (cfg.get("kv_connector_extra_config") or {}).get("connectors") or []
        return [k for k in kids if isinstance(k, dict)]
    return [cfg] if cfg.get("kv_connector") else []


def refusal(cfg: dict[str, Any] | None) -> Message | None:
    """KVTransferConfig.__post_init__ and KVConnectorFactory.get_connector_class, in their words."""
    if not cfg or not cfg.get("kv_connector"):
        return None
    kt = features().kv_transfer
    role = cfg.get("kv_role")
    if role is not None and role not in kt.roles:
        text = f"Unsupported kv_role: {role}. Supported roles are ({', '.join(repr(r) for r in kt.roles)})"
    elif role is None:
        text = kt.role_refusal
    else:
        unknown = [c.get("kv_connector") for c in [cfg, *_children(cfg)]
                   if c.get("kv_connector") not in kt.connectors and not c.get("kv_connector_module_path")]
        if not unknown:
            return None
        text = kt.unknown_refusal.format(name=unknown[0])
    return error("vllm.kv_transfer.refused", f"ValueError: {text} [vllm/config/kv_transfer.py KVTransferConfig, {SRC}]",
                 fix="--kv-transfer-config '{\"kv_connector\": \"NixlConnector\", \"kv_role\": \"kv_both\"}'",
                 source=SRC)


def hma_off(cfg: dict[str, Any] | None) -> bool:
    """The hybrid KV cache manager turned off for the connector (KVConnectorFactory.supports_hma_config: for
    MultiConnector, every child must support it; a connector from kv_connector_module_path is not known: off, the
    larger KV footprint)."""
    if not cfg or not cfg.get("kv_connector"):
        return False
    conns = features().kv_transfer.connectors
    kids = _children(cfg)
    if not kids:
        return True
    return not all(c.get("kv_connector") in conns and conns[c["kv_connector"]].supports_hma for c in kids)


def messages(cfg: dict[str, Any] | None, kv_cache_bytes: int) -> list[Message]:
    """What the connector changes that the KV figures do not show: the hybrid manager off, its own buffers not
    sized, NIXL's host copy of the KV cache (kv_buffer_device cpu)."""
    if not cfg or not cfg.get("kv_connector"):
        return []
    conns = features().kv_transfer.connectors
    out = []
    if hma_off(cfg):
        out.append(warning("vllm.kv_transfer.hma_off", f"--kv-transfer-config {cfg['kv_connector']}: the connector "
                           "does not support the hybrid KV cache manager, so vLLM turns it off: sliding-window and "
                           "chunked layers are sized at full length, as with --disable-hybrid-kv-cache-manager",
                           source=SRC))
    names = [c.get("kv_connector") for c in _children(cfg)]
    unsized = [n for n in names if n not in conns or conns[n].device_buffers != "none"]
    if unsized:
        out.append(warning("vllm.kv_transfer.unsized", f"--kv-transfer-config: {', '.join(map(str, unsized))} keeps "
                           "buffers of its own (its code or an external package's) that vramcalc does not size; the "
                           "figures count the KV cache it transfers only", source=SRC))
    if any(n in conns and conns[n].host_copy_with_cpu_buffer for n in names) and cfg.get("kv_buffer_device") == "cpu":
        out.append(warning("vllm.kv_transfer.host_copy", f"--kv-transfer-config kv_buffer_device cpu: NIXL keeps a "
                           f"host copy of each layer's KV cache, {kv_cache_bytes / 2**30:.2f} GiB of host memory per "
                           "GPU", source="vllm/distributed/kv_transfer/kv_connector/v1/nixl/base_worker.py "
                           "host_xfer_buffers (0.33.0)"))
    return out
