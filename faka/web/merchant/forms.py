"""Forms of the merchant back office."""

from decimal import Decimal

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    StopValidation,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from faka.accounts.onboarding import ENTITY_TYPE_LABELS
from faka.catalog.models import DELIVERY_AUTO, DELIVERY_FIXED, DELIVERY_MANUAL, DELIVERY_REMOTE
from faka.inventory.keys import SEPARATORS
from faka.ledger.payouts import PAYOUT_KIND_LABELS
from faka.messaging.models import EVENTS
from faka.messaging.webhooks import EVENT_LABELS
from faka.risk.models import BlacklistEntry
from faka.web.fields import DecimalField, IntegerField

MAX_PRICE = Decimal("1000000")


def yuan_to_fen(value: Decimal) -> int:
    return int((value * 100).to_integral_exact())


class QualificationForm(FlaskForm):
    legal_name = StringField(
        _l("Legal name or shop name"), validators=[DataRequired(_l("Enter a name.")), Length(2, 120)]
    )
    entity_type = RadioField(
        _l("Type"),
        choices=list(ENTITY_TYPE_LABELS.items()),
        validators=[InputRequired(_l("Choose individual or company."))],
    )
    id_number = StringField(
        _l("ID card or business licence number"),
        validators=[DataRequired(_l("Enter the ID or licence number.")), Length(15, 24)],
    )
    contact = StringField(
        _l("Contact (phone, QQ or WeChat)"), validators=[DataRequired(_l("Enter a contact.")), Length(3, 120)]
    )
    licence_image = FileField(_l("Photo or scan of the ID card or business licence"))


class ProductForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(_l("Enter a title.")), Length(1, 120)])
    category_id = SelectField(_l("Category"), coerce=int, validators=[InputRequired(_l("Choose a category."))])
    price = DecimalField(
        _l("Price (yuan)"),
        places=2,
        validators=[
            InputRequired(_l("Enter a price.")),
            NumberRange(Decimal("0.01"), MAX_PRICE, _l("The price must be between 0.01 and 1,000,000.")),
        ],
    )
    tiers = StringField(
        _l("Tier prices (optional)"),
        validators=[Optional(), Length(max=300)],
        description=_l("quantity=price, for example 3=47.00, 10=45.00"),
    )
    delivery_type = SelectField(
        _l("Delivery"),
        choices=[
            (DELIVERY_AUTO, _l("Automatic, from imported keys")),
            (DELIVERY_FIXED, _l("Fixed content, the same for every buyer")),
            (DELIVERY_MANUAL, _l("Manual, delivered by you")),
            (DELIVERY_REMOTE, _l("From my server, which issues the keys")),
        ],
    )
    fixed_content = TextAreaField(
        _l("Content every buyer receives (fixed delivery)"),
        validators=[Optional(), Length(max=5000)],
        description=_l("When editing, leave empty to keep the current content."),
    )
    remote_url = StringField(
        _l("Your server's address (delivery from my server)"),
        validators=[Optional(), Length(max=500)],
        description=_l("Each paid order is sent here, signed; the keys your server answers are delivered."),
    )
    manual_promise_hours = IntegerField(
        _l("Promised delivery time in hours (manual delivery)"),
        default=24,
        validators=[InputRequired(), NumberRange(1, 720)],
    )
    min_per_order = IntegerField(_l("Minimum per order"), default=1, validators=[InputRequired(), NumberRange(1, 100)])
    max_per_order = IntegerField(_l("Maximum per order"), default=10, validators=[InputRequired(), NumberRange(1, 100)])
    low_stock_threshold = IntegerField(
        _l("Low-stock alert at"), default=0, validators=[InputRequired(), NumberRange(0, 100000)]
    )
    reusable_key = BooleanField(_l("One shared key for every buyer (shown to buyers)"))
    require_query_password = BooleanField(_l("Buyers must set a query password"))
    require_email = BooleanField(
        _l("Buyers must give an email"),
        description=_l("For manual delivery: you can reach the buyer, and the delivery email reaches them."),
    )
    visible = BooleanField(_l("On sale"), default=True)
    position = IntegerField(
        _l("Position"),
        validators=[
            Optional(),
            NumberRange(0, 1_000_000, _l("The position must be a whole number from 0 to 1,000,000.")),
        ],
        description=_l(
            "Lower numbers come first in your shop and on the home page. Leave empty to put a new product last."
        ),
    )
    description_md = TextAreaField(_l("Description (Markdown)"), validators=[Optional(), Length(max=20000)])
    refund_policy = TextAreaField(_l("Refund policy"), validators=[Optional(), Length(max=2000)])
    # Stricter risk thresholds for goods worth protecting; empty: the site's own.
    risk_captcha_at = IntegerField(
        _l("Ask for the captcha from score"),
        validators=[
            Optional(),
            NumberRange(1, 1000, _l("A whole number from 1 to 1000, or empty for the site's default.")),
        ],
    )
    risk_hold_at = IntegerField(
        _l("Hold delivery for review from score"),
        validators=[
            Optional(),
            NumberRange(1, 1000, _l("A whole number from 1 to 1000, or empty for the site's default.")),
        ],
    )

    # Checks of sold keys by the merchant's own software (docs/licenses.md).
    license_checks = BooleanField(
        _l("License checks: my software may check the keys it is given"),
        description=_l("For keys sold one to each buyer. Unsold keys are never revealed."),
    )
    activation_limit = IntegerField(
        _l("Activations per key"),
        validators=[
            Optional(),
            NumberRange(1, 10000, _l("A whole number from 1 to 10,000, or empty for no limit.")),
        ],
        description=_l("How many installations may use one key at once. Leave empty for no limit."),
    )

    def validate_price(self, field):
        if field.data is not None and field.data.as_tuple().exponent < -2:
            raise ValidationError(_l("Use at most two decimals."))


