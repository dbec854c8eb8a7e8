"""The one declaration of every setting.

Sources, highest priority first: command-line flags (``serve --host/--port/--data-dir``),
``BOUNDGATE_*`` environment variables (nested keys joined with ``__``, e.g.
``BOUNDGATE_SERVER__PORT=9000`` or ``BOUNDGATE_MODELS__MY_UPSTREAM__BASE_URL=...``; a list as
comma-separated items or a JSON array, a table as a JSON object), the TOML
file named by ``--config`` or ``BOUNDGATE_CONFIG``, then the defaults below. Unknown keys, a
variable ``BOUNDGATE_<NAME>__…`` whose name is no section, and (in the file) a value of
another type than its setting's are errors, so a typo fails at start instead of being
silently ignored or read as something else.

``docs/configuration.md`` documents these fields; ``boundgate settings`` prints every one with
its value and where that value came from.
"""

from .base import DEFAULT_MODEL_NAME, EMBEDDING_MODEL, ENV_PREFIX
from .loading import (
    ConfigError,
    Settings,
    SettingValue,
    describe,
    load_settings,
    redact_url,
    reference_markdown,
)
from .reuse import ReuseSettings
from .routing import (
    ESCALATION_TRIGGERS,
    REASONING_EFFORTS,
    TASK_NAMES,
    ModelSettings,
    ReasoningEffort,
    ReasoningSettings,
    RoutingSettings,
    TaskPolicy,
    Trigger,
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

__all__ = [
    "DEFAULT_MODEL_NAME",
    "EMBEDDING_MODEL",
    "ENV_PREFIX",
    "ESCALATION_TRIGGERS",
    "REASONING_EFFORTS",
    "TASK_NAMES",
    "ConfigError",
    "CreativitySettings",
    "DashboardSettings",
    "EnergySettings",
    "GridSettings",
    "LimitsSettings",
    "ModelSettings",
    "ReasoningEffort",
    "ReasoningSettings",
    "ReuseSettings",
    "RoutingSettings",
    "SchedulerSettings",
    "ServerSettings",
    "SettingValue",
    "Settings",
    "StoreSettings",
    "TaskPolicy",
    "Trigger",
    "describe",
    "load_settings",
    "redact_url",
    "reference_markdown",
]
