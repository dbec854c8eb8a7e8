"""``model: "auto"``: which ladder and rung a request starts on, when to climb, what it saved.

A *ladder* is an ordered list of configured models, smallest first (``[routing.ladders]``).
For an auto request the :class:`Router` classifies the prompt's task (the configured
``TaskClassifier``, run in a worker thread; without one every request is ``unclassified``),
and the policy table maps the task to a ladder, the first rung to try and whether reasoning is
allowed. The gateway then runs the rungs in order through its normal pipeline and stops at the
first answer that passes the cheap checks of :meth:`Router.escalation`:

- ``empty``: the answer is blank;
- ``length``: the answer was cut (``finish_reason: "length"``) and the client did not set
  ``max_tokens`` itself (a small model running into the gateway's default limit is usually
  looping), or it stopped before the client's limit (its context window ran out). A client
  that set its own limit asked for the cut, and a larger model would be cut there too;
- ``refusal``: the answer's opening matches one of the refusal patterns (package data
  ``data/refusals.txt``);
- ``error``: the rung failed with a 5xx-class error (upstream down, queue full, timeout),
  reported as ``error``, or the prompt does not fit its context window, reported as
  ``context``;
- ``logprob``: (local models, tasks whose policy sets ``logprob``: by default mathematics
  and lookups) the answer's mean token log-probability is below the rung's threshold
  (:meth:`Router.logprob_threshold`): ``routing.logprob_thresholds``, else the value
  calibrated for the model's weights by ``training/logprob_calibration.py`` and shipped in
  ``data/logprob_thresholds.json``.

The last rung's answer is returned whatever it is.

What right-sizing saved (:meth:`Route.savings`): the energy the ladder's top rung would have
spent on the answer is the counterfactual, from the top rung's measured energy profile on this
host when it has one, else the per-token estimate (EcoLogits, ``TokenEstimateMeter``),
always labelled an estimate
(``profiles.EnergyProfiles.estimate``, called by the gateway); the energy
avoided is that minus what the tried rungs spent, never below 0 and never above the
counterfactual, and 0 when the top rung answered or the answer was reused (reuse claims its
own avoided energy).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..backends.base import Backend, Completion, GenerationRequest
from ..energy import Measurement
from ..errors import BoundgateError, ContextLengthExceededError, ModelNotFoundError, shown
from ..settings import EnergySettings, RoutingSettings, TaskPolicy
from .tasks import TaskClassifier

UNCLASSIFIED = "unclassified"
REFUSAL_WINDOW_CHARS = 200  # refusals open an answer; only its start is matched


def load_refusal_patterns(path: Path | None = None) -> list[re.Pattern[str]]:
    """Compiled refusal regexes from ``path`` or the bundled list (one a line, ``#``
    comments, case-insensitive). Raises ``re.error`` on a bad pattern."""
    if path is None:
        text = resources.files("boundgate.routing").joinpath("data/refusals.txt").read_text()
    else:
        text = path.read_text()
    lines = (ln.strip() for ln in text.splitlines())
    return [re.compile(ln, re.IGNORECASE) for ln in lines if ln and not ln.startswith("#")]


def load_logprob_thresholds() -> dict[str, float]:
    """The shipped calibrated thresholds: model version (``Backend.version``) → mean token
    log-probability (nats per token) below which an answer escalates. Written by
    ``training/logprob_calibration.py``; each entry of the file also says how it was fitted."""
    path = resources.files("boundgate.routing").joinpath("data/logprob_thresholds.json")
    data = json.loads(path.read_text())
    return {version: float(entry["threshold_nats"]) for version, entry in data["models"].items()}


@dataclass(frozen=True)
class RoutePlan:
    """Where an auto request starts: its task, ladder, the rungs to try (first rung onward,
    configured model names) and the ladder's top rung (the counterfactual)."""

    task: str
    ladder: str
    rungs: tuple[str, ...]
    top: str
    reasoning: bool
    probability: float | None = None  # the classifier's probability for ``task``
    logprob: bool = False  # the task's policy applies the log-probability check


