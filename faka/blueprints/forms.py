"""Forms shared by the buyer-facing blueprints."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional


class CheckoutForm(FlaskForm):
    quantity = IntegerField(
        _l("Quantity"), validators=[InputRequired(_l("Enter a quantity.")), NumberRange(1, 100, _l("Quantity must be between 1 and 100."))]
    )
    email = EmailField(
        _l("Email (optional)"),
        validators=[Optional(), Length(max=254), Email(_l("Enter a valid email address."), check_deliverability=False)],
        description=_l("We send the keys here too, and you can find your orders with it."),
    )
    query_password = PasswordField(
        _l("Query password (optional)"),
        validators=[Optional(), Length(4, 64, _l("The query password must be 4 to 64 characters."))],
        description=_l("Choose any 4+ characters. With the order number or email it lets you look up this order later."),
    )


class LookupForm(FlaskForm):
    query = StringField(
        _l("Order number or email"),
        validators=[DataRequired(_l("Enter an order number or an email.")), Length(max=254)],
    )
    query_password = PasswordField(
        _l("Query password"), validators=[DataRequired(_l("Enter the query password.")), Length(max=64)]
    )


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Enter your email.")), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password.")), Length(max=128)])