class KeyImportForm(FlaskForm):
    keys = TextAreaField(_l("Keys, one per line"), validators=[Optional(), Length(max=20_000_000)])
    keys_file = FileField(_l("…or a text or CSV file"))
    separator = SelectField(
        _l("Separator"),
        choices=[
            (name, label)
            for name, label in (
                ("newline", _l("New line")),
                ("comma", _l("Comma")),
                ("semicolon", _l("Semicolon")),
                ("tab", _l("Tab")),
                ("space", _l("Space")),
                ("pipe", _l("Vertical bar")),
            )
            if name in SEPARATORS
        ],
        default="newline",
    )
    # Which variant's stock, for a product with several (faka/catalog/variants.py pick()
    # says so when none or an unknown one is chosen).
    variant = SelectField(_l("Variant"), validate_choice=False)


class VoidKeysForm(FlaskForm):
    keys = TextAreaField(
        _l("Keys to withdraw from sale, one per line"),
        validators=[DataRequired(_l("Paste the keys to void.")), Length(max=2_000_000)],
    )
    variant = SelectField(_l("Variant"), validate_choice=False)


class OrderFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form

    status = SelectField(_l("Status"), validators=[Optional()])
    product = SelectField(_l("Product"), validators=[Optional()])
    since = DateField(_l("From date"), validators=[Optional()])
    until = DateField(_l("To date"), validators=[Optional()])
    email = StringField(_l("Email"), validators=[Optional(), Length(max=254)])
    number = StringField(_l("Order number"), validators=[Optional(), Length(max=24)])
    flagged = BooleanField(_l("Flagged only"))


class ManualDeliveryForm(FlaskForm):
    content = TextAreaField(
        _l("What the buyer receives"), validators=[DataRequired(_l("Enter what to deliver.")), Length(max=5000)]
    )


def _code_unless_passkey(form, field):
    # A form confirmed with a passkey (its hidden field `passkey`, faka/static/js/passkeys.js) needs no code.
    if form.passkey.data:
        raise StopValidation()
    if not (field.data or "").strip():
        raise StopValidation(_l("Enter the code from your authenticator app."))


def _second_factor_field() -> StringField:
    # Money leaves the shop only with a fresh code (or passkey): a stolen session alone is not enough.
    return StringField(
        _l("Code from your authenticator app"),
        description=_l("Or one of your recovery codes."),
        validators=[_code_unless_passkey, Length(max=32)],
    )


