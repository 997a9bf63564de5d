"""The operator console. This issue provides the outbox view; the rest comes later."""
from flask import Blueprint, render_template
from sqlalchemy import select

from faka.blueprints.access import operator_required
from faka.extensions import db
from faka.models import OutboxEmail
from faka.services.mail import smtp_configured

bp = Blueprint("operator", __name__, url_prefix="/operator")


@bp.get("/")
@operator_required
def dashboard():
    emails = db.session.execute(select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(100)).scalars().all()
    return render_template("operator/dashboard.html", emails=emails, smtp_configured=smtp_configured())
