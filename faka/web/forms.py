"""Forms shared by the buyer-facing blueprints."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import PasswordInput

from faka.core.errors import DomainError
from faka.web.fields import IntegerField


class CheckoutForm(FlaskForm):
    quantity = IntegerField(
        _l("Quantity"),
        validators=[
            InputRequired(_l("Enter a quantity.")),
            NumberRange(1, 100, _l("Quantity must be between 1 and 100.")),
        ],
    )
    email = EmailField(
        _l("Email (optional)"),
        validators=[Optional(), Length(max=254), Email(_l("Enter a valid email address."), check_deliverability=False)],
        description=_l("We send the keys here too, and you can find your orders with it."),
    )
    query_password = PasswordField(
        _l("Query password (optional)"),
        # Shown again (masked) when the form comes back with an error, so the buyer does
        # not lose it unknowingly; that answer is never cached (Cache-Control: no-store).
        widget=PasswordInput(hide_value=False),
        validators=[Optional(), Length(4, 64, _l("The query password must be 4 to 64 characters."))],
        description=_l(
            "Choose any 4+ characters. With the order number or email it lets you look up this order later."
        ),
    )
    coupon = StringField(
        _l("Coupon code (optional)"),
        validators=[Optional(), Length(max=32, message=_l("This coupon code is not valid."))],
    )
    # The key of the variant the buyer chose (radio buttons the template draws, only when
    # the product offers a choice); checkout refuses a key that is not one on offer.
    variant = StringField(
        _l("Option"), validators=[Optional(), Length(max=32, message=_l("Choose one of the product's options."))]
    )
    # Choices are the enabled gateways, set by the view; the view checks the choice.
    gateway = RadioField(_l("Pay with"), validate_choice=False)
    # A tick the buyer must give when the view sets terms_required (the site setting
    # require_terms_consent).
    agree_terms = BooleanField(_l("I agree to the terms of service"))
    terms_required = False

    def validate_agree_terms(self, field):
        if self.terms_required and not field.data:
            raise ValidationError(_l("Tick the box to agree to the terms of service before ordering."))


class LookupForm(FlaskForm):
    query = StringField(
        _l("Order number or email"),
        validators=[DataRequired(_l("Enter an order number or an email.")), Length(max=254)],
    )
    # The query password, or for an order placed without one, the email it was placed with
    # (faka/orders/lookup.py, find_by_number).
    query_password = PasswordField(
        _l("Query password, or email"),
        validators=[
            DataRequired(_l("Enter the query password, or the email of an order placed without one.")),
            Length(max=254, message=_l("That is too long for a query password or an email.")),
        ],
        description=_l(
            "The query password you chose when ordering. Ordered without one? Enter the order number "
            "above and the email you ordered with here."
        ),
    )


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter your email.")), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password.")), Length(max=128)])


# -- back-office accounts (sign-up, password reset, two-factor) -------------------------
from wtforms.validators import EqualTo  # noqa: E402

from faka.accounts.users import MIN_PASSWORD_LENGTH  # noqa: E402


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _new_password_field(label):
    return PasswordField(
        label,
        validators=[
            DataRequired(_l("Enter a password.")),
            Length(MIN_PASSWORD_LENGTH, 128, _l("Use 10 to 128 characters.")),
        ],
        description=_l("At least 10 characters, and not your email address."),
    )


class SignupForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        filters=[_strip],
        validators=[
            DataRequired(_l("Enter your email.")),
            Length(max=254),
            Email(_l("Enter a valid email address."), check_deliverability=False),
        ],
        description=_l("We send a link to confirm it."),
    )
    password = _new_password_field(_l("Password"))
    shop_name = StringField(
        _l("Shop name"),
        filters=[_strip],
        validators=[
            DataRequired(_l("Enter a name for your shop.")),
            Length(max=80, message=_l("Use at most 80 characters.")),
        ],
        description=_l("Buyers see it on your products. You can apply for approval after signing up."),
    )

    def validate_password(self, field):
        if self.email.data and field.data.strip().lower() == self.email.data.lower():
            raise ValidationError(_l("The password must not be your email address."))


class PasswordResetRequestForm(FlaskForm):
    # Not checked for form: an address that has no account gets the same answer anyway.
    email = EmailField(
        _l("Email"), filters=[_strip], validators=[DataRequired(_l("Enter your email.")), Length(max=254)]
    )


class PasswordResetForm(FlaskForm):
    password = _new_password_field(_l("New password"))
    confirm = PasswordField(
        _l("New password again"),
        validators=[
            DataRequired(_l("Enter the new password again.")),
            EqualTo("password", _l("The two passwords are not the same.")),
        ],
    )


class TwoFactorCodeForm(FlaskForm):
    code = StringField(
        _l("Code"),
        filters=[_strip],
        validators=[DataRequired(_l("Enter the code.")), Length(max=32, message=_l("That code is too long."))],
    )


# -- a buyer's report of a product ------------------------------------------------------
from wtforms import SelectField, TextAreaField  # noqa: E402

from faka.catalog.moderation import MAX_REPORT_TEXT, REPORT_REASONS  # noqa: E402


class ReportForm(FlaskForm):
    reason = SelectField(_l("Reason"), choices=list(REPORT_REASONS.items()), validate_choice=True)
    text = TextAreaField(
        _l("Details"),
        filters=[_strip],
        validators=[Length(max=MAX_REPORT_TEXT, message=_l("Use at most 1000 characters."))],
    )


def error_under_input(form: FlaskForm, exc: DomainError) -> str | None:
    """Put a service's reason under the input it is about (the error's `field`, when the
    form has one by that name); returns what is left for the top of the form."""
    input_ = getattr(form, getattr(exc, "field", ""), None)
    if input_ is None:
        return exc.message
    input_.errors = [*input_.errors, exc.message]
    return None
