"""The errors vramcalc raises on bad input. Each carries one line a user can act on."""

from __future__ import annotations

from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError


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
    """A GPU or system that cannot be read. `code`, for a name of no entry, is the Message code of the refusal:
    gpu.unknown, or gpu.not_planned_device for a device vramcalc knows of and does not plan for (the message says
    why)."""

    def __init__(self, message: str, code: str | None = None):
        self.code = code
        super().__init__(message)


class InputError(VramcalcError, ValueError):
    """A flag, option or argument out of range: the message names it and what it accepts. (A ValueError too, so
    library callers that catch ValueError keep working.)"""


class NotModelledError(VramcalcError, ValueError):
    """Valid input that vramcalc does not model (a checkpoint format, a llama.cpp tensor type, a layout): the
    planner and the checks catch it to fall back or to reject one candidate; anywhere else it is reported as bad
    input."""


# ---------------------------------------------------------------- one line, and the --json failure object

MAX_MESSAGE_CHARS = 500  # a message longer than this is cut, with an ellipsis


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` on one line (line breaks and runs of blanks become one space), cut to `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def validation_message(e: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """A pydantic ValidationError as one line: each field (or the flag `names` gives for it) and what it
    accepts, e.g. "kv_cache_dtype: Input should be 'auto', 'bfloat16' ... (got 'fp4')"."""
    parts = []
    for err in e.errors():
        field = ".".join(str(x) for x in err.get("loc", ())) or e.title
        where = (names or {}).get(field, field)
        got = err.get("input")
        shown = f" (got {one_line(repr(got), 80)})" if not isinstance(got, dict) else ""
        parts.append(f"{where}: {err.get('msg', 'invalid')}{shown}")
    return one_line(f"{e.title}: " + "; ".join(parts))


def unknown_options(where: str, unknown: list[str], allowed: list[str]) -> str:
    """One line naming the options `where` does not take and those it does."""
    return one_line(f"{where}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                    f"allowed: {', '.join(allowed)}", limit=2000)


class CheckedOptions(BaseModel):
    """Options built by a library user or from flags: an invalid value is an InputError (one line naming the
    field and what it accepts), not a pydantic dump."""

    def __init__(self, **data: Any) -> None:
        unknown = sorted(set(data) - set(type(self).model_fields))
        if unknown:
            raise InputError(unknown_options(type(self).__name__, unknown, list(type(self).model_fields)))
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise InputError(validation_message(e)) from None


# What `--json` prints on stdout for a failure (docs/schema/error.json): code, the one-line message, the exit code.
ERROR_CODES: dict[str, str] = {
    "input.usage": "the command line does not parse: an unknown flag, a missing argument, a value of the wrong form",
    "input.bad_value": "a flag, option or argument out of range",
    "input.unknown_model": "no catalog model, config or GGUF file by that name",
    "input.unknown_gpu": "no GPU or system by that name, or a GPU count beyond the limit",
    "input.config": "a model config or file that cannot be read (the message names the file and the field)",
    "input.not_modelled": "valid input that vramcalc does not model",
    "input.error": "other bad input",
    "internal.error": "a bug in vramcalc (exit code 3)",
}
ErrorCode = Literal["input.usage", "input.bad_value", "input.unknown_model", "input.unknown_gpu", "input.config",
                    "input.not_modelled", "input.error", "internal.error"]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ErrorCode  # ERROR_CODES
    message: str = Field(max_length=MAX_MESSAGE_CHARS)  # the line printed on stderr, without its `vramcalc: error: `
    exit_code: Literal[2, 3]  # 2 bad input, 3 internal error


class ErrorOutput(BaseModel):
    """`--json` on a failure: {"error": {"code": ..., "message": ..., "exit_code": 2}} on stdout."""
    model_config = ConfigDict(frozen=True)

    error: ErrorDetail


def error_code(e: BaseException) -> ErrorCode:
    """The code of an exception the CLI reports."""
    if not isinstance(e, VramcalcError):
        return "internal.error"
    for cls, code in ((UnknownModelError, "input.unknown_model"), (UnknownGPUError, "input.unknown_gpu"),
                      (ConfigError, "input.config"), (NotModelledError, "input.not_modelled"),
                      (InputError, "input.bad_value")):
        if isinstance(e, cls):
            return code  # type: ignore[return-value]
    return "input.error"
