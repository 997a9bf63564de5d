"""Money is integer minor units (fen, cents); this is the one way it is written for people."""

CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "USDT": "USDT "}


def format_money(minor_units: int, currency: str = "CNY") -> str:
    """Integer minor units to a price: 4800 -> ¥48.00. No floats involved."""
    sign = "-" if minor_units < 0 else ""
    major, minor = divmod(abs(int(minor_units)), 100)
    return f"{sign}{CURRENCY_SYMBOLS.get(currency, currency + ' ')}{major:,}.{minor:02d}"
