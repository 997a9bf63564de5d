"""Finding goods on the storefront: words searched for in a product's title and
description, category tabs, sorting and pages, on the home page and on each shop's page.

One interface, `find_products(Search, merchant_id=None)`, over an index of each database:

- PostgreSQL: `product_search`, one row per product with its tsvector of n-grams
  (`faka_search_vector(title, description_md)`), under a GIN index, written by a trigger on
  `products`. Chinese (and Japanese and Korean) is written without spaces, so a run of such
  characters is indexed as every character and every pair of neighbours; other letters
  and digits as lower-cased words. `faka_search_query(q)` cuts the query the same way
  (pairs, a single character alone, words as prefixes) and every part must match. Both
  are SQL functions, so the index and the query are cut by one definition. The vectors
  are stored, not an expression index: a plan that reads many rows (a one-character
  query, a fresh table without statistics) then costs microseconds a row, not a re-cut.
- SQLite: `product_search`, an FTS5 table with the trigram tokenizer over the same two
  columns (external content, kept by triggers on `products`). A query word of 3
  characters or more must occur in the text (MATCH); a shorter one, which trigrams cannot
  look up, is looked for with LIKE in the product's columns.

Either way the database keeps the index with every write to a product: no code can forget
to. Buyers only ever find products on sale (storefront's `_on_sale()`, not deleted).
"Popular" is units sold in delivered orders placed in the last POPULAR_DAYS days, summed
once a minute per process (docs/search.md).
"""

import re
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby

from sqlalchemy import DDL, Select, and_, case, column, event, func, or_, select, table
from sqlalchemy.orm import contains_eager

from faka.catalog import storefront
from faka.catalog.models import Category, Product
from faka.catalog.storefront import Listing, ShopPage
from faka.core import clock
from faka.core.cache import reused
from faka.core.db import is_postgresql
from faka.core.pagination import Page, page_count
from faka.extensions import db
from faka.orders.models import Order

QUERY_MAX = 64  # characters of a query; the rest is dropped
PER_PAGE = 24
POPULAR_DAYS = 30
SALES_SECONDS = 60  # how long a process reuses its sales figures for the "popular" order

DEFAULT, POPULAR, NEWEST, PRICE, PRICE_DESC = "", "popular", "newest", "price", "price_desc"
SORTS = (DEFAULT, POPULAR, NEWEST, PRICE, PRICE_DESC)

# -- cutting text into what is indexed ------------------------------------------------------

# Ideographs, kana and hangul: no spaces between words, so indexed by characters and pairs.
CJK = (
    (0x2E80, 0x2FDF),
    (0x3040, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3134F),
)
# What separates words: spaces, punctuation and symbols (ASCII, Latin-1, general and CJK
# punctuation, full-width forms, emoji). Anything else is part of a word.
SEPARATORS = (
    (0x01, 0x2F),
    (0x3A, 0x40),
    (0x5B, 0x60),
    (0x7B, 0xBF),
    (0xD7, 0xD7),
    (0xF7, 0xF7),
    (0x1680, 0x1680),
    (0x2000, 0x2BFF),
    (0x2E00, 0x2E7F),
    (0x3000, 0x303F),
    (0xFE30, 0xFE6F),
    (0xFF00, 0xFF0F),
    (0xFF1A, 0xFF20),
    (0xFF3B, 0xFF40),
    (0xFF5B, 0xFF65),
    (0x1F000, 0x1FAFF),
)
WORD_MAX = 64  # longer words are indexed by their first 64 characters


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _class(ranges) -> str:
    return "".join(_escape(lo) if lo == hi else f"{_escape(lo)}-{_escape(hi)}" for lo, hi in ranges)


# Group 1: a run of CJK characters; group 2: a word. Written with \u escapes only, which
# Python's re and PostgreSQL's regular expressions read alike.
TOKENS = f"([{_class(CJK)}]+)|([^{_class(CJK)}{_class(SEPARATORS)}]+)"
_TOKENS = re.compile(TOKENS)

