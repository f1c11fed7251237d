"""The engines vramcalc models: one identifier each, in code, data and JSON; the program's own name in prose."""

from __future__ import annotations

from typing import Literal

Engine = Literal["vllm", "llamacpp"]  # check --engine, plan --engine, result and plan-row `engine` fields
ENGINE_NAMES: dict[str, str] = {"vllm": "vllm", "llamacpp": "llama.cpp"}  # as reports print them
