"""Form fields that take numbers as a person types them, never as Python would parse them.

Python's Decimal reads "NaN", "sNaN", "Infinity" and "1e999" as numbers, and int() a
whole number of 400 digits: each then breaks a comparison (NumberRange asks
math.isnan), a rounding or a database column far from the form. Every number field of
every form is a DecimalField or IntegerField from here, which refuses them with a
message before a validator sees them.
"""

import re
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from wtforms import DecimalField as _DecimalField
from wtforms import IntegerField as _IntegerField
from wtforms.validators import StopValidation

NOT_A_NUMBER = _l("Enter a number, such as 12.50.")
TOO_LARGE = _l("That number is too large.")

# Digits with an optional point and sign: no exponent, no NaN or Infinity, no separators.
_PLAIN = re.compile(r"[+-]?(?:(\d+)(?:\.(\d*))?|\.(\d+))")
MAX_INTEGER_DIGITS = 9  # 999,999,999: above every amount and rate the shop has
MAX_FRACTION_DIGITS = 9
MAX_WHOLE_DIGITS = 18  # any larger whole number is no id, count or position (a 64-bit integer)


class DecimalField(_DecimalField):
    """A decimal of at most MAX_INTEGER_DIGITS digits before the point and
    MAX_FRACTION_DIGITS after it (full-width and other Unicode digits are digits too)."""

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        self.data = None
        text = valuelist[0].strip()
        if not text:
            return
        plain = _PLAIN.fullmatch(text)
        if plain is None or len(plain.group(2) or plain.group(3) or "") > MAX_FRACTION_DIGITS:
            raise ValueError(NOT_A_NUMBER)
        if len((plain.group(1) or "").lstrip("0")) > MAX_INTEGER_DIGITS:
            raise ValueError(TOO_LARGE)
        self.data = Decimal(text)

    def pre_validate(self, form):
        # A value that is no number gets its own message, not the range's as well.
        if self.process_errors:
            raise StopValidation()


class IntegerField(_IntegerField):
    """WTForms' IntegerField, refusing more than MAX_WHOLE_DIGITS digits."""

    def process_formdata(self, valuelist):
        if valuelist and len(valuelist[0].strip().lstrip("+-").lstrip("0")) > MAX_WHOLE_DIGITS:
            self.data = None
            raise ValueError(TOO_LARGE)
        super().process_formdata(valuelist)
