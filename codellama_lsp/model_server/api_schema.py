"""The model server's request bodies as validated types: a bad field is a 400, never a 500.

Hand-written checks missed cases (a ``seed`` beyond 64 bits reached ``torch``; a list as
``model`` was hashed), each a 500. Here every field has a type and a range, checked strictly
(``"16"`` is not a number, ``1`` is not ``true``) before the server reads the body. Fields
OpenAI clients send that the server ignores (``presence_penalty``, ``logit_bias`` …) are
allowed. Limits the operator sets (``--max-tokens-limit`` …) are checked by the server.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SEED_MAX = 2**63 - 1
"""``torch.Generator.manual_seed`` takes 64 bits; the HTTP engine sends non-negative seeds."""


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class CompletionBody(Body):
    """OpenAI ``POST /v1/completions``."""

    model: str | None = None
    prompt: str | list[int] | list[str] | list[list[int]] | None = None
    suffix: str | None = None
    max_tokens: int = Field(default=16, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    n: Literal[1] | None = None
    best_of: Literal[1] | None = None
    echo: bool | None = None
    logprobs: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    do_sample: bool | None = None


class ScoreParameters(Body):
    max_new_tokens: int = Field(default=200, ge=1)
    temperature: float = Field(default=0.2, ge=0.0, le=5.0)
    top_p: float = Field(default=0.9, ge=0.0, le=1.0)
    do_sample: bool = True


class ScoreInput(Body):
    input_string: str | list[str] = Field(min_length=1)
    parameters: ScoreParameters | None = None


class ScoreBody(Body):
    """The model card's ``{"input_data": {"input_string": [...], "parameters": {...}}}``."""

    input_data: ScoreInput


def first_error(exc: ValidationError) -> str:
    """One line naming the field and what is wrong (no input values: they may be code)."""
    errors = exc.errors(include_url=False, include_input=False)
    where = _field(errors[0]["loc"])
    if sum(_field(e["loc"]) == where for e in errors) > 1:
        return f"'{where}' has a type or value this server does not accept"  # a union's
    return f"'{where}': {errors[0]['msg']}" if where else str(errors[0]["msg"])


def _field(loc: tuple[int | str, ...]) -> str:
    """``("prompt", "list[int]", 3)`` → ``"prompt"``: field names only, no union tags."""
    names = [p for p in loc if isinstance(p, str) and p.isidentifier() and p not in _TAGS]
    return ".".join(names)


_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "literal", "none"})