@dataclass
class Route:
    """What happened to one auto request: each rung tried and why it was left."""

    plan: RoutePlan
    steps: list[tuple[str, str]] = field(default_factory=list)  # (model, outcome)
    counterfactual_wh: float = 0.0  # the top rung's estimated energy for the answer
    avoided_wh: float = 0.0  # energy avoided by right-sizing (≥ 0, ≤ counterfactual_wh)
    avoided_gco2: float = 0.0
    # the rung whose answer is returned: the last step's (answered, reused), or a lower
    # rung's escalated answer when the budget stopped the climb (``kept``); None: no answer
    answering_model: str | None = None
    kept_escalated: bool = False  # the answer returned is one the route escalated from

    def escalated(self, model: str, reason: str) -> None:
        self.steps.append((model, f"escalated={reason}"))

    def answered(self, model: str, reused: bool) -> None:
        self.steps.append((model, "reused" if reused else "answered"))
        self.answering_model = model

    def failed(self, model: str) -> None:
        """``model``'s error ended the request (the last rung, or an error that does not
        escalate)."""
        self.steps.append((model, "failed"))

    def cancelled(self, model: str) -> None:
        """The client left while ``model`` was the rung running."""
        self.steps.append((model, "cancelled"))

    def skipped(self, model: str, reason: str) -> None:
        """``model`` was not run (``budget``: the daily budget could not cover it and it held
        no stored answer)."""
        self.steps.append((model, f"skipped={reason}"))

    def kept(self, model: str) -> None:
        """The climb stopped (the budget) and ``model``'s escalated answer is returned."""
        self.answering_model = model
        self.kept_escalated = True

    def header(self) -> str:
        """``x-boundgate-route``: ``model;outcome`` per rung tried, in order, comma-separated,
        e.g. ``smollm2-135m;escalated=length, my-upstream;answered``. Outcomes: ``answered``,
        ``reused``, ``escalated=<reason>``, ``skipped=budget``, ``failed``, ``cancelled``."""
        return ", ".join(f"{m};{o}" for m, o in self.steps)

    def savings(
        self, counterfactual: Measurement, spent_wh: float, gco2_per_kwh: float, reused: bool
    ) -> None:
        """Set the counterfactual and the energy avoided (Wh) and its carbon (g): 0 when the
        top rung answered, the answer was reused, or the answer is one the route escalated
        from that the budget made it keep (``kept``: no smaller model was found adequate, the
        larger were not run; a trial's looping 1,024-token answer, escalated for its length,
        claimed 12.75 Wh avoided), else max(0, counterfactual − spent)."""
        self.counterfactual_wh = counterfactual.wh
        top_answered = self.answering_model == self.plan.top
        none = reused or top_answered or self.kept_escalated
        avoided = 0.0 if none else max(0.0, counterfactual.wh - spent_wh)
        self.avoided_wh = min(avoided, counterfactual.wh)
        self.avoided_gco2 = self.avoided_wh * gco2_per_kwh / 1000.0

    def fields(self) -> dict[str, object]:
        """The route's ledger columns and response fields (``boundgate`` object)."""
        return {
            "task": self.plan.task,
            "route": self.header(),
            "counterfactual_wh": self.counterfactual_wh,
            "rightsizing_avoided_wh": self.avoided_wh,
            "rightsizing_avoided_gco2": self.avoided_gco2,
        }


def _prompt_text(req: GenerationRequest) -> str:
    if req.prompt is not None:
        return req.prompt
    users = [m.content for m in req.messages or [] if m.role == "user"]
    return users[-1] if users else ""


