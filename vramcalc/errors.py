"""The errors vramcalc raises on bad input. Each carries one line a user can act on."""

from __future__ import annotations


class VramcalcError(Exception):
    """Bad input: the CLI prints the message on one line and exits with code 2."""


class ConfigError(VramcalcError):
    """A model config that cannot be read: names the file and the field."""

    def __init__(self, where: str, field: str, problem: str = "is missing"):
        self.where = where
        self.field = field
        super().__init__(f"{where}: field '{field}' {problem}")


class UnknownModelError(VramcalcError):
    pass


class UnknownGPUError(VramcalcError):
    pass


class InputError(VramcalcError, ValueError):
    """A flag, option or argument out of range: the message names it and what it accepts. (A ValueError too, so
    library callers that catch ValueError keep working.)"""


class NotModelledError(VramcalcError, ValueError):
    """Valid input that vramcalc does not model (a checkpoint format, a llama.cpp tensor type, a layout): the
    planner and the checks catch it to fall back or to reject one candidate; anywhere else it is reported as bad
    input."""
