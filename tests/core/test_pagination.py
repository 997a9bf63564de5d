"""core.pagination.paginate(): one page of a select, counted or not, and page_count();
and web.pagination.page_number(), which refuses a `?page=` that cannot be a page."""

import pytest
from sqlalchemy import select

from conftest import login
from faka.core.pagination import page_count, paginate
from faka.extensions import db
from faka.platform.models import AuditEvent

ACTION = "pagination.test"


def seven_events() -> list[int]:
    """Seven audit events, oldest first; their ids."""
    events = [AuditEvent(action=ACTION, target=f"row:{i}") for i in range(7)]
    db.session.add_all(events)
    db.session.commit()
    return [e.id for e in events]


def events():
    return select(AuditEvent).where(AuditEvent.action == ACTION).order_by(AuditEvent.id)


def ids(page) -> list[int]:
    return [e.id for e in page.items]


@pytest.mark.parametrize("count", [True, False])
def test_pages_follow_the_statements_order_and_cover_it_once(app, count):
    made = seven_events()
    pages = [paginate(events(), page, 3, count=count) for page in (1, 2, 3)]
    assert [ids(p) for p in pages] == [made[0:3], made[3:6], made[6:7]]
    assert [p.page for p in pages] == [1, 2, 3]
    assert [p.has_next for p in pages] == [True, True, False]


def test_a_counted_page_knows_the_total_and_the_page_count(app):
    seven_events()
    first, last = paginate(events(), 1, 3), paginate(events(), 3, 3)
    assert (first.total, first.pages, first.per_page) == (7, 3, 3)
    assert (last.total, last.pages, len(last.items)) == (7, 3, 1)


def test_an_uncounted_page_reads_one_row_more_instead(app):
    made = seven_events()
    first = paginate(events(), 1, 3, count=False)
    assert (first.total, first.pages, first.has_next) == (None, None, True)
    assert ids(first) == made[:3]  # the extra row only says that a next page exists
    full_last = paginate(events().where(AuditEvent.id <= made[5]), 2, 3, count=False)
    assert ids(full_last) == made[3:6] and not full_last.has_next


@pytest.mark.parametrize("count", [True, False])
def test_an_empty_list_has_one_empty_page(app, count):
    page = paginate(events(), 1, 3, count=count)
    assert (page.items, page.has_next) == ([], False)
    assert (page.total, page.pages) == ((0, 1) if count else (None, None))


@pytest.mark.parametrize("count", [True, False])
def test_a_page_past_the_end_is_empty(app, count):
    seven_events()
    page = paginate(events(), 99, 3, count=count)
    assert (page.items, page.page, page.has_next) == ([], 99, False)
    if count:
        assert (page.total, page.pages) == (7, 3)


def test_a_page_below_one_is_the_first(app):
    made = seven_events()
    for number in (0, -5):
        page = paginate(events(), number, 3)
        assert (page.page, ids(page)) == (1, made[:3])


def test_several_columns_give_rows_and_one_column_gives_values(app):
    made = seven_events()
    rows = paginate(
        select(AuditEvent.id, AuditEvent.target).where(AuditEvent.action == ACTION).order_by(AuditEvent.id), 2, 2
    )
    assert [(row.id, row.target) for row in rows.items] == [(made[2], "row:2"), (made[3], "row:3")]
    assert [tuple(row) for row in rows.items] == [(made[2], "row:2"), (made[3], "row:3")]
    assert rows.total == 7
    values = paginate(select(AuditEvent.id).where(AuditEvent.action == ACTION).order_by(AuditEvent.id), 1, 2)
    assert values.items == made[:2]


@pytest.mark.parametrize(
    ("total", "per_page", "pages"),
    [(0, 50, 1), (1, 50, 1), (49, 50, 1), (50, 50, 1), (51, 50, 2), (100, 50, 2), (101, 50, 3), (7, 1, 7)],
)
def test_page_count_is_at_least_one_and_rounds_up(total, per_page, pages):
    assert page_count(total, per_page) == pages


# -- ?page= on a back-office list --------------------------------------------------------------


@pytest.fixture
def desk(app, operator):
    client = app.test_client()
    client.get("/?lang=en")
    login(client, operator)
    return client


@pytest.mark.parametrize("page", ["abc", "99999999999"])
def test_a_page_that_cannot_be_is_refused_with_a_message(desk, page):
    response = desk.get("/operator/refunds", query_string={"page": page})
    assert response.status_code == 400
    assert "There is no such page number." in response.text


def test_a_page_past_the_last_is_an_empty_list(desk):
    assert desk.get("/operator/refunds", query_string={"page": "2"}).status_code == 200
