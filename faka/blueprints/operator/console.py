"""Platform dashboard and operations views."""
from flask import render_template
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.blueprints.operator import NAV, bp
from faka.extensions import db
from faka.models import OutboxEmail
from faka.services.mail import smtp_configured


@bp.get("/")
def dashboard():
    emails = db.session.execute(select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(100)).scalars().all()
    return render_template("operator/dashboard.html", emails=emails, smtp_configured=smtp_configured())


NAV.append(("operator.dashboard", _l("Dashboard")))
