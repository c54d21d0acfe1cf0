"""One typed settings object, filled from defaults, environment, CLI flags and the client.

Order of precedence (later wins): defaults < ``CODELLAMA_LSP_*`` environment < CLI flags <
``initializationOptions`` < ``workspace/didChangeConfiguration``. A bad value raises
:class:`SettingsError` with a message meant for the editor, and the caller keeps the last
good settings.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

DEFAULT_MODEL = "codellama/CodeLlama-70b-Python-hf"
DEFAULT_PORT = 8765
"""``codellama-lsp serve``'s port, and so the default ``server_url``'s."""
ENV_PREFIX = "CODELLAMA_LSP_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

DEFAULT_EXCLUDE_FILES = (
    # dotenv files: API keys, passwords and tokens for the project
    ".env",
    ".env.*",
    "*.env",
    # private keys and key stores (TLS, SSH, code signing)
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    # login files: hosts (netrc), PostgreSQL, PyPI and npm tokens, cloud credentials
    ".netrc",
    ".pgpass",
    ".pypirc",
    ".npmrc",
    "credentials",
    "credentials.json",
    "*.tfvars",
)
"""Where completions are off by default: files that hold secrets. A suggestion there would
send the secrets in a prompt (to a model server, into its caches and logs) and could offer a
real-looking key the model saw in training; their text is kept out of other files' prompts."""

