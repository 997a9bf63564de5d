"""core.db.write_transaction(): one write transaction that commits or rolls back, and
sends the tasks asked for inside it only once it has committed."""

import pytest
from sqlalchemy import select

from faka.core import tasks
from faka.core.db import write_transaction
from faka.extensions import db
from faka.platform import tasks as platform_tasks
from faka.platform.models import AuditEvent

sent = []
TASK = "platform.tasks.run_retention"


def record(label):
    # The task as it runs: what another connection finds committed in the database.
    with db.engine.connect() as connection:
        rows = connection.scalars(select(AuditEvent.action).where(AuditEvent.action == label)).all()
    sent.append((label, rows))


@pytest.fixture(autouse=True)
def no_jobs_yet(monkeypatch):
    sent.clear()
    # The task named TASK, resolved by name when it runs, records what it finds instead.
    monkeypatch.setattr(platform_tasks, "run_retention", record)


def audit(label):
    db.session.add(AuditEvent(actor_id=None, action=label, target="test"))


def stored(label) -> int:
    db.session.rollback()
    return len(db.session.scalars(select(AuditEvent).where(AuditEvent.action == label)).all())


def test_it_commits_and_then_sends_the_job_which_finds_the_row(app):
    with write_transaction():
        audit("tx.kept")
        tasks.enqueue(TASK, "tx.kept")
        assert sent == []  # not before the commit
    assert sent == [("tx.kept", ["tx.kept"])]
    assert stored("tx.kept") == 1


def test_an_exception_rolls_back_and_drops_the_job(app):
    with pytest.raises(ValueError), write_transaction():
        audit("tx.dropped")
        tasks.enqueue(TASK, "tx.dropped")
        raise ValueError("refused")
    assert sent == [] and stored("tx.dropped") == 0


def test_a_commit_on_exception_keeps_what_was_written_and_is_raised(app):
    with pytest.raises(LookupError), write_transaction(commit_on=(LookupError,)):
        audit("tx.failed-attempt")
        tasks.enqueue(TASK, "tx.failed-attempt")
        raise LookupError("wrong code")
    assert stored("tx.failed-attempt") == 1 and sent == [("tx.failed-attempt", ["tx.failed-attempt"])]


def test_transactions_do_not_nest(app):
    with pytest.raises(RuntimeError), write_transaction():
        audit("tx.outer")
        with write_transaction():
            pass
    assert stored("tx.outer") == 0


def test_outside_a_transaction_a_job_is_sent_at_once(app):
    tasks.enqueue(TASK, "tx.none")
    assert sent == [("tx.none", [])]


def test_a_task_is_named_by_its_context_never_by_any_dotted_path(app):
    with pytest.raises(ValueError):
        tasks.enqueue("os.system", "true")
    with pytest.raises(ValueError):
        tasks.enqueue("platform.retention.run")  # a context's task lives in its tasks module
    with pytest.raises(ImportError):
        tasks.enqueue("platform.tasks.no_such_task")