class PayoutAccountForm(FlaskForm):
    kind = SelectField(_p("payout account", "Type"), choices=list(PAYOUT_KIND_LABELS.items()))
    holder = StringField(
        _l("Account holder"), validators=[DataRequired(_l("Enter the account holder.")), Length(1, 80)]
    )
    account = StringField(
        _l("Account number or address"), validators=[DataRequired(_l("Enter the account.")), Length(1, 64)]
    )
    code = _second_factor_field()
    passkey = HiddenField()


class WithdrawalForm(FlaskForm):
    payout_account_id = SelectField(
        _l("Pay to"), coerce=int, validators=[InputRequired(_l("Add a payout account first."))]
    )
    amount = DecimalField(
        _l("Amount (yuan)"),
        places=2,
        validators=[
            InputRequired(_l("Enter an amount.")),
            NumberRange(Decimal("1.00"), MAX_PRICE, _l("Withdraw at least 1.00.")),
        ],
    )
    code = _second_factor_field()
    passkey = HiddenField()


class CouponForm(FlaskForm):
    code = StringField(_p("coupon", "Code"), validators=[DataRequired(_l("Enter a code.")), Length(3, 32)])
    kind = SelectField(_l("Discount"), choices=[("percent", _l("Percent off")), ("fixed", _l("Amount off (yuan)"))])
    value = DecimalField(
        _p("coupon", "Value"),
        places=2,
        validators=[InputRequired(_l("Enter the discount.")), NumberRange(Decimal("0.01"), MAX_PRICE)],
        description=_l("Percent: 10 takes 10 percent off. Amount: 10.00 takes 10 yuan off."),
    )
    product_id = SelectField(_l("For"), coerce=int)
    min_amount = DecimalField(
        _l("Minimum order total (yuan)"),
        places=2,
        default=Decimal("0"),
        validators=[Optional(), NumberRange(Decimal("0"), MAX_PRICE)],
    )
    usage_limit = IntegerField(_l("Usage limit"), validators=[Optional(), NumberRange(1, 1_000_000)])
    expires_on = DateField(_l("Expires after"), validators=[Optional()])


class WebhookForm(FlaskForm):
    url = StringField(_l("URL"), validators=[DataRequired(_l("Enter the URL.")), Length(8, 500)])
    events = SelectMultipleField(
        _l("Events"),
        choices=[(e, EVENT_LABELS[e]) for e in EVENTS],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )


BLACKLIST_REASON = Length(1, 500, _l("Write why, in up to 500 characters."))


class BlacklistForm(FlaskForm):
    """A merchant's own entry; browsers are blacklisted from an order's page, never typed."""

    kind = SelectField(
        _l("What"),
        choices=[
            (BlacklistEntry.EMAIL, _l("Email address")),
            (BlacklistEntry.DOMAIN, _l("Email domain")),
            (BlacklistEntry.IP, _l("IP address or network")),
        ],
    )
    value = StringField(
        _p("blacklist", "Value"),
        validators=[DataRequired(_l("Enter what to blacklist.")), Length(max=254)],
        description=_l("For example buyer@example.com, example.com, 203.0.113.7 or 203.0.113.0/24."),
    )
    reason = StringField(_l("Reason"), validators=[DataRequired(_l("Write why.")), BLACKLIST_REASON])


class BuyerBlacklistForm(FlaskForm):
    kind = SelectField(choices=[(BlacklistEntry.EMAIL, ""), (BlacklistEntry.DEVICE, "")])
    reason = StringField(_l("Reason"), validators=[DataRequired(_l("Write why.")), BLACKLIST_REASON])


# -- a product's checkout fields (faka/catalog/checkout_fields.py) ---------------------
from faka.catalog.models import KIND_CHOICE, KIND_EMAIL, KIND_NUMBER, KIND_PHONE, KIND_TEXT  # noqa: E402


def _stripped(value):
    return value.strip() if isinstance(value, str) else value


