"""``Settings`` (every section, with the checks across sections), loading it from file,
environment and flags, and describing every value with its source."""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .base import DEFAULT_MODEL_NAME, EMBEDDING_MODEL, ENV_PREFIX, _Section, list_from_text
from .reuse import ReuseSettings
from .routing import (
    TASK_NAMES,
    ModelSettings,
    ReasoningSettings,
    RoutingSettings,
    TaskPolicy,
    _default_models,
    _default_policy,
)
from .sections import (
    CreativitySettings,
    DashboardSettings,
    EnergySettings,
    GridSettings,
    LimitsSettings,
    SchedulerSettings,
    ServerSettings,
    StoreSettings,
)


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, naming the variable it could not read: a table
    (a section, ``models``, ``routing.ladders``…) given as one variable is decoded as JSON,
    and its own error names only the section (``error parsing value for field "routing"``),
    after a traceback. List settings take comma-separated items too (``ListSetting``).

    The settings are strict (``base._Section``), and an environment variable is text: for
    strict settings pydantic-settings reads each variable into its field's type before
    validation, as lax mode reads text (``BOUNDGATE_SERVER__PORT=8081`` is 8081, ``…=true``
    stays text and is refused). ``_coerce_env_val_strict`` (the hook it does it in) does it
    too for a table's values (``BOUNDGATE_REASONING__EFFORT_TOKENS__LOW=10``), a list's
    comma-separated items and a renamed key's old name (``next_field``), which it passed on
    as text, and never reads text as JSON first (``true``: 1)."""

    def __call__(self) -> dict[str, Any]:
        self._check_sections()
        return super().__call__()

    def _check_sections(self) -> None:
        """Refuse a nested variable whose first part is no section
        (``BOUNDGATE_LIMTS__RPM=5``): pydantic-settings reads only the variables of known
        fields, so it was ignored, while a misspelled key of a known section is refused. Only
        ``<prefix><name>__…`` is a setting's spelling: the project's other variables
        (``BOUNDGATE_CONFIG``, ``BOUNDGATE_API_KEY``, ``BOUNDGATE_WORKER_SETTINGS``, tests'
        ``BOUNDGATE_TEST_*``…) have no ``__`` and are left alone."""
        sections = list(self.settings_cls.model_fields)
        prefix = ENV_PREFIX.lower()
        for name in sorted(self.env_vars):
            if not name.lower().startswith(prefix) or "__" not in name[len(prefix) :]:
                continue
            spelled = _spelled(name)
            section, _, rest = spelled[len(prefix) :].partition("__")
            if section.lower() in sections:
                continue
            close = difflib.get_close_matches(section.lower(), sections, n=1)
            if close:
                fix = f"; did you mean {spelled[: len(prefix)]}{close[0].upper()}__{rest}?"
            else:
                fix = f" (sections: {', '.join(sections)})"
            raise ConfigError(
                f"invalid configuration (environment): {spelled}: no section "
                f"{section.lower()!r}{fix}"
            )

    def next_field(
        self, field: FieldInfo | Any | None, key: str, case_sensitive: bool | None = None
    ) -> FieldInfo | None:
        # a renamed key's old name is its new key's field (``_Section.renamed``)
        found = super().next_field(field, key, case_sensitive)
        section = field.annotation if isinstance(field, FieldInfo) else field
        if found is None and isinstance(section, type) and issubclass(section, _Section):
            new = section.renamed.get(key.lower())
            return section.model_fields[new] if new else None
        return found

    def _coerce_env_val_strict(self, field: FieldInfo | None, value: Any) -> Any:
        # pydantic-settings' own falls back to JSON, then reads that laxly: "true" was port 1
        if not isinstance(value, str) or field is None:
            return value
        if not isinstance(field, FieldInfo):  # a table's value type, e.g. int
            return _typed(field, value)
        if NoDecode in field.metadata:  # a list setting: JSON or comma-separated items
            try:
                return _typed(field.annotation, list_from_text(value))
            except ValueError:  # not JSON: validation says so, naming the setting
                return value
        return _typed(field.annotation, value)

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except json.JSONDecodeError:
            # the nested variable whose value fails alone, else the section's own variable
            # (BOUNDGATE_SERVER='…')
            culprit = next(
                (n for n, v in self.env_vars.items() if self._fails(field_name, field, n, v)),
                _env_name([field_name]),
            )
            raise ConfigError(
                f"invalid configuration (environment): {_spelled(culprit)}: not JSON; a table "
                'given as one environment variable is a JSON object, e.g. \'{"key": "value"}\' '
                f"(or set each key in its own variable: {_spelled(culprit)}__<KEY>)"
            ) from None

    def _fails(self, field_name: str, field: FieldInfo, name: str, value: str | None) -> bool:
        try:
            self.explode_env_vars(field_name, field, {name: value})
        except json.JSONDecodeError:
            return True
        return False


def _typed(annotation: Any, value: Any) -> Any:
    """``value`` (an environment variable's text) read as ``annotation`` as pydantic's lax
    mode reads text, or as it is when it cannot be: validation then refuses it, naming the
    setting."""
    if get_origin(annotation) is list and isinstance(value, list):  # item by item: one bad
        (item,) = get_args(annotation) or (Any,)  # item is named alone, the rest are read
        return [_typed(item, v) for v in value]
    try:
        typed = TypeAdapter(annotation).validate_python(value)
    except ValidationError:
        return value
    if (
        isinstance(typed, int)
        and not isinstance(typed, bool)
        and isinstance(value, str)
        and not _INTEGER_TEXT.fullmatch(value)
    ):
        return value  # lax mode reads "5.0" as 5, where a file's 5.0 is refused: refuse it too
    return typed


# an integer as TOML writes one (``1_000`` too), the only text an integer setting takes
_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9](_?[0-9])*\s*")


def _spelled(name: str) -> str:
    """An environment variable's name as it is spelled in the environment (pydantic-settings
    matches them without case)."""
    return next((k for k in os.environ if k.lower() == name.lower()), name.upper())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
        strict=True,  # base._Section says why; _EnvSource reads the environment's text
        allow_inf_nan=False,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    energy: EnergySettings = Field(default_factory=EnergySettings)
    reuse: ReuseSettings = Field(default_factory=ReuseSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    grid: GridSettings = Field(default_factory=GridSettings)
    creativity: CreativitySettings = Field(default_factory=CreativitySettings)
    reasoning: ReasoningSettings = Field(default_factory=ReasoningSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    models: dict[str, ModelSettings] = Field(default_factory=_default_models)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (passed in as init kwargs); CLI flags are applied after.
        return (_EnvSource(settings_cls), init_settings)

    @field_validator("models", mode="before")
    @classmethod
    def _env_model_names(cls, value: Any) -> Any:
        """Environment variable names cannot hold ``-``: ``BOUNDGATE_MODELS__SMOLLM2_135M__…``
        arrives as model ``smollm2_135m``. Such a name is the model it names with ``-``
        (merged into that model's settings from the file); the packaged default model
        keeps its backend and default flag when only some of its fields are set."""
        if not isinstance(value, dict):
            return value

        def same(a: str, b: str) -> bool:
            return a.replace("_", "-").lower() == b.replace("_", "-").lower()

        out: dict[str, Any] = {}
        for name, spec in value.items():
            target = next((n for n in out if n != name and same(n, name)), None)
            if target is None and same(name, DEFAULT_MODEL_NAME):
                target = DEFAULT_MODEL_NAME
            if target is None:
                target = name
            if isinstance(spec, dict) and isinstance(out.get(target), dict):
                out[target] = {**out[target], **spec}
            else:
                out[target] = spec
        default = out.get(DEFAULT_MODEL_NAME)
        if isinstance(default, dict) and "backend" not in default:
            others_default = any(
                isinstance(s, dict) and s.get("default") for n, s in out.items()
                if n != DEFAULT_MODEL_NAME
            )  # fmt: skip
            out[DEFAULT_MODEL_NAME] = {
                "backend": "llama_cpp", **({} if others_default else {"default": True}), **default
            }  # fmt: skip
        return out

    @model_validator(mode="after")
    def _check_price(self) -> Settings:
        if self.scheduler.price_weight > 0 and self.scheduler.price_csv is None:
            raise ValueError("scheduler.price_weight > 0 needs scheduler.price_csv")
        return self

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        if not self.models:
            raise ValueError("models: at least one model must be configured")
        defaults = [name for name, m in self.models.items() if m.default]
        if len(defaults) > 1:
            raise ValueError(f"models: only one model may set default = true, got {defaults}")
        return self

    @model_validator(mode="after")
    def _check_reserved_names(self) -> Settings:
        """No model name or alias is an id the gateway gives a meaning of its own, which
        ``GET /v1/models`` lists beside the models: ``routing.auto_model``, any name starting
        ``<auto_model>:`` (``auto:<ladder>``: a request naming one is routed, whether or not a
        ladder has that name), and with reuse on ``EMBEDDING_MODEL`` (what ``/v1/embeddings``
        serves); nor is the auto model the embeddings model's id; nor does an alias repeat a
        model's name or another alias (one of the two models could not be reached). A request
        naming such a model would be ambiguous. Raises ValueError naming the setting and the
        clash."""
        auto = self.routing.auto_model
        embeddings = self.reuse.enabled
        owner: dict[str, str] = {}  # each name a request may give → the model it reaches
        for model, m in self.models.items():
            for alias in m.aliases:
                if alias == model:
                    other: str | None = model
                elif alias in self.models:
                    other = alias
                else:
                    other = owner.get(alias)
                    if other == model:  # listed twice by the same model: harmless
                        continue
                if other is not None:
                    what = "its own name" if other == model else f"a name of models.{other}"
                    raise ValueError(
                        f"models.{model}.aliases: {alias!r} is {what}, so a request naming it "
                        "would be ambiguous; remove or rename the alias"
                    )
                owner[alias] = model
        for model, m in self.models.items():
            named = [(model, f"models.{model}", "model")]
            named += [(alias, f"models.{model}.aliases", "alias") for alias in m.aliases]
            for name, where, kind in named:
                if name == auto:
                    clash = "is routing.auto_model, the name asking the gateway to choose a model"
                    fix = f"rename the {kind} or set routing.auto_model to another name"
                elif name.startswith(auto + ":"):
                    clash = f"starts with '{auto}:', which names a routing ladder ({auto}:<ladder>)"
                    fix = f"rename the {kind}"
                elif embeddings and name == EMBEDDING_MODEL:
                    clash = "is the embeddings model's id (POST /v1/embeddings; reuse is on)"
                    fix = f"rename the {kind}"
                else:
                    continue
                raise ValueError(
                    f"{where}: {name!r} {clash}, so a request naming it would be ambiguous; {fix}"
                )
        if embeddings and auto == EMBEDDING_MODEL:
            raise ValueError(
                f"routing.auto_model: {auto!r} is the embeddings model's id (POST "
                "/v1/embeddings; reuse is on), so a request naming it would be ambiguous; set "
                "routing.auto_model to another name"
            )
        return self

    @model_validator(mode="after")
    def _check_routing(self) -> Settings:
        r = self.routing
        names = set(self.models) | {a for m in self.models.values() for a in m.aliases}
        # an alias is its model: a rung named twice, either way, runs that model twice on
        # one escalation (a trial's ["mid", "mid"] and ["mid", "medium"] were accepted)
        model_of = self.model_aliases
        for ladder, rungs in r.ladders.items():
            if not rungs:
                raise ValueError(f"routing.ladders.{ladder}: a ladder needs at least one rung")
            seen: dict[str, int] = {}
            for i, rung in enumerate(rungs):
                if rung not in names:
                    raise ValueError(
                        f"routing.ladders.{ladder}[{i}]: {rung!r} is not a configured model "
                        f"(models: {', '.join(sorted(self.models))})"
                    )
                model = model_of.get(rung, rung)
                if model in seen:
                    raise ValueError(
                        f"routing.ladders.{ladder}[{i}]: {rung!r} is model {model!r} again "
                        f"(rung {seen[model]}): each rung must be another model"
                    )
                seen[model] = i
        for model, threshold in r.logprob_thresholds.items():
            if model not in names:
                raise ValueError(
                    f"routing.logprob_thresholds.{model}: not a configured model "
                    f"(models: {', '.join(sorted(self.models))})"
                )
            if not threshold <= 0:
                raise ValueError(
                    f"routing.logprob_thresholds.{model}: {threshold} is not a log-probability "
                    "(nats per token, ≤ 0; 0 turns the check off)"
                )
        ladders = {"default": [self.default_model], **r.ladders}
        builtin_policy = {t: p.model_dump() for t, p in _default_policy().items()}
        for task, p in [*r.policy.items(), ("unclassified", r.unclassified)]:
            where = f"routing.policy.{task}" if task != "unclassified" else "routing.unclassified"
            if task not in (*TASK_NAMES, "unclassified"):
                raise ValueError(f"{where}: unknown task (tasks: {', '.join(TASK_NAMES)})")
            if p.ladder not in ladders:
                raise ValueError(
                    f"{where}.ladder: no ladder {p.ladder!r} (ladders: {', '.join(ladders)})"
                )
            # the built-in policy's rung is clamped to the ladder (Router.plan); it is told
            # by its values, which survive the settings' JSON round trip to workers
            builtin = task in builtin_policy and p.model_dump() == builtin_policy[task]
            if not builtin and p.first_rung >= len(ladders[p.ladder]):
                raise ValueError(
                    f"{where}.first_rung: {p.first_rung} is past the last rung of ladder "
                    f"{p.ladder!r} ({len(ladders[p.ladder])} rungs)"
                )
        return self

    @property
    def default_model(self) -> str:
        for name, m in self.models.items():
            if m.default:
                return name
        return next(iter(self.models))

    @property
    def model_aliases(self) -> dict[str, str]:
        """Each configured alias → the model it names (``models.<name>.aliases``)."""
        return {a: name for name, m in self.models.items() for a in m.aliases}

    @property
    def db_path(self) -> Path:
        return self.server.data_dir / "boundgate.db"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and listings)."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


class ConfigError(Exception):
    """A configuration problem, with the offending key named in the message."""


# strict mode's errors for a value of another type (a boolean for a number…), which say
# what was expected and not what was given
_TYPE_ERRORS = {"int_type", "float_type", "bool_type", "string_type"}


def _given(value: Any, error: str, *, advise: bool = True) -> str:
    """A value of the wrong type as the config file spells it (``true``, ``"60"``), and, for a
    quoted number or boolean where one is expected, how to write it (``advise``: the file gave
    it; the environment's text has no quotes to remove)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return repr(value)
    if not advise:
        return json.dumps(value)
    hint = ""
    number = re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*", value)
    if error in ("int_type", "float_type") and number:
        hint = ": write a number without quotes"
    elif error == "bool_type" and value.strip().lower() in ("true", "false"):
        hint = ": write true or false without quotes"
    return json.dumps(value) + hint


def _in_file(data: dict[str, Any], loc: tuple[int | str, ...]) -> bool:
    """Whether the config file's ``data`` holds the value at ``loc`` (else it came from the
    environment, whose text has no quotes to remove)."""
    node: Any = data
    for part in loc:
        listed = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if not (listed or (isinstance(node, dict) and part in node)):
            return False
        node = node[part]
    return True


def _keys_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the settings allow at ``loc`` (a section's, a model's), [] where unknown."""
    model: Any = Settings
    parts = list(loc)
    while parts:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return []
        model = field.annotation
        if get_origin(model) is dict and parts:  # models.<name>, routing.policy.<task>
            model = get_args(model)[1]
            parts.pop(0)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


_NAMED_SETTING = re.compile(r"(?:Value error, )?([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_-]+)+)[\[:]")


def _setting_path(loc: tuple[int | str, ...], msg: str) -> list[str]:
    """The setting an error is about: its location, or for an error of the whole settings (a
    check across sections) the dotted setting its message opens with ("routing.ladders.
    default[1]: …"); [] when neither says."""
    if loc:
        return [str(p) for p in loc]
    named = _NAMED_SETTING.match(msg)
    return named.group(1).split(".") if named else []


def _given_by_env(parts: list[str], data: dict[str, Any]) -> str:
    """What the environment has to do with the setting at ``parts``, as the tail of its error
    line ("" if nothing): the variable that sets it or a table above it, or the variables
    that alone make a table the file does not have (a trial's misspelled
    ``BOUNDGATE_MODELS__BIG_ONEE__TIMEOUT_S=5`` made a model ``big_onee`` without a backend,
    and the error named the file)."""
    for i in range(len(parts), 0, -1):
        variable = _spelled(_env_name(parts[:i]))
        if variable in os.environ:
            return f"; set by the environment variable {variable}"
    for i in range(len(parts) - 1, 1, -1):
        prefix = _env_name(parts[:i]).lower() + "__"
        entries = sorted(k for k in os.environ if k.lower().startswith(prefix))
        if entries and not _in_file(data, tuple(parts[:i])):
            table = ".".join(parts[:i])
            said = f"; {table} is only in the environment ({', '.join(entries)})"
            siblings = _node(data, parts[: i - 1])
            close = difflib.get_close_matches(parts[i - 1], list(siblings), n=1)
            return said + (f"; did you mean {close[0]!r}?" if close else "")
    return ""


def _node(data: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """The file's table at ``parts`` ({} where it has none)."""
    node: Any = data
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _format_validation_error(
    err: ValidationError, origin: str, data: dict[str, Any] | None = None
) -> str:
    """One line per error, each naming its setting (``server.port``) and, for a value of
    another type, what was given and, when the file gave it, how to write it."""
    lines = [f"invalid configuration ({origin}):"]
    from_env = 0
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"]
        # a value the environment gave (it overrides the file): name the variable, or an
        # operator searches a file that is right (a trial's BOUNDGATE_SERVER__PORT=abc)
        given_by = _given_by_env(_setting_path(e["loc"], msg), data or {})
        from_env += bool(given_by)
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            close = difflib.get_close_matches(str(e["loc"][-1]), _keys_at(e["loc"][:-1]), n=1)
            if close:
                msg += f"; did you mean {close[0]!r}?"  # as the environment's check says
        elif e["type"] == "model_type":  # pydantic names the class ("… of ServerSettings")
            at = [str(p) for p in e["loc"]]
            msg = (
                f"a table of settings, not {_given(e['input'], '')}: [{'.'.join(at)}] and its "
                f"keys in the file, {_env_name(at)}__<KEY> in the environment"
            )
        elif e["type"] == "value_error":  # a validator's own message says what is wrong
            msg = msg.removeprefix("Value error, ")
        elif e["type"] in _TYPE_ERRORS and not isinstance(e["input"], dict | list):
            given = _given(e["input"], e["type"], advise=_in_file(data or {}, e["loc"]))
            msg += f" (got {given})"
        lines.append(f"  {loc}: {msg}{given_by}")
    if from_env == len(err.errors()):
        lines[0] = "invalid configuration (environment):"
    elif from_env:
        lines[0] = f"invalid configuration ({origin} and the environment):"
    return "\n".join(lines)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8 (a trial's UTF-16 file: a traceback)
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}): TOML files are UTF-8"
        ) from exc
    except OSError as exc:  # a directory, a file it may not read
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc


def _lists_as_text(model: type[BaseModel], data: Any, at: str = "") -> list[str]:
    """The list settings the config file gives as a string (``allowed_hosts = "a,b"``),
    dotted, in the model's order. Comma-separated text is the environment's spelling of a
    list (``ListSetting``); in the file, as for every other type, a list is written as one."""
    if not isinstance(data, dict):
        return []
    found: list[str] = []
    for name, field in model.model_fields.items():
        if name not in data:
            continue
        value, key = data[name], f"{at}{name}"
        if NoDecode in field.metadata and isinstance(value, str):
            found.append(key)
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found += _lists_as_text(ann, value, key + ".")
        elif get_origin(ann) is dict and isinstance(value, dict):
            inner = get_args(ann)[1]
            for k, v in value.items():
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    found += _lists_as_text(inner, v, f"{key}.{k}.")
                elif get_origin(inner) is list and isinstance(v, str):
                    found.append(f"{key}.{k}")  # routing.ladders.<name>
    return found


def load_settings(
    config: Path | str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """Build settings from file + env + overrides; raise ConfigError naming the bad key."""
    path_s = config if config is not None else os.environ.get(f"{ENV_PREFIX}CONFIG")
    path = Path(path_s) if path_s else None
    data: dict[str, Any] = _read_toml(path) if path else {}
    origin = str(path) if path else "environment/defaults"
    # named with the other errors (a docs trial: a list given as text hid them)
    listed = [
        f'  {key}: Input should be a valid list (got a string: write a list, e.g. ["a", "b"])'
        for key in _lists_as_text(Settings, data)
    ]
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        first, *rest = _format_validation_error(exc, origin, data).split("\n")
        if listed and first == "invalid configuration (environment):":
            first = f"invalid configuration ({origin} and the environment):"
        raise ConfigError("\n".join([first, *listed, *rest])) from exc
    if listed:
        raise ConfigError("\n".join([f"invalid configuration ({origin}):", *listed]))
    for section, values in (overrides or {}).items():  # command-line flags
        sect = getattr(settings, section)
        for key, value in values.items():
            if value is None:
                continue
            try:
                setattr(sect, key, value)
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"]
                flag = "--" + key.replace("_", "-")
                raise ConfigError(
                    f"invalid command-line flag {flag} ({section}.{key}): {msg}"
                ) from exc
    return settings


@dataclass(frozen=True)
class SettingValue:
    key: str  # dotted, e.g. "server.port"
    value: Any
    source: str  # "default" | "env:NAME" | "file:PATH" | "cli"
    description: str


def _env_name(parts: list[str]) -> str:
    return ENV_PREFIX + "__".join(p.upper().replace("-", "_") for p in parts)


def describe(
    settings: Settings,
    config: Path | str | None = None,
    cli_keys: set[str] | None = None,
) -> Iterator[SettingValue]:
    """Every leaf setting with its value and the source it came from."""
    path_s = config if config is not None else os.environ.get(f"{ENV_PREFIX}CONFIG")
    file_data = _read_toml(Path(path_s)) if path_s else {}
    env_lower = {k.lower() for k in os.environ}

    def source(parts: list[str], old_names: list[str]) -> str:
        dotted = ".".join(parts)
        if cli_keys and dotted in cli_keys:
            return "cli"
        spellings = [parts, *([*parts[:-1], old] for old in old_names)]
        for spelling in spellings:
            env = _env_name(spelling)
            if env.lower() in env_lower:
                return f"env:{env}"
            # a table's entries set one by one (BOUNDGATE_ROUTING__LADDERS__SMALL=a,b)
            entries = sorted(k for k in os.environ if k.lower().startswith(env.lower() + "__"))
            if entries:
                return "env:" + ",".join(entries)
        for spelling in spellings:
            node: Any = file_data
            for p in spelling:
                if not isinstance(node, dict) or p not in node:
                    break
                node = node[p]
            else:
                return f"file:{path_s}"
        return "default"

    def walk(model: BaseModel, prefix: list[str]) -> Iterator[SettingValue]:
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            parts = [*prefix, name]
            if isinstance(value, BaseModel):
                yield from walk(value, parts)
            elif (
                isinstance(value, dict)
                and value
                and all(isinstance(v, BaseModel) for v in value.values())
            ):  # models.<name>, routing.policy.<task>
                for mname, m in value.items():
                    yield from walk(m, [*parts, mname])
            else:
                old_names = [o for o, n in getattr(type(model), "renamed", {}).items() if n == name]
                src = source(parts, old_names)
                if isinstance(value, str) and parts == ["store", "url"]:
                    value = redact_url(value)
                yield SettingValue(".".join(parts), value, src, field.description or "")

    yield from walk(settings, [])


def _bounds(field: Any) -> str:
    """A field's numeric bounds for the reference, ", ≥ 0, ≤ 5" (a trial set
    ``store.key_cache_s`` to 30 and learnt its bound from the refusal)."""
    marks = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    out = []
    for item in field.metadata:
        for attr, mark in marks.items():
            value = getattr(item, attr, None)
            if value is not None:
                out.append(f"{mark} {value}")
    return "".join(f", {b}" for b in out)


def reference_markdown() -> str:
    """The settings reference table for docs/configuration.md, generated from the fields."""
    sections: list[tuple[str, type[BaseModel]]] = [
        ("server", ServerSettings),
        ("limits", LimitsSettings),
        ("store", StoreSettings),
        ("energy", EnergySettings),
        ("reuse", ReuseSettings),
        ("scheduler", SchedulerSettings),
        ("grid", GridSettings),
        ("creativity", CreativitySettings),
        ("reasoning", ReasoningSettings),
        ("dashboard", DashboardSettings),
        ("routing", RoutingSettings),
        ("routing.policy.<task>", TaskPolicy),
        ("models.<name>", ModelSettings),
    ]
    lines = []
    for section, cls in sections:
        lines += [
            f"### `[{section}]`",
            "",
            "| key | type | default | env | meaning |",
            "|---|---|---|---|---|",
        ]
        for name, field in cls.model_fields.items():
            if field.is_required():
                default = "required"
            elif field.default_factory is not None:
                value = field.default_factory()  # type: ignore[call-arg]
                if isinstance(value, BaseModel):
                    value = value.model_dump(mode="json")
                elif isinstance(value, dict) and all(
                    isinstance(v, BaseModel) for v in value.values()
                ):
                    value = {k: v.model_dump(mode="json") for k, v in value.items()}
                default = f"`{value!r}`"
            else:
                default = f"`{field.default!s}`" if field.default is not None else "unset"
            ann = str(field.annotation).replace("typing.", "").replace("pathlib.", "")
            ann = ann.replace("<class '", "").replace("'>", "").replace("|", "\\|")
            ann = re.sub(r"boundgate\.settings\.\w+\.", "boundgate.settings.", ann)  # re-exported
            ann += _bounds(field)
            env = _env_name([*section.replace("<name>", "NAME").split("."), name])
            lines.append(f"| `{name}` | {ann} | {default} | `{env}` | {field.description} |")
        lines.append("")
    return "\n".join(lines)
