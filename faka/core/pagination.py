"""One page of a list: `paginate(statement, page, per_page)` runs a select for one page
of its rows, and `Page` is what a view shows of it.

A list either counts its rows (the back office: "Page 2 of 7") or only knows whether
another page follows (the public review lists and the webhook log: Previous / Next),
which reads one row more instead of counting. A page number below 1 is the first page;
one past the last is an empty page (the views' page_number() refuses what cannot be a
page number at all).
"""

from dataclasses import dataclass

from sqlalchemy import Select, func, select

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


def paginate(statement: Select, page: int, per_page: int, *, count: bool = True) -> Page:
    """Page `page` of what `statement` selects, in its order, `per_page` to a page.

    With `count`, the rows are counted too (one more statement); without, one row more
    is read, to know whether another page follows. The items are objects or values when
    the statement selects one entity or column (`select(Order)`), rows when it selects
    several (`select(Order, Merchant.name)`)."""
    page = max(1, int(page))
    total = None
    if count:
        total = db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    result = db.session.execute(statement.offset((page - 1) * per_page).limit(per_page if count else per_page + 1))
    rows = list(result.scalars() if len(statement.column_descriptions) == 1 else result.all())
    has_next = page * per_page < total if total is not None else len(rows) > per_page
    return Page(items=rows[:per_page], page=page, per_page=per_page, total=total, has_next=has_next)
