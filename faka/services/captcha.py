"""The proof-of-work captcha (ALTCHA): the risk engine asks for it when a visitor looks
automated. Self-hosted, no outside service; the visitor's browser solves it by itself."""


def challenge() -> dict:
    """A new signed challenge for the widget."""
    raise NotImplementedError


FIELD = "altcha"  # the form field the widget fills with its solution


def solved(form) -> bool:
    """Whether a submitted form carries a valid solution."""
    return verify(form.get(FIELD))


def verify(payload: str | None) -> bool:
    """True for a correct, unexpired solution of a challenge we signed, used once."""
    return False
