"""Emails other than order deliveries go through the same outbox."""

from sqlalchemy import select

from faka.extensions import db
from faka.messaging.mail import queue_email, send_outbox_email
from faka.messaging.models import OutboxEmail


def test_queued_email_renders_its_template_with_encrypted_context(make_app, smtp, tmp_path):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    template_dir = tmp_path / "email"
    template_dir.mkdir()
    (template_dir / "hello.txt").write_text("Hello {{ name }} from {{ site.site_name }}: {{ base_url }}/x")
    from jinja2 import ChoiceLoader, FileSystemLoader

    app.jinja_loader = ChoiceLoader([app.jinja_loader, FileSystemLoader(str(tmp_path))])
    with app.app_context():
        email = queue_email("hello", "m@example.com", "Greetings", {"name": "秘密的名字"})
        db.session.commit()
        stored = db.session.execute(select(OutboxEmail)).scalar_one()
        assert "秘密" not in stored.payload_ciphertext
        assert send_outbox_email(email.id) is True
    message = smtp.messages[0]
    assert message["Subject"] == "Greetings" and message["To"] == "m@example.com"
    assert message.get_body(("plain",)).get_content().startswith("Hello 秘密的名字 from faka: http://localhost/x")


def test_an_email_another_job_is_sending_is_not_sent_again(make_app, smtp):
    """Two copies of one email's job (the reconciler queued it again while a worker was
    still talking to SMTP): the second finds it claimed and sends nothing; a claim left
    by a worker that died runs out and the email goes once."""
    from datetime import timedelta

    from faka.core import clock

    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        email = queue_email("account_exists", "m@example.com", "Hello", {})
        email.claimed_until = clock.now() + timedelta(seconds=30)  # another worker is on it
        db.session.commit()
        assert send_outbox_email(email.id) is False
        assert smtp.messages == [] and db.session.get(OutboxEmail, email.id).status == OutboxEmail.QUEUED

        stale = db.session.get(OutboxEmail, email.id)
        stale.claimed_until = clock.now() - timedelta(seconds=1)  # that worker died mid-send
        db.session.commit()
        assert send_outbox_email(email.id) is True and send_outbox_email(email.id) is False
        sent = db.session.get(OutboxEmail, email.id)
        assert len(smtp.messages) == 1 and sent.status == OutboxEmail.SENT and sent.claimed_until is None
