"""catalogue search

The index behind the storefront's search (faka/catalog/search.py, docs/search.md), filled
for the products that exist:

- PostgreSQL: the functions faka_search_vector() (a product's title and description cut
  into n-grams: CJK runs as characters and pairs, other words lower-cased) and
  faka_search_query() (a query cut the same way), and the table `product_search` (each
  product's vector, under a GIN index), written by a trigger on `products`.
- SQLite: an FTS5 table with the trigram tokenizer over products' title and description
  (external content), kept by three triggers on `products`.

The statements are written out here as they were at this revision (search.py builds the
same ones for create_all(); tests/catalog/test_search.py compares the two).

Revision ID: 20b1b2c3d4e5
Revises: 20a1b2c3d4e5
Create Date: 2026-12-07 18:00:00
"""

from alembic import op

revision = "20b1b2c3d4e5"
down_revision = "20a1b2c3d4e5"
branch_labels = None
depends_on = None

CJK = (
    (0x2E80, 0x2FDF),
    (0x3040, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3134F),
)
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
WORD_MAX = 64


def _escape(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _class(ranges) -> str:
    return "".join(_escape(lo) if lo == hi else f"{_escape(lo)}-{_escape(hi)}" for lo, hi in ranges)


TOKENS = f"([{_class(CJK)}]+)|([^{_class(CJK)}{_class(SEPARATORS)}]+)"

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
PG_DDL = (
    """CREATE TABLE product_search (
    product_id integer PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    document tsvector NOT NULL
)""",
    "CREATE INDEX ix_product_search_document ON product_search USING gin (document)",
    """CREATE OR REPLACE FUNCTION faka_product_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO product_search (product_id, document) VALUES (NEW.id, faka_search_vector(NEW.title, NEW.description_md))
    ON CONFLICT (product_id) DO UPDATE SET document = EXCLUDED.document;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER products_search AFTER INSERT OR UPDATE OF title, description_md ON products "
    "FOR EACH ROW EXECUTE FUNCTION faka_product_search()",
)

SQLITE_DDL = (
    "CREATE VIRTUAL TABLE product_search USING fts5(title, description_md, content='products', "
    "content_rowid='id', tokenize='trigram', columnsize=0)",
    """CREATE TRIGGER products_search_insert AFTER INSERT ON products BEGIN
    INSERT INTO product_search (rowid, title, description_md) VALUES (new.id, new.title, new.description_md);
END""",
    """CREATE TRIGGER products_search_delete AFTER DELETE ON products BEGIN
    INSERT INTO product_search (product_search, rowid, title, description_md)
    VALUES ('delete', old.id, old.title, old.description_md);
END""",
    """CREATE TRIGGER products_search_update AFTER UPDATE OF title, description_md ON products BEGIN
    INSERT INTO product_search (product_search, rowid, title, description_md)
    VALUES ('delete', old.id, old.title, old.description_md);
    INSERT INTO product_search (rowid, title, description_md) VALUES (new.id, new.title, new.description_md);
END""",
)


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_FUNCTIONS + PG_DDL:
            op.execute(statement)
        op.execute(  # the existing products
            "INSERT INTO product_search (product_id, document) "
            "SELECT id, faka_search_vector(title, description_md) FROM products"
        )
        return
    for statement in SQLITE_DDL:
        op.execute(statement)
    op.execute("INSERT INTO product_search (product_search) VALUES ('rebuild')")  # the existing products


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER products_search ON products")
        op.execute("DROP FUNCTION faka_product_search()")
        op.execute("DROP TABLE product_search")
        op.execute("DROP FUNCTION faka_search_query(text)")
        op.execute("DROP FUNCTION faka_search_vector(text, text)")
        return
    for trigger in ("products_search_insert", "products_search_delete", "products_search_update"):
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE product_search")
