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
