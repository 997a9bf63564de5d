"""The audit log's CSV export on a big log: it starts at once (the header before any
event is read) and comes in batches, oldest first, with every matching event."""

import csv
import io

import pytest

from faka.extensions import db
from faka.platform import audit
from tests.conftest import login


@pytest.fixture
def console(app, operator):
    client = app.test_client()
    login(client, operator)
    return client


def test_audit_csv_streams_every_event_oldest_first_in_batches(console, monkeypatch):
    monkeypatch.setattr(audit, "EXPORT_BATCH", 3)
    targets = [f"product:{n}" for n in range(8)]
    for target in targets:
        audit.record(None, "product.taken_down", target, detail="=cmd")
        db.session.commit()

    response = console.get("/operator/audit.csv?action=product.taken_down", buffered=False)
    assert response.is_streamed and response.mimetype == "text/csv"
    chunks = list(response.response)
    assert chunks[0].decode().strip() == ",".join(audit.CSV_COLUMNS)  # sent before any event is read
    assert len(chunks) == 1 + 3  # then 8 events in batches of 3
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert [r["target"] for r in rows] == targets
    assert {r["detail"] for r in rows} == {"'=cmd"}
