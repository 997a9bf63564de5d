"""One page of a list: `paginate(statement, page, per_page)` runs a select for one page
of its rows, and `Page` is what a view shows of it.

A list either counts its rows (the back office: "Page 2 of 7") or only knows whether
another page follows (the public review lists and the webhook log: Previous / Next),
which reads one row more instead of counting. A page number below 1 is the first page;
one past the last is an empty page (the views' page_number() refuses what cannot be a
page number at all).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.base import ExecutableOption

from faka.extensions import db


def page_count(total: int, per_page: int) -> int:
    """How many pages a list of `total` rows fills, `per_page` to a page: at least one, so
    that an empty list still shows its (empty) first page."""
    return max(1, -(-total // per_page))


@dataclass(frozen=True)
class Page:
    items: list  # objects, values or rows, as paginate() says
    page: int  # from 1
    per_page: int
    total: int | None  # how many rows the whole list has; None: not counted
    has_next: bool  # whether a page with rows follows this one

    @property
    def pages(self) -> int | None:
        """How many pages the list fills (at least one); None when it was not counted."""
        return None if self.total is None else page_count(self.total, self.per_page)


def paginate(
    statement: Select,
    page: int,
    per_page: int,
    *,
    count: bool = True,
    ids_first: InstrumentedAttribute | None = None,
    load_options: Sequence[ExecutableOption] = (),
) -> Page:
    """Page `page` of what `statement` selects, in its order, `per_page` to a page.

    With `count`, the rows are counted too (one more statement); without, one row more
    is read, to know whether another page follows. The items are objects or values when
    the statement selects one entity or column (`select(Order)`), rows when it selects
    several (`select(Order, Merchant.name)`).

    With `ids_first` (the primary key of the one entity selected), the page's keys are
    read first, alone, and then their objects by key alone, with `load_options` (one
    statement more): from an index that holds the keys in the list's order, a far page of
    a long list skips its offset in the index instead of reading each skipped row from
    the table."""
    page = max(1, int(page))
    total = None
    if count:
        total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    window = statement if ids_first is None else statement.with_only_columns(ids_first)
    result = db.session.execute(window.offset((page - 1) * per_page).limit(per_page if count else per_page + 1))
    rows = list(result.scalars() if len(window.column_descriptions) == 1 else result.all())
    has_next = page * per_page < total if total is not None else len(rows) > per_page
    rows = rows[:per_page]
    if ids_first is not None and rows:
        # By key alone (the keys already passed the list's filters), unordered: the planner
        # fetches the few rows by their keys. Put back in the page's order here.
        by_key_only = select(ids_first.class_).where(ids_first.in_(rows)).options(*load_options)
        by_key = {getattr(item, ids_first.key): item for item in db.session.execute(by_key_only).unique().scalars()}
        rows = [by_key[key] for key in rows]
    return Page(items=rows, page=page, per_page=per_page, total=total, has_next=has_next)