# The document is cut at 30,000 characters: a tsvector must stay under 1 MB.
PG_FUNCTIONS = (
    f"""CREATE OR REPLACE FUNCTION faka_search_vector(title text, description text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_to_tsvector(coalesce(array_agg(DISTINCT gram), '{{}}'))
    FROM regexp_matches(lower(left(coalesce(title, '') || ' ' || coalesce(description, ''), 30000)),
                        '{TOKENS}', 'g') AS m,
    LATERAL (
        SELECT left(m[2], {WORD_MAX}) WHERE m[2] IS NOT NULL
        UNION ALL
        SELECT substr(m[1], i, n) FROM generate_series(1, char_length(m[1])) AS i, (VALUES (1), (2)) AS k(n)
        WHERE m[1] IS NOT NULL AND i + n - 1 <= char_length(m[1])
    ) AS grams(gram)
$$""",
    f"""CREATE OR REPLACE FUNCTION faka_search_query(query text) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(string_agg('''' || term, ' & '), '')::tsquery
    FROM regexp_matches(lower(query), '{TOKENS}', 'g') AS m,
    LATERAL (
        SELECT left(m[2], {WORD_MAX}) || ''':*' WHERE m[2] IS NOT NULL
        UNION ALL
        SELECT substr(m[1], i, least(2, char_length(m[1]))) || ''''
        FROM generate_series(1, greatest(1, char_length(m[1]) - 1)) AS i
        WHERE m[1] IS NOT NULL
    ) AS terms(term)
$$""",
)
SEARCH_TABLE = "product_search"
PG_DDL = (
    f"""CREATE TABLE {SEARCH_TABLE} (
    product_id integer PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    document tsvector NOT NULL
)""",
    f"CREATE INDEX ix_{SEARCH_TABLE}_document ON {SEARCH_TABLE} USING gin (document)",
    f"""CREATE OR REPLACE FUNCTION faka_product_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {SEARCH_TABLE} (product_id, document) VALUES (NEW.id, faka_search_vector(NEW.title, NEW.description_md))
    ON CONFLICT (product_id) DO UPDATE SET document = EXCLUDED.document;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER products_search AFTER INSERT OR UPDATE OF title, description_md ON products "
    "FOR EACH ROW EXECUTE FUNCTION faka_product_search()",
)

SQLITE_DDL = (
    f"CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5(title, description_md, content='products', "
    "content_rowid='id', tokenize='trigram', columnsize=0)",
    f"""CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN
    INSERT INTO {SEARCH_TABLE} (rowid, title, description_md) VALUES (new.id, new.title, new.description_md);
END""",
    f"""CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN
    INSERT INTO {SEARCH_TABLE} ({SEARCH_TABLE}, rowid, title, description_md)
    VALUES ('delete', old.id, old.title, old.description_md);
END""",
    f"""CREATE TRIGGER products_search_update AFTER UPDATE OF title, description_md ON products BEGIN
    INSERT INTO {SEARCH_TABLE} ({SEARCH_TABLE}, rowid, title, description_md)
    VALUES ('delete', old.id, old.title, old.description_md);
    INSERT INTO {SEARCH_TABLE} (rowid, title, description_md) VALUES (new.id, new.title, new.description_md);
END""",
)

# The migration (0023) builds these for existing databases; create_all() (the tests) here.
for _statement in PG_FUNCTIONS + PG_DDL:
    event.listen(Product.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))
for _statement in SQLITE_DDL:
    event.listen(Product.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
# Dropped before `products`: PostgreSQL's refers to it, and SQLite's would outlive it and
# find the old rows' words under a new table's ids.
event.listen(Product.__table__, "before_drop", DDL(f"DROP TABLE IF EXISTS {SEARCH_TABLE}"))


def is_search_table(name: str | None) -> bool:
    """The search index's tables (SQLite's FTS table and its shadow tables): derived from
    `products`, not in the models (Alembic's comparison leaves them out)."""
    return bool(name) and (name == SEARCH_TABLE or name.startswith(SEARCH_TABLE + "_"))


def terms(query: str) -> list[str]:
    """The query cut as the index is: runs of CJK characters and lower-cased words."""
    return [cjk or word[:WORD_MAX] for cjk, word in _TOKENS.findall(query.lower())]


_fts = table(SEARCH_TABLE, column("rowid"), column(SEARCH_TABLE))
_vectors = table(SEARCH_TABLE, column("product_id"), column("document"))


def _matching(query: str, words: list[str]):
    if is_postgresql():
        found = _vectors.c.document.op("@@")(func.faka_search_query(query))
        return Product.id.in_(select(_vectors.c.product_id).where(found))
    conditions = []
    long_words = [w for w in words if len(w) >= 3]
    if long_words:
        # Each word a quoted FTS5 string: no operator of the query syntax survives (TOKENS
        # leaves out the double quote with every other punctuation mark).
        match = " AND ".join(f'"{w}"' for w in long_words)
        conditions.append(Product.id.in_(select(_fts.c.rowid).where(_fts.c[SEARCH_TABLE].op("MATCH")(match))))
    for w in (w for w in words if len(w) < 3):
        conditions.append(
            or_(Product.title.contains(w, autoescape=True), Product.description_md.contains(w, autoescape=True))
        )
    return and_(*conditions)


# -- what a buyer asks for, and what they get -------------------------------------------------


@dataclass(frozen=True)
class Search:
    """A storefront list's parameters, normalised: equal searches are equal (the page
    cache's key)."""

    query: str = ""
    category_id: int | None = None
    sort: str = DEFAULT
    page: int = 1

    @classmethod
    def of(cls, query: str | None, category: str | None, sort: str | None, page: int) -> "Search":
        """From what a URL says: the query trimmed, its spaces collapsed and cut at
        QUERY_MAX characters; a category that is not a number and a sort that is not one
        of SORTS are left out."""
        text = " ".join((query or "").split())[:QUERY_MAX].strip()
        raw = (category or "").strip()
        category_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None
        return cls(text, category_id, sort if sort in SORTS else DEFAULT, max(1, page))

    @property
    def plain(self) -> bool:
        """The list as it opens: every category, no query, the first page."""
        return not self.query and self.category_id is None and self.page == 1


@dataclass(frozen=True)
class Results:
    search: Search
    tabs: list[Category]  # the visible categories with goods on sale here, in the operator's order
    category: Category | None  # the tab shown; None: all
    unknown_category: bool  # the URL named a category that is not among the tabs: all shown instead
    page: Page  # of Listing
    query_max = QUERY_MAX

    @property
    def listings(self) -> list[Listing]:
        return self.page.items

    @property
    def total(self) -> int:
        return self.page.total or 0

    @property
    def pages(self) -> int:
        return page_count(self.total, self.page.per_page)

    @property
    def grouped(self) -> bool:
        """All goods in the operator's order: shown in sections by category."""
        return self.category is None and not self.search.query and self.search.sort == DEFAULT

    @property
    def sections(self) -> list[tuple[Category | None, list[Listing]]]:
        """The page's listings in runs of one category each. Products of hidden categories
        come last, under no category (None): buyers never see a hidden category's name."""
        shelf = lambda item: None if item.product.category.hidden else item.product.category  # noqa: E731
        return [(category, list(items)) for category, items in groupby(self.listings, key=shelf)]


def find_products(search: Search, merchant_id: int | None = None) -> Results:
    """A page of the products on sale (of one merchant, when given) that match `search`:
    most relevant first for a query (every word in the title, then the rest), else in
    the chosen order."""
    tabs = _tabs(merchant_id)
    category = next((c for c in tabs if c.id == search.category_id), None)
    scope = storefront._on_sale().join(Category, Product.category_id == Category.id).where(Product.deleted_at.is_(None))
    if merchant_id is not None:
        scope = scope.where(Product.merchant_id == merchant_id)
    if category is not None:
        scope = scope.where(Product.category_id == category.id)
    words = terms(search.query)
    if search.query and not words:  # only punctuation: nothing can match it
        return Results(search, tabs, category, _unknown(search, category), Page([], search.page, PER_PAGE, 0, False))
    if words:
        scope = scope.where(_matching(search.query, words))
    order = _order(search, words)
    offset = (search.page - 1) * PER_PAGE
    if search.sort == POPULAR:
        products, total = _by_sales(scope, order, offset)
    else:
        total = db.session.scalar(scope.with_only_columns(func.count(Product.id)).order_by(None)) or 0
        products = []
        if offset < total:
            products = list(
                db.session.execute(
                    scope.options(contains_eager(Product.category)).order_by(*order).offset(offset).limit(PER_PAGE)
                ).scalars()
            )
    page = Page(storefront._listings(products), search.page, PER_PAGE, total, offset + PER_PAGE < total)
    return Results(search, tabs, category, _unknown(search, category), page)


def _unknown(search: Search, category: Category | None) -> bool:
    return search.category_id is not None and category is None


def _tabs(merchant_id: int | None) -> list[Category]:
    """The visible categories that have goods on sale (of this merchant), in the operator's
    order: a tab never opens onto nothing, and never onto a hidden category."""
    on_sale = storefront._on_sale().where(Product.category_id == Category.id, Product.deleted_at.is_(None))
    if merchant_id is not None:
        on_sale = on_sale.where(Product.merchant_id == merchant_id)
    return list(
        db.session.execute(
            select(Category)
            .where(Category.hidden.is_(False), Category.deleted_at.is_(None), on_sale.exists())
            .order_by(Category.position, Category.id)
        ).scalars()
    )


def _order(search: Search, words: list[str]) -> list:
    # The operator's order: categories as in the console (hidden ones last), then each
    # merchant's own order of its products.
    shelf = [Category.hidden, Category.position, Category.id, Product.position, Product.id]
    if search.sort == NEWEST:
        return [Product.created_at.desc(), Product.id.desc()]
    if search.sort == PRICE:
        return [Product.price, Product.id]
    if search.sort == PRICE_DESC:
        return [Product.price.desc(), Product.id]
    if words and search.sort == DEFAULT:
        in_title = and_(*(func.lower(Product.title).contains(w, autoescape=True) for w in words))
        return [case((in_title, 0), else_=1), *shelf]
    return shelf


def _by_sales(scope: Select, order: list, offset: int) -> tuple[list[Product], int]:
    """The page of `scope` by units sold, best first (ties in `order`): the matching ids
    are read in `order` and sorted by this process's sales figures (units_sold()), then
    the page's products are read: two statements, whatever the number of orders."""
    ids = list(db.session.execute(scope.with_only_columns(Product.id).order_by(*order)).scalars())
    sold = units_sold()
    ids.sort(key=lambda product_id: -sold.get(product_id, 0))  # stable: `order` breaks ties
    wanted = ids[offset : offset + PER_PAGE]
    if not wanted:
        return [], len(ids)
    found = {
        p.id: p
        for p in db.session.execute(
            select(Product)
            .join(Category, Product.category_id == Category.id)
            .where(Product.id.in_(wanted))
            .options(contains_eager(Product.category))
        ).scalars()
    }
    return [found[i] for i in wanted if i in found], len(ids)


def units_sold() -> dict[int, int]:
    """Units per product in delivered orders placed in the last POPULAR_DAYS days; summed
    at most once per SALES_SECONDS in each process."""
    return reused("units-sold", _units_sold, SALES_SECONDS)


def _units_sold() -> dict[int, int]:
    since = clock.now() - timedelta(days=POPULAR_DAYS)
    rows = db.session.execute(
        select(Order.product_id, func.sum(Order.quantity))
        .where(Order.created_at >= since, Order.status == Order.DELIVERED)
        .group_by(Order.product_id)
    )
    return {product_id: int(units) for product_id, units in rows}


# -- a shop's page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShopCatalogue:
    shop: ShopPage  # who it is, its reputation, its reviews
    results: Results  # its goods


def shop_catalogue(public_id: str, search: Search) -> ShopCatalogue:
    """A shop's public page with a page of its goods, found as on the home page. NotFound
    for a shop that is not approved."""
    shop = storefront.shop_page(public_id)
    return ShopCatalogue(shop, find_products(search, merchant_id=shop.merchant.id))