Backend = Literal["local", "http", "auto"]
ServerApi = Literal["auto", "openai", "llama_cpp"]
PromptFormat = Literal["auto", "fim", "prefix"]
EarlyFirstLine = Literal["auto", "always", "never"]
Quantization = Literal["none", "4bit", "8bit"]
DType = Literal["auto", "bfloat16", "float16", "float32"]


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message is shown to the user as is."""


@dataclass(frozen=True)
class SettingInfo:
    """What the rest of the program must know about one setting (its field's metadata)."""

    help: str
    reload: bool = False
    """A change needs a new engine: the engines read it once, when they load."""
    cache_key: bool = False
    """A completion made under another value is not reused (part of the cache key)."""
    editor: bool = True
    """Offered in editors' settings (VS Code: ``codellama.<client_name>``)."""


def setting(
    default: Any,
    help: str,
    *,
    reload: bool = False,
    cache_key: bool = False,
    editor: bool = True,
) -> Any:
    """A :class:`Settings` field with its :class:`SettingInfo`."""
    return dataclasses.field(
        default=default, metadata={"info": SettingInfo(help, reload, cache_key, editor)}
    )


@dataclass(frozen=True)
class Settings:
    """Everything a user can set. Names are the keys clients send (snake_case)."""

    model: str = setting(
        DEFAULT_MODEL, "HF id or local folder; `demo` = the bundled tiny demo model", reload=True
    )
    backend: Backend = setting(
        "auto",
        (
            "`local` (in-process), `http` (a model server / vLLM / TGI), `auto` (the model server"
            " at `server_url` if it answers for this model, else `local`)"
        ),
        reload=True,
    )
    server_url: str = setting(
        f"http://127.0.0.1:{DEFAULT_PORT}",
        "base URL of the OpenAI-compatible server for `http`/`auto`",
        reload=True,
    )
    api_key: str = setting(
        "",
        "Bearer token for the model server (editors keep it out of their settings files)",
        reload=True,
        editor=False,
    )
    http_model_name: str = setting(
        "", "model name to send to the server (default: `model`)", reload=True
    )
    server_api: ServerApi = setting(
        "auto",
        (
            "what the server at `server_url` speaks: `llama_cpp` (llama.cpp's `llama-server`: "
            "token ids on `/completion`, its prompt cache and timings), `openai` "
            "(`/v1/completions`: `codellama-lsp serve`, vLLM, TGI), `auto` (`llama_cpp` when "
            "the server answers llama-server's `/props`)"
        ),
        reload=True,
    )
    dtype: DType = setting(
        "auto", "weights dtype; `auto` = bfloat16 on GPU, float32 on CPU", reload=True
    )
    device_map: str = setting(
        "auto", "accelerate device map (`auto` spreads over GPUs), `cpu`, `cuda:0`", reload=True
    )
    quantization: Quantization = setting(
        "none", "`4bit` (NF4) or `8bit` weights via bitsandbytes", reload=True
    )
    local_files_only: bool = setting(
        True, "never download from the hub unless set to false", reload=True
    )
    max_context_tokens: int = setting(4096, "prompt + new tokens budget", cache_key=True)
    max_new_tokens: int = setting(128, "budget of a multi-line completion", cache_key=True)
    max_new_tokens_single_line: int = setting(
        32, "budget of a mid-line (single-line) completion", cache_key=True
    )
    temperature: float = setting(0.2, "0 = greedy", cache_key=True)
    top_p: float = setting(0.9, "nucleus sampling", cache_key=True)
    prompt_format: PromptFormat = setting(
        "auto",
        (
            "`fim` (7B/13B/70B base and Instruct), `prefix` (34B and the Python models, "
            "70B-Python included), `auto` decides by the checkpoint (the demo model: `prefix`)"
        ),
        cache_key=True,
    )
    fim_suffix_share: float = setting(
        0.25, "share of the prompt budget for the text after the cursor (FIM)", cache_key=True
    )
    stop_sequences: tuple[str, ...] = setting(
        ("\ndef ", "\nclass ", "\nif __name__", "\n\n\n"),
        "generation stops at any of these",
        cache_key=True,
    )
    enabled: bool = setting(True, "false = answer every request empty")
    languages: tuple[str, ...] = setting(
        ("python",),
        (
            "language ids (as the editor names them: `python`, `javascript`, `rust`, …) where the "
            "server completes; `*` = every language. Python by default: the flagship 70B-Python "
            "and the demo model know Python only; the 7B/13B/70B base and Instruct models write "
            "other languages too (add their ids)"
        ),
    )
    exclude_files: tuple[str, ...] = setting(
        DEFAULT_EXCLUDE_FILES,
        (
            "globs of files where the server never completes and whose text never goes into a "
            "prompt (matched against the end of the path: `*.pem`, `.aws/credentials`); the "
            "defaults are files that hold secrets (see docs/editors.md)"
        ),
    )
    complete_in_comments: bool = setting(
        True, "Python: suggest inside comments (Python's tokenizer reads the code up to the cursor)"
    )
    complete_in_strings: bool = setting(
        True,
        "Python: suggest inside strings and docstrings (Python's tokenizer reads the code up to "
        "the cursor)",
    )
    candidates: int = setting(
        3, "suggestions to cycle through when you ask explicitly (Invoked); typing always gets one"
    )
    parse_check: bool = setting(
        True,
        "Python: end a suggestion where the code parses; drop one that breaks code which parsed",
        cache_key=True,
    )
    parse_check_retries: int = setting(
        2,
        (
            "Python: when the parse check drops a suggestion, sample up to this many others (as "
            "for `candidates`) and show the first that passes; 0 = show nothing"
        ),
        cache_key=True,
    )
    debounce_ms: int = setting(
        -1,
        (
            "wait this long for more keystrokes before asking the model; -1 = adaptive: 0 ms for "
            "a model faster than a pause in your typing, else wait for such a pause"
        ),
    )
    early_first_line: EarlyFirstLine = setting(
        "auto",
        (
            "multi-line suggestions: show the first line as soon as the model has written it, "
            "then the whole block when it is done (the ghost text grows); `auto` = for a model "
            "slower than a pause in your typing (as `debounce_ms = -1` measures it)"
        ),
    )
    idle_prefill: bool = setting(
        True,
        (
            "while the model is idle, prefill the prompt up to the cursor as you type (local "
            "backend, llama-server)"
        ),
    )
    keep_matching_generations: bool = setting(
        True,
        (
            "a generation in flight runs on while what the user types matches the text it has "
            "made so far (its answer then serves the next pause); false stops it at the next key"
        ),
    )
    prefill_chunk_tokens: int = setting(
        256, "prompt tokens per forward pass (cancellation checks between)", reload=True
    )
    cache_size: int = setting(
        256,
        (
            "completions kept (LRU); 0 = no earlier result is reused (no cache, typing-through "
            "or sharing of a generation in flight)"
        ),
    )
    cache_ttl_s: float = setting(600.0, "seconds a cached completion stays valid")
    kv_cache_slots: int = setting(
        4, "KV caches of recent prompts kept for prefix reuse", reload=True
    )
    kv_cache_max_tokens: int = setting(16384, "total tokens over all KV slots", reload=True)
    prefetch_after_accept: bool = setting(True, "compute the next completion when one is accepted")
    context_other_documents: bool = setting(
        True, "add snippets, definitions and recent edits from other open files"
    )
    speculative: bool = setting(
        True,
        (
            "local engine: draft tokens (from the prompt, the previous suggestion, `draft_model`)"
            " and check several in one forward pass; same output, fewer passes"
        ),
    )
    speculative_max_draft: int = setting(
        8,
        (
            "most tokens drafted per check (the engine picks fewer, or none, from measured "
            "acceptance and pass cost)"
        ),
    )
    draft_model: str = setting(
        "",
        (
            "small model drafting for `model` (same tokenizer), e.g. "
            "`codellama/CodeLlama-7b-Python-hf` for the 70B; empty = none"
        ),
        reload=True,
    )
    context_workspace: bool = setting(
        True,
        (
            "index the workspace's Python files and add the definitions the code near the cursor "
            "uses or imports"
        ),
    )
    context_workspace_max_files: int = setting(10000, "most Python files the workspace index reads")
    log_level: str = setting("INFO", "stderr log level (document text is logged only at DEBUG)")
    supersede: bool = setting(
        True,
        (
            "a new request for a document stops the one before it; false = every request "
            "runs (the benchmarks' baseline)"
        ),
        editor=False,
    )

    def merged(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with ``overrides`` applied and validated; unknown keys are an error."""
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, raw in overrides.items():
            name = key.replace("-", "_")
            if name not in known:
                raise SettingsError(f"codellama-lsp: unknown setting {key!r}")
            if raw is None:
                continue
            changes[name] = _coerce(name, _field_type(name), raw)
        result = dataclasses.replace(self, **changes)
        result.validate()
        return result

    def validate(self) -> None:
        """Range checks that types alone cannot express."""
        checks: list[tuple[bool, str]] = [
            (bool(self.model.strip()), "model must not be empty"),
            (self.max_context_tokens >= 64, "max_context_tokens must be at least 64"),
            (self.max_new_tokens >= 1, "max_new_tokens must be at least 1"),
            (self.max_new_tokens_single_line >= 1, "max_new_tokens_single_line must be at least 1"),
            (
                self.max_new_tokens < self.max_context_tokens,
                "max_new_tokens must be smaller than max_context_tokens",
            ),
            (0.0 <= self.temperature <= 5.0, "temperature must be between 0 and 5"),
            (0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]"),
            (0.0 <= self.fim_suffix_share <= 0.9, "fim_suffix_share must be between 0 and 0.9"),
            (
                -1 <= self.debounce_ms <= 5000,
                "debounce_ms must be between 0 and 5000, or -1 (adaptive)",
            ),
            (1 <= self.candidates <= 10, "candidates must be between 1 and 10"),
            (
                0 <= self.parse_check_retries <= 5,
                "parse_check_retries must be between 0 and 5",
            ),
            (self.prefill_chunk_tokens >= 1, "prefill_chunk_tokens must be at least 1"),
            (self.cache_size >= 0, "cache_size must not be negative"),
            (
                all(language.strip() for language in self.languages) and bool(self.languages),
                "languages must name at least one language id (or `*` for all)",
            ),
            (self.cache_ttl_s > 0, "cache_ttl_s must be positive"),
            (self.kv_cache_slots >= 0, "kv_cache_slots must not be negative"),
            (
                self.log_level.upper() in LOG_LEVELS,
                f"log_level must be one of {', '.join(LOG_LEVELS)} (got {self.log_level!r})",
            ),
            (
                0 <= self.speculative_max_draft <= 32,
                "speculative_max_draft must be between 0 and 32",
            ),
            (
                self.context_workspace_max_files >= 0,
                "context_workspace_max_files must not be negative",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(f"codellama-lsp: {message}")


def _field_type(name: str) -> Any:
    return typing.get_type_hints(Settings)[name]


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    """Turn a JSON or string value into the field's type, or explain why not."""
    origin = typing.get_origin(kind)
    try:
        if origin is Literal:
            allowed = typing.get_args(kind)
            value = str(raw)
            if value not in allowed:
                raise SettingsError(
                    f"codellama-lsp: {name} must be one of {', '.join(allowed)} (got {raw!r})"
                )
            return value
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if origin is tuple:
            if isinstance(raw, str):
                return tuple(part for part in raw.split(",") if part)
            if isinstance(raw, list | tuple) and all(isinstance(p, str) for p in raw):
                return tuple(raw)
            raise ValueError(raw)
        if kind is str:
            if not isinstance(raw, str | int | float):
                raise ValueError(raw)
            return str(raw)
    except SettingsError:
        raise
    except (TypeError, ValueError):
        pass
    type_name = getattr(kind, "__name__", str(kind))
    raise SettingsError(f"codellama-lsp: {name} must be a {type_name} (got {raw!r})")


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``CODELLAMA_LSP_MAX_NEW_TOKENS=64`` → ``{"max_new_tokens": "64"}``."""
    env = os.environ if environ is None else environ
    names = {f.name for f in fields(Settings)}
    found: dict[str, str] = {}
    for key, value in env.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in names:
                found[name] = value
    return found


def client_overrides(options: Any) -> dict[str, Any]:
    """Settings from initializationOptions or didChangeConfiguration.

    Accepts a flat object or one nested under ``"codellama"`` (VS Code's section).
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise SettingsError("codellama-lsp: settings must be a JSON object")
    nested = options.get("codellama")
    if isinstance(nested, Mapping):
        options = nested
    return dict(options)


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return " \\| ".join(typing.get_args(kind))
    if typing.get_origin(kind) is tuple:
        return "list of str"
    return getattr(kind, "__name__", str(kind))


def info(name: str) -> SettingInfo:
    info: SettingInfo = _FIELDS[name].metadata["info"]
    return info


def client_name(name: str) -> str:
    """The name editors show (VS Code: ``codellama.maxNewTokens``); clients send ``name``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_FIELDS = {f.name: f for f in fields(Settings)}
ENGINE_SETTINGS = frozenset(name for name in _FIELDS if info(name).reload)
"""Settings whose change needs a new engine (a reload); the rest apply at once."""
CACHE_KEY_SETTINGS = tuple(name for name in _FIELDS if info(name).cache_key)
"""Settings a cached completion depends on (besides the text, the model and the context)."""
EDITOR_SETTINGS = tuple(name for name in _FIELDS if info(name).editor)
"""Settings editors offer in their settings UI (the rest are for benchmarks)."""


def needs_reload(old: Settings, new: Settings) -> bool:
    return any(getattr(old, name) != getattr(new, name) for name in ENGINE_SETTINGS)


def cache_key_values(settings: Settings) -> tuple[Any, ...]:
    return tuple(getattr(settings, name) for name in CACHE_KEY_SETTINGS)


def describe() -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) for each setting, for docs and ``--help``."""
    rows = []
    for name, f in _FIELDS.items():
        text = info(name).help + (" (reloads the model)" if info(name).reload else "")
        rows.append((name, _type_name(_field_type(name)), repr(f.default), text))
    return rows
