"""Answers that decline to answer: a refusal ("I'm sorry, but I can't help with that"), a
statement of what the model cannot do ("as a chatbot …, I don't have the ability to …", "I
don't have real-time capabilities") or a request to clarify ("Could you please clarify what
you mean?").

Such an answer speaks of the prompt as it was worded and of the model, not of what the prompt
asks: SmolLM2-135M declined "grapes dogs safe" ("I'm sorry for any misunderstanding, but as a
chatbot designed to assist with the most basic of tasks, I don't have the ability to …") and
answers "My dog ate grapes, what do I do?" (measured here, greedy, 2026-12-08). Served to a
paraphrase, it is a non-answer given for another wording (a new user saw that one served
twice by meaning). So a declining answer is stored and reused for its exact request only
(``ReuseEngine.by_meaning``: no vector, never a semantic candidate), and it labels nothing
(``Labelling.settle``): a refusal beside an answer says nothing of whether the questions ask
the same, and two refusals are alike whatever was asked. An OpenAI ``refusal`` field is not
stored at all (``ReuseEngine.remember``).

The phrases are read in the answer's opening only (``OPENING_CHARS``, up to its first
sentence end after that), where a model declines (the refusal prefixes of Zou et al. 2023,
"Universal and Transferable Adversarial Attacks on Aligned Language Models", and of later
refusal evaluations open the same way); an apology or "I can't" further on, in an answer
that answers ("I'm sorry to hear that. Grapes are toxic to dogs …", "I can't stress enough
…"), is no refusal. A refusal missed here is reused as before; an answer taken for one is
still reused exactly.
"""

from __future__ import annotations

import re

OPENING_CHARS = 240  # the opening read for a refusal: the first sentence, at most about this

# "I can't help", "I'm unable to provide", "we cannot assist", "I won't be able to answer"
_CANNOT = (
    r"(?:i|we)\s*(?:['’]m|\s+am|['’]re|\s+are)?\s*"
    r"(?:can['’]?t|cannot|can\s+not|unable\s+to|not\s+able\s+to|won['’]t\s+be\s+able\s+to"
    r"|will\s+not\s+be\s+able\s+to|must\s+(?:decline|refuse)|won['’]t|will\s+not)"
)
_DECLINED = (
    r"(?:help|assist|provide|answer|respond|give|offer|fulfil+|comply|create|generate|write"
    r"|share|browse|access|tell|predict|look\s+up|check|see|know|engage|support|discuss"
    r"|recommend|diagnose|complete|perform|do\s+that|do\s+this|process|verify|confirm"
    r"|search|retrieve|determine|make)"
)
# "I don't have the ability", "I do not have access to", "I don't have real-time …"
_LACKS = (
    r"(?:i|we)\s+(?:don['’]?t|do\s+not)\s+have\s+(?:the\s+|any\s+)?"
    r"(?:ability|abilities|capabilit\w+|access|real[-\s]?time|live|personal\s+(?:data|information"
    r"|opinions|experiences)|information\s+(?:about|on)|means|browsing)"
)
_CLARIFY = (
    r"(?:could|can|would)\s+you\s+(?:please\s+)?(?:clarify|rephrase|provide\s+more"
    r"|specify|elaborate|give\s+(?:me\s+)?more)"
    r"|i['’]?m\s+not\s+sure\s+(?:what\s+you|i\s+understand)|i\s+(?:don['’]?t|do\s+not)\s+understand"
)
_DECLINING = re.compile(
    rf"\b(?:{_CANNOT}\s+(?:\w+\s+){{0,2}}?{_DECLINED}\b|{_LACKS}|{_CLARIFY}"
    rf"|as\s+an?\s+(?:ai|language\s+model|large\s+language\s+model)\b[^.!?]{{0,40}}\bi\s+"
    rf"(?:can['’]?t|cannot|don['’]?t|do\s+not|am\s+not|['’]m\s+not))",
    re.IGNORECASE,
)
_APOLOGY = re.compile(
    r"\s*(?:i['’]?m\s+(?:so\s+|very\s+|really\s+)?sorry|i\s+am\s+sorry|sorry|i\s+apologi[sz]e|(?:my\s+)?apologies|unfortunately)\b",
    re.IGNORECASE,
)
# a sentence ends at ".!?" before a space or a line break
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def opening(answer: str) -> str:
    """The start of ``answer`` where a refusal is read: its first sentence (cut after about
    ``OPENING_CHARS`` characters, at the end of the sentence they cut), and the next one too
    when the first only apologises ("I'm sorry. I can't help with that.")."""
    text = answer.lstrip()
    first = _sentence(text)
    if _APOLOGY.match(first) and _DECLINING.search(first) is None:
        return first + _sentence(text[len(first) :])
    return first


def _sentence(text: str) -> str:
    end = _SENTENCE_END.search(text, 0)
    if end is not None and end.end() <= OPENING_CHARS:
        return text[: end.end()]
    cut = _SENTENCE_END.search(text, OPENING_CHARS)
    return text[: cut.end()] if cut is not None else text


def is_refusal(answer: str) -> bool:
    """Whether ``answer`` declines to answer in its opening (``opening``): a first person
    that cannot, will not or is unable to help, answer, provide … (up to two words between:
    "I can't really help"), that does not have the ability, access or real-time data, asks
    to clarify or rephrase, or says it does not understand; or "as an AI …, I can't/don't".
    Empty text is no refusal (it is not stored anyway)."""
    return _DECLINING.search(opening(answer)) is not None
