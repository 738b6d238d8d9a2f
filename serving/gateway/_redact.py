"""Redaction of captured text (``gateway.capture.redact``).

Masks emails, phone numbers, provider keys (OpenAI ``sk-``, Stripe ``sk_live_``, GitHub
``ghp_``/``github_pat_``, Google ``AIza``, AWS ``AKIA``, Slack, JWTs, long hex) and PEM
blocks. Every pattern is bounded, so a pass is linear in the text's length; text beyond
``max_chars`` is not kept. Dates and IP addresses are not taken for phone numbers. The
capture writer runs this in its thread, off the event loop.
"""

from __future__ import annotations

import re

DEFAULT_MAX_CHARS = 200_000
CUT_MARK = "[CUT]"

_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{1,40}-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{1,40}-----")
_SECRET = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-(?:proj-)?[A-Za-z0-9_-]{16,200}"
    r"|sk_(?:live|test)_[A-Za-z0-9]{16,200}"
    r"|rk_(?:live|test)_[A-Za-z0-9]{16,200}"
    r"|gvl_[A-Za-z0-9_-]{16,200}"
    r"|github_pat_[A-Za-z0-9_]{20,255}"
    r"|gh[pousr]_[A-Za-z0-9]{20,255}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|AKIA[0-9A-Z]{16}"
    r"|xox[baprs]-[A-Za-z0-9-]{10,200}"
    r"|eyJ[A-Za-z0-9_-]{10,2000}\.[A-Za-z0-9_-]{10,2000}\.[A-Za-z0-9_-]{10,2000}"
    r"|[A-Fa-f0-9]{32,512}"
    r")(?![A-Za-z0-9_-])"
)
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
)
# A phone number: an optional +, then 8-20 digits in groups split by one space, dot,
# dash or parenthesis. Bounded, and anchored on non-word edges.
_PHONE = re.compile(r"(?<![\w.+-])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w.-]?\d)")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _mask_pem(text: str) -> str:
    """Replace each BEGIN..END block; one forward scan (linear)."""
    out: list[str] = []
    pos = 0
    while True:
        begin = _PEM_BEGIN.search(text, pos)
        if begin is None:
            break
        end = _PEM_END.search(text, begin.end())
        if end is None:
            break  # no END after this BEGIN, so none after any later BEGIN either
        out.append(text[pos : begin.start()])
        out.append("[PEM]")
        pos = end.end()
    out.append(text[pos:])
    return "".join(out)


def _phone(match: re.Match[str]) -> str:
    found = match.group(0)
    digits = sum(ch.isdigit() for ch in found)
    if digits < 8 or _DATE.fullmatch(found) or _IPV4.fullmatch(found):
        return found
    return "[PHONE]"


def redact(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Mask secrets, PEM blocks, emails and phone numbers; keep at most ``max_chars``."""
    cut = len(text) > max_chars
    if cut:
        text = text[:max_chars]
    text = _mask_pem(text)
    text = _SECRET.sub("[SECRET]", text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _PHONE.sub(_phone, text)
    return text + CUT_MARK if cut else text


def redact_obj(value: object, *, max_chars: int = DEFAULT_MAX_CHARS) -> object:
    """Apply :func:`redact` to every string inside a JSON-like value."""
    if isinstance(value, str):
        return redact(value, max_chars=max_chars)
    if isinstance(value, list):
        return [redact_obj(v, max_chars=max_chars) for v in value]
    if isinstance(value, dict):
        return {k: redact_obj(v, max_chars=max_chars) for k, v in value.items()}
    return value