class Router:
    """The routing policy of ``[routing]``: plans auto requests and judges their answers.

    ``ladders`` must name configured models only (``Settings`` checks this at start);
    ``aliases`` maps other model names to configured ones."""

    def __init__(
        self,
        settings: RoutingSettings,
        energy: EnergySettings,
        *,
        default_model: str,
        aliases: dict[str, str],
        classifier: TaskClassifier | None,
    ) -> None:
        self.settings = settings
        self.energy = energy
        self.auto_model = settings.auto_model
        self.classifier = classifier
        self.ladders = {
            name: tuple(aliases.get(m, m) for m in rungs)
            for name, rungs in {"default": [default_model], **settings.ladders}.items()
        }
        self.triggers = frozenset(settings.escalate_on)
        self.refusals = load_refusal_patterns(settings.refusal_patterns)
        self.calibrated_logprob = load_logprob_thresholds()
        self.aliases = aliases

    def logprob_threshold(self, backend: Backend) -> float | None:
        """The mean token log-probability (nats per token) below which ``backend``'s answer
        escalates as ``logprob``, or None (the trigger is off, or the model has no threshold):
        ``routing.logprob_thresholds`` by model name (0 turns it off), else the calibrated value
        shipped for the backend's version, else None. Upstream models report no
        log-probabilities, so only local rungs are checked."""
        if "logprob" not in self.triggers or backend.remote:
            return None
        configured = self.settings.logprob_thresholds
        for name, threshold in configured.items():
            if self.aliases.get(name, name) == backend.name:
                return threshold if threshold < 0 else None
        return self.calibrated_logprob.get(backend.version)

    def is_auto(self, model: str | None) -> bool:
        return model is not None and (
            model == self.auto_model or model.startswith(self.auto_model + ":")
        )

    def model_names(self) -> list[str]:
        """The names clients may send: the auto model and ``auto:<ladder>`` for each ladder."""
        return [self.auto_model, *(f"{self.auto_model}:{name}" for name in self.ladders)]

    def ladders_of(self, name: str) -> dict[str, list[str]]:
        """What a name of ``model_names`` routes over: ladder → its rungs (configured model
        names, smallest first); every ladder for the auto model, the one it names for
        ``auto:<ladder>``."""
        ladder = name.removeprefix(self.auto_model).removeprefix(":")
        return {k: list(v) for k, v in self.ladders.items() if not ladder or k == ladder}

    def _policy(self, task: str) -> TaskPolicy:
        return self.settings.policy.get(task, self.settings.unclassified)

    async def plan(self, req: GenerationRequest) -> RoutePlan:
        """The plan for an auto request. ``auto:<ladder>`` uses that ladder from its first
        rung. Raises ``ModelNotFoundError`` (404) for an unknown ladder."""
        model = req.model
        probability: float | None = None
        if self.classifier is not None:
            prediction = await asyncio.to_thread(self.classifier.classify, _prompt_text(req))
            task, probability = str(prediction.task), prediction.probability
        else:
            task = UNCLASSIFIED
        policy = self._policy(task)
        ladder, first = policy.ladder, policy.first_rung
        if model != self.auto_model:
            ladder = model.removeprefix(self.auto_model + ":")
            if ladder not in self.ladders:
                raise ModelNotFoundError(
                    f"The model '{shown(model)}' does not exist: no ladder "
                    f"'{shown(ladder)}'; ladders: {', '.join(sorted(self.ladders))}",
                    param="model",
                )
            if ladder != policy.ladder:
                first = 0
        rungs = self.ladders[ladder]
        first = min(first, len(rungs) - 1)  # the default policy's rung 1 on a one-rung ladder
        return RoutePlan(
            task,
            ladder,
            rungs[first:],
            rungs[-1],
            policy.reasoning,
            probability=probability,
            logprob=policy.logprob,
        )

    def escalation(
        self,
        completion: Completion,
        max_tokens: int,
        client_limit: bool,
        logprob_threshold: float | None = None,
    ) -> str | None:
        """Why this answer should go to the next rung, or None to keep it. ``max_tokens`` is
        the limit the rung ran with; ``client_limit`` whether the client set it;
        ``logprob_threshold`` the rung's (:meth:`logprob_threshold`, nats per token). An
        answer without a mean log-probability (reused, upstream) passes the log-probability
        check."""
        text = completion.text
        if "empty" in self.triggers and not text.strip():
            return "empty"
        if (
            "length" in self.triggers
            and completion.finish_reason == "length"
            and (not client_limit or completion.usage.completion_tokens < max_tokens)
        ):
            return "length"
        if "refusal" in self.triggers:
            opening = text[:REFUSAL_WINDOW_CHARS]
            if any(p.search(opening) for p in self.refusals):
                return "refusal"
        mean = completion.mean_token_logprob
        if logprob_threshold is not None and mean is not None and mean < logprob_threshold:
            return "logprob"
        return None

    def escalates_error(self, err: BoundgateError) -> str | None:
        """Why a rung's error sends the request to the next rung (``error``: 5xx-class;
        ``context``: the prompt does not fit the rung's context window), or None."""
        if "error" not in self.triggers:
            return None
        if isinstance(err, ContextLengthExceededError):
            return "context"
        return "error" if err.status_code >= 500 else None
