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

The phrases are read in the answer's opening only (the sentences that start within its first
``OPENING_CHARS`` characters), where a model declines (the refusal prefixes of Zou et al.
2023, "Universal and Transferable Adversarial Attacks on Aligned Language Models", and of
later refusal evaluations open the same way), and only as a first person who cannot help,
answer, provide …: an apology or a "can't" in an answer that answers ("I'm sorry to hear
that. Grapes are toxic to dogs …", "I can't stress enough …", "If you can't find …") is no
refusal. Measured on SmolLM2-135M's greedy answers to 300 chat_heldout questions: 14 decline
or speak of the model instead of answering, all 14 read as such, none of the other 286
(bench/RESULTS.md, 2026-12-08); about 18 µs an answer on this machine's 2 cores. A refusal
missed here is reused as before; an answer taken for one is still reused exactly.
"""

from __future__ import annotations

import re

OPENING_CHARS = 240  # the opening read: the sentences that start within this many characters

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
# "I'm not equipped to provide", "I am not designed to"
_NOT_MADE = (
    r"(?:i|we)\s*(?:['’]m|\s+am|['’]re|\s+are)\s+not\s+(?:equipped|designed|programmed|built)"
    r"\s+to"
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
    r"|i['’]?m\s+not\s+sure\s+(?:what\s+you|i\s+understand)"
    r"|i\s+(?:don['’]?t|do\s+not)\s+understand"
)
_DECLINING = re.compile(
    rf"\b(?:{_CANNOT}\s+(?:\w+\s+){{0,2}}?{_DECLINED}\b|{_NOT_MADE}|{_LACKS}|{_CLARIFY}"
    rf"|as\s+an?\s+(?:ai|language\s+model|large\s+language\s+model)\b[^.!?]{{0,40}}\bi\s+"
    rf"(?:can['’]?t|cannot|don['’]?t|do\s+not|am\s+not|['’]m\s+not))",
    re.IGNORECASE,
)
# an answer that speaks of the model instead of answering: its first sentence opens with
# "I'm", its second with "I", and one offers help in general ("I'm sorry for any
# misglamour. I'm here to help you with whatever you're going through.", "I'm glad you're
# interested in bringing liquids in your carry on. I can help with that.")
_OPENS_WITH_I = re.compile(r"\s*i(?:\s|['’]m\b|['’]ve\b|['’]d\b)", re.IGNORECASE)
_OPENS_WITH_IM = re.compile(r"\s*i\s*(?:['’]m|\s+am)\b", re.IGNORECASE)
_OFFERS_HELP = re.compile(
    r"\bi\s*(?:['’]m|\s+am)\s+(?:just\s+)?here\s+to\s+(?:help|assist|support)\b"
    r"|\bi\s+can\s+(?:certainly\s+|definitely\s+)?(?:help|assist)\s+(?:you\s+)?with"
    r"\s+(?:that|this|any)\b",
    re.IGNORECASE,
)
# a sentence ends at ".!?" before a space or a line break
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def opening(answer: str) -> str:
    """The start of ``answer`` where a refusal is read: the sentences that start within its
    first ``OPENING_CHARS`` characters ("Toilex: Ahem! I'm sorry …, but as a text-based AI,
    I don't have the capability to unclog a toilet.", a new user's)."""
    text = answer.lstrip()
    if len(text) <= OPENING_CHARS:
        return text
    cut = _SENTENCE_END.search(text, OPENING_CHARS)
    return text[: cut.end()] if cut is not None else text


def is_refusal(answer: str) -> bool:
    """Whether ``answer`` declines to answer in its opening (``opening``): a first person
    that cannot, will not or is unable to help, answer, provide … (up to two words between:
    "I can't really help"), that does not have the ability, access or real-time data, asks
    to clarify or rephrase, says it does not understand or is not equipped or designed to; or
    "as an AI …, I can't/don't"; or an answer that speaks of the model instead: its first
    sentence opens with "I'm", its second with "I", and one offers help in general ("I'm
    here to help", "I can help with that"; "I'm sorry for any misglamour. I'm here to help
    you with whatever you're going through.", SmolLM2's answer to "cat throwing up
    hairball", which a new user was served for its paraphrases). Empty text is no refusal
    (it is not stored anyway)."""
    start = opening(answer)
    if _DECLINING.search(start) is not None:
        return True
    ends = [m.end() for m in _SENTENCE_END.finditer(start)][:2]
    ends += [len(start)] * (2 - len(ends))  # (an answer cut mid-sentence)
    first, second = start[: ends[0]], start[ends[0] : ends[1]]
    return (
        _OPENS_WITH_IM.match(first) is not None
        and _OPENS_WITH_I.match(second) is not None
        and _OFFERS_HELP.search(first + second) is not None
    )
