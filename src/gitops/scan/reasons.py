"""The rules a suppression's reason is held to: it must say what makes the exception safe, to a reviewer.

Each rule has a name, given in the refusal, so a reader can look it up here:

- reason-too-short: fewer than MIN_REASON characters;
- reason-repeated-character: one character (or two) repeated, `xxxxxxxxxxxxxxxxxxxx`, `ab ab ab ...`;
- reason-placeholder: filler that says nothing yet (TODO, TBD, FIXME, lorem ipsum, n/a, xxx, WIP ...);
- reason-just-suppression: it says only that the finding is suppressed, accepted or a false positive;
- reason-too-few-words: fewer than MIN_WORDS distinct words once filler (the, is, ok, ...) is left out;
- reason-restates-rule: what is left after taking out the rule id and the resource names is too few words.
"""

from __future__ import annotations

import re

MIN_REASON = 20
MIN_WORDS = 4
MIN_CHARACTERS = 5  # distinct letters and digits
# Words that carry no reason of their own.
FILLER = frozenset(
    "a an the is are was be been it its this that these those to of in on at by for from with and or but not no"
    " as so we i our ok okay fine yes just here there".split()
)
PLACEHOLDERS = re.compile(
    r"\b(todo|tbd|tba|fixme|xxx+|lorem|ipsum|changeme|asdf|qwerty|n/a|wip)\b",
    re.IGNORECASE,
)
# A reason that only says it is an exception, not why the exception is safe.
NO_REASON = re.compile(
    r"^((this|the) (finding|check|rule|alert|warning) (is|was) |this is |it is |it's )?(a |an )?(known )?"
    r"(false positive|accepted|acceptable|suppressed|not (an )?issue|not relevant|known issue|by design|intended|"
    r"expected|needed|required|ignore|ignored|skip|skipped)[\s.!]*$",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z][a-z0-9'*:/._-]*", re.IGNORECASE)


def words(text: str) -> set[str]:
    """The distinct words of a text, lower-cased, filler left out."""
    return {w.strip("'._-:/").lower() for w in _WORD.findall(text)} - FILLER - {""}


def refusal(reason: str, names: tuple[str, ...] = ()) -> str | None:
    """Why the reason is refused, as `<rule>: <what to do>`, or None when it says something.

    names: the rule id and resources the suppression names (a reason that only repeats them says nothing).
    """
    text = " ".join(reason.split())
    if len(text) < MIN_REASON:
        return f"reason-too-short: say why the finding is acceptable in at least {MIN_REASON} characters"
    if len({c.lower() for c in text if c.isalnum()}) < MIN_CHARACTERS:
        return "reason-repeated-character: a repeated character is not a reason; say what makes the exception safe"
    placeholder = PLACEHOLDERS.search(text)
    if placeholder:
        return f"reason-placeholder: '{placeholder.group(0)}' is a placeholder; say what makes the exception safe"
    if NO_REASON.match(text):
        return "reason-just-suppression: it says the finding is an exception, not why the exception is safe"
    said = words(text)
    if len(said) < MIN_WORDS:
        return (
            f"reason-too-few-words: {len(said)} distinct word(s); say in at least {MIN_WORDS} what makes the"
            " exception safe"
        )
    named = set()
    for name in names:
        named |= words(name) | {part.lower() for part in re.split(r"[/\[\]:]+", name) if part}
    if names and len(said - named) < MIN_WORDS:
        return (
            "reason-restates-rule: beyond the rule id and resource names it says too little; say what makes the"
            " exception safe"
        )
    return None
