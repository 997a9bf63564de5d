"""mail.resend: the operator's outbox resend, one write transaction whose send_email job
goes out only once it has committed."""

import pytest
from sqlalchemy import func, select

from faka.core.errors import NotFound
from faka.extensions import db
from faka.messaging import mail
from faka.messaging import tasks as messaging_tasks
from faka.messaging.mail import queue_email
from faka.messaging.models import OutboxEmail
from faka.platform.models import AuditEvent


def failed_email(operator) -> OutboxEmail:
    email = queue_email("verify_email", "stuck@example.com", "Verify", {"link": "x"})
    email.status, email.attempts, email.last_error = OutboxEmail.FAILED, 8, "SMTPServerDisconnected: gone"
    db.session.commit()
    return email


def audits() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "outbox.resend"))


def test_resend_requeues_and_sends_the_job_after_the_commit(app, operator, monkeypatch):
    email_id = failed_email(operator).id
    seen = []

    def send_email(job_email_id):
        # What another connection finds when the job runs: the email queued again, and the
        # audit record, committed.
        with db.engine.connect() as connection:
            status, attempts = connection.execute(
                select(OutboxEmail.status, OutboxEmail.attempts).where(OutboxEmail.id == job_email_id)
            ).one()
            audited = connection.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "outbox.resend")
            )
        seen.append((job_email_id, status, attempts, audited))

    monkeypatch.setattr(messaging_tasks, "send_email", send_email)
    mail.resend(email_id, operator.id)
    assert seen == [(email_id, OutboxEmail.QUEUED, 0, 1)]
    db.session.rollback()
    email = db.session.get(OutboxEmail, email_id)
    assert email.status == OutboxEmail.QUEUED and email.attempts == 0 and email.last_error is None


def test_resend_of_a_sent_email_or_of_none_changes_nothing(app, operator, monkeypatch):
    email = failed_email(operator)
    email.status = OutboxEmail.SENT
    db.session.commit()
    email_id = email.id
    sent = []
    monkeypatch.setattr(messaging_tasks, "send_email", lambda *args: sent.append(args))
    with pytest.raises(mail.AlreadySent):
        mail.resend(email_id, operator.id)
    with pytest.raises(NotFound):
        mail.resend(email_id + 1000, operator.id)
    db.session.rollback()
    assert sent == [] and audits() == 0
    email = db.session.get(OutboxEmail, email_id)
    assert email.status == OutboxEmail.SENT and email.attempts == 8


def test_the_console_view_answers_404_and_409(app):
    from test_operator_site import operator_client

    from conftest import csrf_from

    ops = operator_client(app)
    email = queue_email("verify_email", "sent@example.com", "Verify", {"link": "x"})
    email.status = OutboxEmail.SENT
    db.session.commit()
    token = csrf_from(ops.get("/operator/outbox?lang=en").text)
    assert ops.post(f"/operator/outbox/{email.id}/resend", data={"csrf_token": token}).status_code == 409
    assert ops.post(f"/operator/outbox/{email.id + 1000}/resend", data={"csrf_token": token}).status_code == 404
    db.session.rollback()
    assert audits() == 0