class CheckoutFieldForm(FlaskForm):
    label = StringField(
        _l("Field name"),
        filters=[_stripped],
        description=_l("What the buyer sees, e.g. 游戏 UID."),
        validators=[
            DataRequired(_l("Write a label of 1 to 40 characters.")),
            Length(max=40, message=_l("Write a label of 1 to 40 characters.")),
        ],
    )
    label_en = StringField(
        _l("Field name in English (optional)"),
        filters=[_stripped],
        description=_l("For English pages; without it they show the Chinese name."),
        validators=[Optional(), Length(max=40, message=_l("Write a label of 1 to 40 characters."))],
    )
    kind = SelectField(
        _l("Answer type"),
        default=KIND_TEXT,
        choices=[
            (KIND_TEXT, _l("Text")),
            (KIND_NUMBER, _l("Number (digits only)")),
            (KIND_EMAIL, _l("Email address")),
            (KIND_PHONE, _l("Phone number")),
            (KIND_CHOICE, _l("Choice from a list")),
        ],
    )
    choices = TextAreaField(
        _l("Choices, one per line (for a choice)"),
        validators=[
            Optional(),
            Length(max=2000, message=_l("List the choices, one per line (at most %(count)s).", count=20)),
        ],
    )
    required = BooleanField(_l("The buyer must answer"), default=True)
    help_text = StringField(
        _l("Help text (optional)"),
        filters=[_stripped],
        description=_l("Shown under the field, e.g. where to find the UID in the game."),
        validators=[Optional(), Length(max=200, message=_l("Use at most 200 characters."))],
    )
    help_text_en = StringField(
        _l("Help text in English (optional)"),
        filters=[_stripped],
        validators=[Optional(), Length(max=200, message=_l("Use at most 200 characters."))],
    )
    pattern = StringField(
        _l("Pattern (optional)"),
        filters=[_stripped],
        description=_l(
            "A regular expression the whole answer must match, e.g. [0-9]{6,12} for 6 to "
            "12 digits. Not used for choices."
        ),
        validators=[
            Optional(),
            Length(max=100, message=_l("A pattern may have at most %(count)s characters.", count=100)),
        ],
    )
    pattern_message = StringField(
        _l("Message when the answer does not match the pattern"),
        filters=[_stripped],
        validators=[Optional(), Length(max=100, message=_l("Use at most 100 characters."))],
    )
    pattern_message_en = StringField(
        _l("The same message in English (optional)"),
        filters=[_stripped],
        validators=[Optional(), Length(max=100, message=_l("Use at most 100 characters."))],
    )


# -- a product's variants (faka/catalog/variants.py) ------------------------------------


def _variant_name(label, description=None, required: bool = False) -> StringField:
    message = _l("Name each variant in 1 to %(count)s characters, e.g. ¥50 or 1 month.", count=40)
    first = DataRequired(message) if required else Optional()
    return StringField(
        label, filters=[_stripped], description=description, validators=[first, Length(max=40, message=message)]
    )


class VariantForm(FlaskForm):
    """One variant's name and figures; the figures' inputs are the product form's."""

    name = _variant_name(_l("Variant name"), _l("What the buyer chooses, e.g. ¥50, 1 month, Deluxe edition."))
    name_en = _variant_name(
        _l("Variant name in English (optional)"), _l("For English pages; without it they show the Chinese name.")
    )
    price = ProductForm.price
    min_per_order = ProductForm.min_per_order
    max_per_order = ProductForm.max_per_order
    tiers = ProductForm.tiers
    low_stock_threshold = ProductForm.low_stock_threshold
    validate_price = ProductForm.validate_price


class NewVariantForm(VariantForm):
    """Adding a variant; a product whose one variant has no name yet names it too."""

    name = _variant_name(
        _l("Name of the new variant"), _l("What the buyer chooses, e.g. ¥50, 1 month, Deluxe edition.")
    )
    name_en = _variant_name(
        _l("Its name in English (optional)"), _l("For English pages; without it they show the Chinese name.")
    )
    first_name = _variant_name(_l("Name of the variant it has now"), _l("It becomes one of the choices, e.g. ¥50."))
    first_name_en = _variant_name(_l("Its name in English (optional)"))
