"""Operator console: how the storefront looks (docs/themes.md). Two forms on the site
settings page: the accent colour with the layout of the product cards, and the site icon.

The colour comes as a colour picker and as its hex text (the picker has no "empty", and a
typed colour is exact). theme.js keeps them equal; without JavaScript, the one the operator
changed wins: the text when it differs from the saved colour, else the picker."""

from flask import redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length

from faka.core.cache import forget_all
from faka.core.errors import DomainError
from faka.core.uploads import MAX_UPLOAD_BYTES
from faka.platform import branding, theme
from faka.web.operator import bp
from faka.web.operator.site import _current_values, _settings_page
from faka.web.uploads import UploadLimit, accepts_upload, back_office_uploads

ICON_UPLOAD = UploadLimit(files=1, file_bytes=MAX_UPLOAD_BYTES)
LAYOUT_LABELS = {
    "list": _l("List: a small picture beside each product's name"),
    "grid": _l("Picture grid: large pictures, two across on a phone"),
}


class AppearanceForm(FlaskForm):
    accent_color = StringField(validators=[Length(max=32)])
    accent_picker = StringField(validators=[Length(max=32)])
    layout = StringField(validators=[Length(max=16)])
    accent_default = StringField()  # the button "Use faka's own colour"

    def chosen_accent(self, saved: str) -> str:
        if self.accent_default.data:
            return ""
        typed = theme.normalise_accent(self.accent_color.data or "")
        if typed != saved:
            return typed
        picked = theme.parse_hex(self.accent_picker.data or "")
        # The picker always holds a colour: the default's, while none is saved.
        return picked if picked and picked not in (saved, theme.DEFAULT_ACCENT) else saved


def _clear_page_cache() -> None:
    """Show the change on the storefront at once, in every process (faka/core/cache.py)."""
    forget_all()


@bp.post("/settings/appearance")
def appearance_settings():
    current = _current_values()
    form = AppearanceForm()
    if not form.validate():
        # A field too long; the page marks the two colour fields as one, and the layout.
        errors = {("layout" if name == "layout" else "accent_color"): found[0] for name, found in form.errors.items()}
        return _settings_page({**current, **form.data}, errors, 400)
    accent = form.chosen_accent(current["accent_color"])
    try:
        changed = branding.set_appearance(current_user.id, accent, form.layout.data or "")
    except branding.InvalidAppearance as exc:
        return _settings_page({**current, "accent_color": accent, "layout": form.layout.data}, exc.errors, 400)
    if changed:
        _clear_page_cache()
    return redirect(url_for("operator.site_settings", appearance="saved", _anchor="appearance"), 303)


@bp.post("/settings/favicon")
@back_office_uploads
@accepts_upload(ICON_UPLOAD)
def favicon_settings():
    upload = request.files.get("favicon")
    try:
        if request.form.get("remove"):
            changed = branding.set_favicon(current_user.id, None)
        else:
            data = upload.read(MAX_UPLOAD_BYTES + 1) if upload and upload.filename else b""
            changed = branding.set_favicon(current_user.id, data)
    except DomainError as exc:
        return _settings_page(_current_values(), {"favicon": exc.message}, 400)
    if changed:
        _clear_page_cache()
    return redirect(url_for("operator.site_settings", icon="saved", _anchor="site-icon"), 303)


@bp.app_template_global()
def accent_preview(value: str) -> theme.Palette:
    """The shades of the accent the page shows (faka's own while the value is not a valid one)."""
    colour = value if value and theme.accent_problem(value) is None else theme.DEFAULT_ACCENT
    return theme.palette(colour)


@bp.app_template_global()
def layout_labels() -> dict:
    return LAYOUT_LABELS


bp.add_app_template_global(theme.DEFAULT_ACCENT, "accent_default")
