"""Fill a database with a year of a busy platform, for the big-shop benchmark (issue 22;
`make bench-big` measures on it).

    .venv/bin/python bench/bigshop.py fill --database-url URL --instance DIR [--scale 1.0] [--seed 1]
                                           [--now 2025-01-01T12:00:00Z] [--reset]

At scale 1: 500 merchants, 5,000 products, 5,000,000 card keys and 1,000,000 orders over
the 365 days before now, with what such a year leaves behind: payment attempts, gateway
notifications and payments, ledger entries, refunds, complaints and their threads,
reviews, risk and security events, sign-ins, withdrawals, coupons, key imports, webhook
deliveries, emails and the audit log. A smaller scale shrinks every count (SQLite:
`--scale 0.05`).

The schema is the real one: `flask --app faka init-db` (the migrations) creates it, and the
rows are written as faka's own code writes them, so the pages, the reconciler and
`reconcile_books` see a consistent shop: a delivered order has its sold keys, its payment
and the sale and fee entries `credit_order` writes; a refund the entries `apply_refund`
writes; a withdrawal never takes more than was available; old IP addresses are hashed and
old notification bodies emptied as the daily retention job leaves them. Card keys are
encrypted with the instance's own keys (the key file `init-db` generates in the instance,
or FAKA_ENCRYPTION_KEYS) and carry the real keyed fingerprint, so the app run later on the
same instance reads them.

The year is simulated in time order (a queue of events: payments, deliveries, refunds,
complaint steps, withdrawals ...), so ids grow with time as in a real shop. The same seed
(and --now) gives the same shop; only the ciphertexts differ (Fernet is randomised), and the
hashed old addresses (keyed by the instance's secret key).

Writing: PostgreSQL gets COPY (psycopg), with the secondary indexes and the unique and
foreign-key constraints set aside during the load and put back, exactly as they were,
afterwards (the schema is the same before and after); SQLite gets executemany batches.
Both end with ANALYZE and VACUUM. It writes DIR/bigshop.json for the measuring side: the
logins (the biggest merchant's, 2FA off; an operator's with its TOTP secret), product slugs,
order tokens per status with their query password, lookup samples.

The database must be empty (just migrated) or `--reset` empties it first (PostgreSQL: the
public schema is dropped and made again; SQLite: the file is deleted).
"""

import argparse
import base64
import hashlib
import heapq
import itertools
import json
import math
import multiprocessing
import os
import random
import subprocess
import sys
import time
from array import array
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAY = 86400.0
HOUR = 3600.0
MINUTE = 60.0
YEAR_DAYS = 365
ORDER_TTL = 15 * MINUTE
BEIJING = 8 * HOUR  # the buyers' and merchants' clock: their day shapes the traffic
CURRENCY = "CNY"

# Passwords the measuring side logs in with (the same argon2 hash for every account of a
# kind: hashing 500 passwords would only cost time).
MERCHANT_PASSWORD = "bigshop-merchant-pass"
OPERATOR_PASSWORD = "bigshop-operator-pass"
QUERY_PASSWORD = "bigshop-query-1"

# Rows kept in memory per table before it gets its own COPY stream (PostgreSQL): the big
# tables stream, the small ones are written in one go at the end.
STREAM_AFTER = 20_000
SQLITE_BATCH = 5_000
KEY_CHUNK = 5_000  # keys per encryption task

# -- the tables, as the migrations make them ---------------------------------------------
# Every column is written (`:t` a time, given as a POSIX timestamp; `:b` a boolean), so no
# row depends on a server default.

TABLES = {
    "users": "id email password_hash role totp_secret failed_logins locked_until:t created_at:t email_verified_at:t "
    "recovery_codes totp_last_step",
    "merchants": "id user_id name status fee_rate_bp created_at:t legal_name entity_type id_number_ciphertext "
    "licence_image contact submitted_at:t reviewed_at:t rejection_reason notify_email hold_days public_id",
    "categories": "id name name_en position hidden:b deleted_at:t",
    "products": "id slug merchant_id category_id title description_md price delivery_type fixed_content_ciphertext "
    "manual_promise_hours refund_policy visible:b moderation position created_at:t reusable_key:b "
    "require_query_password:b moderation_reason deleted_at:t risk_captcha_at risk_hold_at require_email:b "
    "remote_url remote_secret_ciphertext license_checks:b activation_limit price_max",
    "product_variants": "id key product_id name name_en price min_per_order max_per_order low_stock_threshold "
    "position deleted_at:t created_at:t",
    "tier_prices": "id min_quantity unit_price variant_id",
    "checkout_fields": "id key product_id position label label_en kind required:b choices pattern pattern_message "
    "pattern_message_en help_text help_text_en created_at:t",
    "coupons": "id merchant_id code kind value product_id min_amount usage_limit used_count expires_at:t active:b "
    "created_at:t",
    "orders": "id number token product_id merchant_id quantity unit_price total currency email query_password_hash "
    "status gateway client_ip locale delivery_ciphertext created_at:t expires_at:t paid_at:t delivered_at:t "
    "discount coupon_id refunded_at:t device_hash refunded_amount payment_started_at:t payment_ref risk_flags "
    "held_at:t email_domain cancelled_at:t manual_fallback_at:t variant_id variant_name substore_id resale_base "
    "promoter_id commission_bp commission",
    "order_answers": "id order_id position field_key kind label label_en value_ciphertext",
    "payment_attempts": "id order_id gateway method reference created_at:t",
    "payment_notices": "id gateway trade_no order_id amount currency outcome received_at:t",
    "notify_log": "id gateway via order_number verified:b outcome reason source_ip headers body received_at:t",
    "refunds": "id order_id merchant_id complaint_id amount gateway status reference note created_at:t "
    "completed_at:t paid_by payment_notice_id",
    "ledger_entries": "id merchant_id order_id kind amount available_at:t created_at:t withdrawal_id",
    "payout_accounts": "id merchant_id kind holder account_ciphertext account_hint created_at:t deleted_at:t",
    "withdrawals": "id merchant_id payout_account_id amount status reason created_at:t decided_at:t reference",
    "outbox_emails": "id kind order_id to_addr locale status attempts last_error created_at:t sent_at:t subject "
    "payload_ciphertext user_id merchant_id claimed_until:t",
    "complaints": "id ref order_id merchant_id status reason description deadline_at:t offer_kind offer_amount "
    "offer_quantity refund_amount resolution_note decided_by created_at:t updated_at:t escalated_at:t resolved_at:t",
    "complaint_messages": "id complaint_id author user_id event body created_at:t",
    "reviews": "id order_id merchant_id product_id rating body created_at:t edited_at:t reply replied_at:t "
    "suspicious_reason hidden_at:t hidden_reason hidden_by",
    "risk_events": "id checkpoint action score captcha_solved:b ip device_hash email order_id merchant_id product_id "
    "created_at:t",
    "risk_hits": "id event_id rule score detail created_at:t",
    "security_events": "id kind ip device_hash subject detail created_at:t",
    "sign_ins": "id user_id ip device_hash created_at:t",
    "audit_events": "id actor_id action target detail created_at:t before after ip",
    "blacklist": "id kind value reason merchant_id created_by created_at:t expires_at:t",
    "product_reports": "id product_id reason text ip status created_at:t resolved_at:t resolved_by",
    "card_keys": "id product_id ciphertext fingerprint status order_id reserved_until:t sold_at:t created_at:t "
    "variant_id",
    "key_imports": "id public_id merchant_id product_id status total_lines processed added duplicate_in_batch "
    "already_in_stock invalid error created_at:t finished_at:t variant_id",
    "webhook_endpoints": "id merchant_id url secret_ciphertext events enabled:b created_at:t",
    "webhook_deliveries": "id endpoint_id event payload status attempts response_code last_error created_at:t "
    "delivered_at:t",
    "settings": "key value",
}


def _columns(spec: str) -> tuple[list[str], list[int], list[int]]:
    names, times, flags = [], [], []
    for i, column in enumerate(spec.split()):
        name, _, kind = column.partition(":")
        names.append(name)
        if kind == "t":
            times.append(i)
        elif kind == "b":
            flags.append(i)
    return names, times, flags


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


_from_timestamp = datetime.fromtimestamp


# -- writing: PostgreSQL --------------------------------------------------------------------


class Sink:
    """Where the rows of one table go, in its column order. Counts them and the time spent
    handing them to the database."""

    def __init__(self, table: str):
        self.table = table
        self.columns, self.times, self.flags = _columns(TABLES[table])
        self.rows = 0
        self.seconds = 0.0


class PgSink(Sink):
    def __init__(self, store: "PostgresStore", table: str):
        super().__init__(table)
        self.store = store
        self.buffer: list[tuple] = []
        self.connection = None
        self.copy_context = None
        self.copy = None

    def write(self, row: list) -> None:
        started = time.perf_counter()
        for i in self.times:
            value = row[i]
            if value.__class__ is float:
                row[i] = _from_timestamp(value, UTC)
        self.rows += 1
        if self.copy is not None:
            self.copy.write_row(row)
        else:
            self.buffer.append(row)
            if len(self.buffer) >= STREAM_AFTER:
                self._stream()
        self.seconds += time.perf_counter() - started

    def _copy(self, cursor, freeze: bool):
        """A binary COPY into the table (about three times faster than text), its
        columns typed from the catalogue."""
        context = cursor.copy(
            f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN (FORMAT BINARY{', FREEZE' if freeze else ''})"
        )
        copy = context.__enter__()
        copy.set_types([self.store.column_types[self.table][name] for name in self.columns])
        return context, copy

    def _stream(self) -> None:
        """Its own connection and COPY from now on. A table still empty is truncated in
        the same transaction, which lets COPY write its rows frozen (visible to all and
        needing no vacuum pass of their own)."""
        import psycopg

        self.connection = psycopg.connect(self.store.url)
        self.connection.execute("SET synchronous_commit = off")
        cursor = self.connection.cursor()
        freeze = self.table in self.store.empty_tables
        if freeze:
            cursor.execute(f"TRUNCATE {self.table}")
        self.copy_context, self.copy = self._copy(cursor, freeze)
        for row in self.buffer:
            self.copy.write_row(row)
        self.buffer = []

    def close(self, shared) -> None:
        started = time.perf_counter()
        if self.copy is not None:
            self.copy_context.__exit__(None, None, None)
            self.connection.commit()
            self.connection.close()
        elif self.buffer:
            context, copy = self._copy(shared.cursor(), freeze=False)
            for row in self.buffer:
                copy.write_row(row)
            context.__exit__(None, None, None)
            self.buffer = []
        self.seconds += time.perf_counter() - started


class PostgresStore:
    """COPY into a migrated PostgreSQL database whose secondary indexes and unique and
    foreign-key constraints are set aside during the load and made again from their own
    definitions afterwards: building an index once over sorted data is far cheaper than
    keeping it up to date through millions of inserts, and a foreign key is then checked
    in one pass. Partial indexes stay (they are on small tables, and PostgreSQL would
    write a re-created one's predicate in other words)."""

    def __init__(self, url: str):
        import psycopg

        self.url = url
        self.admin = psycopg.connect(url, autocommit=True)
        self.shared = psycopg.connect(url)
        self.sinks: dict[str, PgSink] = {}
        self.empty_tables: set[str] = set()
        self.indexes: list[tuple[str, str]] = []  # (table, CREATE INDEX ...)
        self.uniques: list[tuple[str, str]] = []  # (table, ALTER TABLE ... ADD CONSTRAINT ... UNIQUE)
        self.foreign_keys: list[tuple[str, str]] = []
        self.index_seconds: dict[str, float] = {}
        self.vacuum_seconds: dict[str, float] = {}
        self.column_types: dict[str, dict[str, int]] = {}

    @staticmethod
    def reset(url: str) -> None:
        """Drop faka's tables and functions (the public schema itself stays as it was)."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            tables = [
                name for (name,) in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ]
            if tables:
                connection.execute(f"DROP TABLE {', '.join(tables)} CASCADE")
            for (signature,) in connection.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
            ).fetchall():
                connection.execute(f"DROP FUNCTION IF EXISTS {signature} CASCADE")

    def filled(self) -> bool:
        return bool(self.admin.execute("SELECT EXISTS (SELECT 1 FROM merchants)").fetchone()[0])

    def sink(self, table: str) -> PgSink:
        if table not in self.sinks:
            self.sinks[table] = PgSink(self, table)
        return self.sinks[table]

    def begin(self) -> None:
        tables = [
            name
            for (name,) in self.admin.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        for name in tables:
            if name in TABLES and not self.admin.execute(f"SELECT EXISTS (SELECT 1 FROM {name})").fetchone()[0]:
                self.empty_tables.add(name)
        for table, column, type_oid in self.admin.execute(
            """SELECT c.relname, a.attname, a.atttypid::int FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped"""
        ).fetchall():
            self.column_types.setdefault(table, {})[column] = type_oid
        constraints = self.admin.execute(
            """SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
            FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype IN ('f', 'u')
            ORDER BY conrelid::regclass::text, conname"""
        ).fetchall()
        indexes = self.admin.execute(
            """SELECT t.relname, i.relname, pg_get_indexdef(x.indexrelid)
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = 'public' AND NOT x.indisprimary AND x.indpred IS NULL
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
            ORDER BY t.relname, i.relname"""
        ).fetchall()
        for table, name, kind, definition in constraints:
            statement = f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
            (self.foreign_keys if kind == "f" else self.uniques).append((table, statement))
        for table, name, _kind, _definition in sorted(constraints, key=lambda c: c[2] != "f"):
            self.admin.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for table, name, definition in indexes:
            self.indexes.append((table, definition))
            self.admin.execute(f"DROP INDEX {name}")

    def finish(self, progress) -> None:
        for sink in self.sinks.values():
            sink.close(self.shared)
        self.shared.commit()
        progress("rows written; building indexes and constraints")
        self.admin.execute("SET maintenance_work_mem = '1GB'")
        self.admin.execute("SET max_parallel_maintenance_workers = 2")
        for table, statement in [*self.indexes, *self.uniques, *self.foreign_keys]:
            started = time.perf_counter()
            self.admin.execute(statement)
            self.index_seconds[table] = self.index_seconds.get(table, 0.0) + time.perf_counter() - started
        for (table,) in self.admin.execute(
            """SELECT table_name FROM information_schema.columns
            WHERE table_schema = 'public' AND column_name = 'id' AND column_default LIKE 'nextval%'"""
        ).fetchall():
            self.admin.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 1), max(id) IS NOT NULL) "
                f"FROM {table}"
            )
        progress("vacuum and analyze")
        for (table,) in self.admin.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall():
            started = time.perf_counter()
            self.admin.execute(f"VACUUM (ANALYZE) {table}")
            self.vacuum_seconds[table] = time.perf_counter() - started

    def counts(self) -> dict[str, int]:
        return {
            table: self.admin.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for (table,) in self.admin.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        }

    def close(self) -> None:
        self.shared.close()
        self.admin.close()


# -- writing: SQLite ------------------------------------------------------------------------


class SqliteSink(Sink):
    def __init__(self, store: "SqliteStore", table: str):
        super().__init__(table)
        self.store = store
        self.buffer: list[list] = []
        self.statement = (
            f"INSERT INTO {table} ({', '.join(self.columns)}) VALUES ({', '.join('?' * len(self.columns))})"
        )

    def write(self, row: list) -> None:
        started = time.perf_counter()
        for i in self.times:
            value = row[i]
            if value is not None:
                # SQLAlchemy's format for SQLite: naive UTC, microseconds (faka.core.types).
                when = _utc(value) if value.__class__ is float else value
                row[i] = when.strftime("%Y-%m-%d %H:%M:%S.%f")
        for i in self.flags:
            if row[i] is not None:
                row[i] = int(row[i])
        self.rows += 1
        self.buffer.append(row)
        if len(self.buffer) >= SQLITE_BATCH:
            self.flush()
        self.seconds += time.perf_counter() - started

    def flush(self) -> None:
        if self.buffer:
            self.store.connection.executemany(self.statement, self.buffer)
            self.buffer = []


class SqliteStore:
    def __init__(self, path: str):
        import sqlite3

        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("PRAGMA synchronous = OFF")
        self.connection.execute("PRAGMA cache_size = -262144")
        self.sinks: dict[str, SqliteSink] = {}
        self.index_seconds: dict[str, float] = {}
        self.vacuum_seconds: dict[str, float] = {}

    def filled(self) -> bool:
        return bool(self.connection.execute("SELECT EXISTS (SELECT 1 FROM merchants)").fetchone()[0])

    def sink(self, table: str) -> SqliteSink:
        if table not in self.sinks:
            self.sinks[table] = SqliteSink(self, table)
        return self.sinks[table]

    def begin(self) -> None:
        self.connection.execute("BEGIN")

    def finish(self, progress) -> None:
        for sink in self.sinks.values():
            started = time.perf_counter()
            sink.flush()
            sink.seconds += time.perf_counter() - started
        self.connection.execute("COMMIT")
        progress("analyze and vacuum")
        started = time.perf_counter()
        self.connection.execute("ANALYZE")
        self.connection.execute("VACUUM")
        self.vacuum_seconds["(whole file)"] = time.perf_counter() - started

    def counts(self) -> dict[str, int]:
        names = [
            name
            for (name,) in self.connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "AND name NOT LIKE 'product_search%' ORDER BY name"
            )
        ]
        return {name: self.connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in names}

    def close(self) -> None:
        self.connection.close()


# -- the card keys' encryption, in worker processes ------------------------------------------

_worker_vault = None


def _start_worker(raw_keys: str) -> None:
    global _worker_vault
    from faka.core.crypto import make_vault

    _worker_vault = make_vault(raw_keys)


def _in_order(tasks, pool, ahead: int = 16):
    """encrypt_keys of each task, in the tasks' order: in the pool's processes with a few
    tasks ahead (not all of them: the results would pile up in memory), or here."""
    if pool is None:
        yield from map(encrypt_keys, tasks)
        return
    waiting: deque = deque()
    for task in tasks:
        waiting.append(pool.apply_async(encrypt_keys, (task,)))
        if len(waiting) >= ahead:
            yield waiting.popleft().get()
    while waiting:
        yield waiting.popleft().get()


def key_text(seed: int, product_id: int, index: int, prefix: str) -> str:
    """The plaintext of a product's index-th key: the same for a seed, unique in its product."""
    digest = hashlib.blake2b(f"{seed}:{product_id}:{index}".encode(), digest_size=15).digest()
    body = base64.b32encode(digest).decode()
    return prefix + "-".join(body[i : i + 6] for i in range(0, 24, 6))


def encrypt_keys(task: tuple[int, int, int, int, str]) -> tuple[list[str], list[str]]:
    """Ciphertexts and fingerprints of `count` keys of a product from `first` on."""
    seed, product_id, first, count, prefix = task
    vault = _worker_vault
    ciphertexts, fingerprints = [], []
    for index in range(first, first + count):
        text = key_text(seed, product_id, index, prefix)
        ciphertexts.append(vault.encrypt(text))
        fingerprints.append(vault.fingerprint(text))
    return ciphertexts, fingerprints


# -- the platform's vocabulary -------------------------------------------------------------

CATEGORIES = [
    ("游戏点卡", "Game cards"),
    ("软件激活码", "Software keys"),
    ("视频会员", "Video memberships"),
    ("音乐会员", "Music memberships"),
    ("课程兑换码", "Course codes"),
    ("网盘会员", "Cloud storage"),
    ("手游代充", "Mobile game top-ups"),
    ("礼品卡", "Gift cards"),
    ("办公软件", "Office software"),
    ("安全软件", "Security software"),
    ("开发工具", "Developer tools"),
    ("设计素材", "Design assets"),
    ("电子书", "E-books"),
    ("游戏加速器", "Game accelerators"),
    ("主机游戏", "Console games"),
    ("学习资料", "Study materials"),
    ("AI 工具", "AI tools"),
    ("其他", "Other"),
]
HIDDEN_CATEGORY = ("旧版分类", "Old shelf")
DELETED_CATEGORY = ("测试分类", "Test shelf")

# (category, title, choice kind, base price in fen, key prefix, delivery)
# choice kinds: "face" (面值: the price follows the value), "months", "edition", None.
TEMPLATES = [
    (0, "Steam 钱包充值卡", "face", 96, "STEAM-", "auto"),
    (0, "Xbox Game Pass Ultimate", "months", 6900, "XGPU-", "auto"),
    (0, "PSN 港服点卡", "face", 88, "PSN-", "auto"),
    (0, "任天堂 eShop 充值卡", "face", 95, "NSW-", "auto"),
    (0, "暴雪战网点卡", "face", 97, "BNET-", "auto"),
    (0, "网易一卡通", "face", 98, "", "auto"),
    (1, "Windows 11 专业版 激活密钥", None, 3900, "", "auto"),
    (1, "Windows 10 家庭版 零售密钥", None, 2900, "", "auto"),
    (1, "Parallels Desktop 19 激活码", "edition", 19900, "PD19-", "auto"),
    (1, "WinRAR 个人授权", None, 4900, "RAR-", "auto"),
    (2, "爱奇艺黄金VIP会员", "months", 1900, "", "auto"),
    (2, "腾讯视频VIP会员", "months", 2000, "", "auto"),
    (2, "优酷VIP会员", "months", 1500, "", "auto"),
    (2, "芒果TV会员", "months", 1500, "", "auto"),
    (2, "Netflix 高级会员 独享车位", "months", 3500, "", "auto"),
    (2, "哔哩哔哩大会员", "months", 1500, "BILI-", "auto"),
    (3, "网易云音乐黑胶VIP", "months", 1200, "", "auto"),
    (3, "QQ音乐豪华绿钻", "months", 1300, "", "auto"),
    (3, "Spotify Premium 个人会员", "months", 1800, "", "auto"),
    (3, "Apple Music 个人订阅", "months", 1000, "", "auto"),
    (4, "Python 全栈开发课程 兑换码", None, 9900, "PY-", "fixed"),
    (4, "考研英语 全程班 兑换码", None, 19900, "KY-", "auto"),
    (4, "Excel 数据分析实战课", None, 4900, "", "fixed"),
    (5, "百度网盘超级会员", "months", 2500, "", "auto"),
    (5, "阿里云盘 SVIP", "months", 1800, "", "auto"),
    (6, "原神 创世结晶 代充", "face", 100, "", "manual"),
    (6, "王者荣耀 点券 代充", "face", 99, "", "manual"),
    (6, "和平精英 UC 代充", "face", 99, "", "manual"),
    (7, "Google Play 礼品卡 美区", "face", 720, "GP-", "auto"),
    (7, "App Store 充值卡 美区", "face", 715, "", "auto"),
    (7, "京东E卡", "face", 96, "JD-", "auto"),
    (8, "Office 2021 专业增强版", None, 5900, "", "auto"),
    (8, "Microsoft 365 家庭版 12个月", None, 19900, "", "auto"),
    (8, "WPS 超级会员", "months", 1500, "WPS-", "auto"),
    (9, "卡巴斯基 安全软件 1年", "edition", 4900, "KAV-", "auto"),
    (9, "ESET NOD32 激活码", "edition", 3900, "EAV-", "auto"),
    (10, "JetBrains 全家桶 授权 1年", None, 29900, "JB-", "auto"),
    (10, "GitHub Copilot 个人版", "months", 6000, "", "auto"),
    (10, "Navicat Premium 17 激活码", None, 15900, "NAV-", "auto"),
    (11, "高清商用字体包", None, 2900, "", "fixed"),
    (11, "PPT 模板合集 终身会员", None, 3900, "", "fixed"),
    (12, "Kindle Unlimited 会员", "months", 1200, "", "auto"),
    (13, "迅游加速器 会员", "months", 1800, "XY-", "auto"),
    (13, "UU加速器 会员", "months", 1500, "UU-", "auto"),
    (14, "艾尔登法环 Steam 激活码", None, 19800, "STM-", "auto"),
    (14, "赛博朋克 2077 Steam 激活码", None, 12800, "STM-", "auto"),
    (15, "雅思真题 电子资料", None, 1900, "", "fixed"),
    (16, "ChatGPT Plus 独享账号", "months", 13900, "", "manual"),
    (16, "Midjourney 基础会员", "months", 7900, "MJ-", "auto"),
    (17, "定制代办服务", None, 5000, "", "manual"),
]
FACES = [10, 20, 50, 100, 200, 500]
MONTHS = [1, 3, 6, 12]
EDITIONS = [("标准版", "Standard", 1.0), ("专业版", "Pro", 1.8), ("企业版", "Business", 3.2)]
TAGS = ["", "", "", "自动发货 ", "秒发 ", "官方正品 ", "稳定 ", "独享 ", "限时特价 "]

SHOP_HEADS = ["星辰", "云端", "极速", "蓝鲸", "熊猫", "闪电", "银河", "光速", "红杉", "橙子", "青柠", "北极"]
SHOP_HEADS += ["火山", "海豚", "老王", "小李", "阿杰", "飞鱼", "麦田", "鲸鱼", "山海", "木子", "星河", "乐享"]
SHOP_MIDS = ["数字", "卡密", "发卡", "游戏", "软件", "会员", "点卡", "礼品", "数码", "网络"]
SHOP_TAILS = ["商店", "小铺", "工作室", "商城", "专营店", "小站", "杂货铺", "科技"]
SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭"]
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "涛", "明", "超", "霞", "平"]

EMAIL_DOMAINS = [
    ("qq.com", 46),
    ("163.com", 14),
    ("gmail.com", 9),
    ("126.com", 6),
    ("outlook.com", 6),
    ("foxmail.com", 4),
    ("sina.com", 3),
    ("hotmail.com", 3),
    ("139.com", 2),
    ("icloud.com", 3),
    ("yeah.net", 1),
    ("proton.me", 1),
    ("mailinator.com", 1),  # a throwaway domain: the risk rules notice it
]
FIRST_OCTETS = [27, 36, 39, 42, 49, 58, 59, 60, 61, 101, 106, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119]
FIRST_OCTETS += [120, 121, 122, 123, 124, 125, 139, 171, 175, 180, 182, 183, 202, 211, 218, 219, 220, 221, 222, 223]
GATEWAYS = [("epay", 45), ("alipay", 26), ("wechat", 19), ("usdt", 6), ("stripe", 4)]
DOMAIN_NAMES = [name for name, _ in EMAIL_DOMAINS]
DOMAIN_WEIGHTS = list(itertools.accumulate(weight for _, weight in EMAIL_DOMAINS))
GATEWAY_NAMES = [name for name, _ in GATEWAYS]
GATEWAY_WEIGHTS = list(itertools.accumulate(weight for _, weight in GATEWAYS))
GATEWAY_METHODS = {
    "sandbox": "page",
    "epay": "qr",
    "alipay": "wap",
    "wechat": "native",
    "usdt": "trc20",
    "stripe": "checkout",
}
GATEWAY_SOURCES = {
    "epay": ["47.96.121.10", "47.96.121.11"],
    "alipay": ["110.75.139.5", "110.75.143.20", "110.75.152.3"],
    "wechat": ["101.226.103.17", "183.3.234.107"],
    "usdt": ["154.21.85.30"],
    "stripe": ["54.187.174.169", "54.187.205.235"],
}
# Gateways whose refund API faka calls; the others leave a refund to the operator.
REFUNDS_BY_GATEWAY = {"alipay", "wechat", "stripe"}
USER_AGENTS = {
    "epay": "Mozilla/4.0 (compatible; EPay notify)",
    "alipay": "Mozilla/4.0",
    "wechat": "Mozilla/4.0",
    "usdt": "epusdt/1.0",
    "stripe": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
}
# Local hour of day (Beijing) -> relative traffic: quiet at dawn, busiest in the evening.
HOURLY = [2.0, 1.2, 0.7, 0.4, 0.3, 0.3, 0.5, 1.0, 1.8, 2.6, 3.2, 3.5, 3.6, 3.4, 3.3, 3.3, 3.4, 3.6, 4.0, 4.6, 5.2, 5.6]
HOURLY += [5.0, 3.5]

REVIEW_TEXTS = [
    "秒发货，卡密可用，好评！",
    "很快就收到了，第二次买了。",
    "价格实惠，兑换成功。",
    "客服回复及时，推荐。",
    "一切正常，下次还来。",
    "",
    "",
    "发货速度快，满意。",
    "卡密有效，已经激活。",
    "有点慢，不过最后好了。",
    "不太好用，客服处理中。",
    "Fast delivery, works fine.",
]
BAD_REVIEW_TEXTS = ["卡密提示已被使用，体验很差。", "描述不符，不推荐。", "等了很久才发货。"]
REPLY_TEXTS = ["感谢支持，欢迎再次光临！", "谢谢好评~", "抱歉给您带来不便，已私信处理。", "感谢反馈，我们会改进。"]
COMPLAINT_TEXTS = {
    "key_invalid": ["卡密提示已被使用，无法兑换，附截图。", "兑换时提示无效代码。", "激活失败，提示密钥已被封禁。"],
    "not_as_described": ["商品描述是港服，实际是国服。", "说是独享，实际被别人挤下线。"],
    "not_delivered": ["付款后一直没有收到卡密。", "代充说两小时，等了一天还没到账。"],
    "other": ["买错了面值，想申请退款。", "重复下单了，申请退一单。"],
}
MERCHANT_REPLIES = [
    "您好，请提供兑换页面的截图，我们核实后处理。",
    "已核实，给您补发/退款，请查收。",
    "卡密出库前均已测试，请确认区服是否正确。",
]
BUYER_FOLLOWUPS = ["截图已上传，请尽快处理。", "好的，等你们消息。", "还是不行，麻烦再看看。"]
DECISION_REASONS_REFUND = ["卖家未能证明卡密有效，按规则退款。", "证据显示卡密在发货前已被使用，支持买家。"]
DECISION_REASONS_REJECT = ["买家未提供有效证据，驳回。", "卡密兑换记录显示已由买家账号使用，驳回。"]


@dataclass(frozen=True)
class Scale:
    merchants: int
    products: int
    keys: int
    orders: int
    operators: int = 3

    @classmethod
    def of(cls, scale: float) -> "Scale":
        return cls(
            merchants=max(6, round(500 * scale)),
            products=max(24, round(5000 * scale)),
            keys=max(6000, round(5_000_000 * scale)),
            orders=max(1500, round(1_000_000 * scale)),
        )


# -- the simulated world ---------------------------------------------------------------------


@dataclass(eq=False)
class Variant:
    id: int
    key: str
    product: "Product"
    name: str
    name_en: str | None
    price: int
    max_per_order: int
    position: int
    tiers: list[tuple[int, int]] = field(default_factory=list)
    weight: float = 1.0
    first_index: int = 0  # where its keys' plaintexts start in the product's sequence
    deleted_at: float | None = None
    # Units sold, in time order (what the card keys are made from), and units reserved
    # by unpaid or held orders at the end.
    sold_at: array = field(default_factory=lambda: array("d"))
    sold_order: array = field(default_factory=lambda: array("q"))
    reserved: list[tuple[int, int, float]] = field(default_factory=list)
    reserved_units: list[tuple[int, float]] | None = None
    stock: int = 0  # unsold keys to make besides those

    def unit_price(self, quantity: int) -> int:
        price = self.price
        for min_quantity, unit_price in self.tiers:
            if quantity >= min_quantity:
                price = min(price, unit_price)
        return price


@dataclass(eq=False)
class Product:
    id: int
    slug: str
    merchant: "Merchant"
    category_id: int
    title: str
    delivery: str
    created: float
    weight: float
    prefix: str
    variants: list[Variant] = field(default_factory=list)
    fixed_ciphertext: str | None = None
    fields: list[tuple[str, str, str | None, str]] = field(default_factory=list)  # (key, label, label_en, kind)
    sellable_from: float = 0.0
    sellable_until: float = math.inf
    deleted_at: float | None = None
    require_email: bool = False
    require_query_password: bool = False
    orders: int = 0

    @property
    def has_choice(self) -> bool:
        return len([v for v in self.variants if v.deleted_at is None]) > 1


@dataclass(eq=False)
class Merchant:
    id: int
    user_id: int
    email: str
    name: str
    public_id: str
    status: str
    created: float
    approved: float | None
    frozen_at: float | None
    fee_bp: int
    hold_days: int
    weight: float
    products: list[Product] = field(default_factory=list)
    coupons: list[list] = field(
        default_factory=list
    )  # [id, code, kind, value, product_id, min, limit, used, expires, created]
    payout_account: int | None = None
    webhook_endpoint: int | None = None
    sign_in_ips: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    maturing: list[tuple[float, int]] = field(default_factory=list)  # heap of (available_at, amount)
    matured: int = 0
    withdrawn: int = 0
    orders: int = 0
    _day: int = -1
    _cumulative: list[float] = field(default_factory=list)
    _sellable: list[Product] = field(default_factory=list)

    def sells_at(self, t: float) -> bool:
        return self.approved is not None and self.approved <= t and (self.frozen_at is None or t < self.frozen_at)


@dataclass(eq=False)
class Order:
    """What later events need to know about an order."""

    id: int
    number: str
    token: str
    merchant: Merchant
    product: Product
    variant: Variant
    quantity: int
    total: int
    email: str | None
    gateway: str
    locale: str
    created: float
    delivered_at: float | None = None
    available_at: float = 0.0
    fee: int = 0


class Clock:
    """Times as POSIX seconds; `now` is when the year ends."""

    def __init__(self, now: datetime):
        self.now = now.timestamp()
        self.start = self.now - YEAR_DAYS * DAY


class World:
    def __init__(self, store, context: "Context", scale: Scale, seed: int, now: datetime, progress):
        self.store = store
        self.context = context
        self.scale = scale
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = Clock(now)
        self.now = self.clock.now
        self.progress = progress
        self.ids: dict[str, int] = {}
        self.events: list = []
        self.event_seq = itertools.count()
        self.merchants: list[Merchant] = []
        self.products: list[Product] = []
        self.operator_ids: list[int] = []
        self.buyers: list[tuple[str | None, str, str, str]] = []  # (email, ip, device, locale)
        self.numbers: set[str] = set()
        self.hashed_ips: dict[str, str] = {}
        self.samples: dict[str, dict[str, list[dict]]] = {}
        self.seen: dict[tuple[str, str], int] = {}
        self.sampler = random.Random(seed + 1)
        self.lookup_emails: dict[str, int] = {}
        self.open_withdrawals: dict[int, int] = {}
        self.writers: dict = {}
        self.days: dict[int, str] = {}
        self._merchant_day: int | None = None
        self._sellers: list[Merchant] = []
        self._seller_weights: list[float] = []

    # -- small helpers --------------------------------------------------------------------

    def next_id(self, table: str) -> int:
        self.ids[table] = self.ids.get(table, 0) + 1
        return self.ids[table]

    def write(self, table: str, row: list) -> None:
        writer = self.writers.get(table)
        if writer is None:
            writer = self.writers[table] = self.store.sink(table).write
        writer(row)

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def at(self, when: float, handler, *args) -> None:
        """Run handler(when, *args) when the simulation reaches `when` (never after now)."""
        if when <= self.now:
            heapq.heappush(self.events, (when, next(self.event_seq), handler, args))

    def run_until(self, t: float) -> None:
        events = self.events
        while events and events[0][0] <= t:
            when, _seq, handler, args = heapq.heappop(events)
            handler(when, *args)

    def ip_at(self, ip: str | None, written: float) -> str | None:
        """An address as the retention job leaves it: hashed once older than 30 days."""
        if ip is None or written >= self.now - 30 * DAY:
            return ip
        hashed = self.hashed_ips.get(ip)
        if hashed is None:
            hashed = self.hashed_ips[ip] = self.context.hash_ip(ip)
        return hashed

    def pick(self, cumulative: list[float], items: list):
        """One of items, by the weights whose running sums are `cumulative` (random.choices
        without its per-call set-up)."""
        return items[bisect_right(cumulative, self.rng.random() * cumulative[-1])]

    def random_ip(self) -> str:
        rng = self.rng
        return f"{rng.choice(FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

    def audit(
        self,
        when: float,
        actor: int | None,
        action: str,
        target: str | None,
        detail: str = "",
        before: dict | None = None,
        after: dict | None = None,
        ip: str | None = None,
    ) -> None:
        """An audit event at `when`, written in its turn so the log's ids follow its times."""
        self.at(when, self._audit_row, actor, action, target, detail, before, after, ip)

    def _audit_row(self, when, actor, action, target, detail, before, after, ip) -> None:
        def encode(fields):
            return None if fields is None else json.dumps(fields, sort_keys=True, ensure_ascii=False)

        self.write(
            "audit_events",
            [
                self.next_id("audit_events"),
                actor,
                action,
                target,
                detail,
                when,
                encode(before),
                encode(after),
                self.ip_at(ip, when),
            ],
        )

    def operator(self) -> int:
        return self.rng.choice(self.operator_ids)

    def operator_ip(self) -> str:
        return self.rng.choice(("116.228.88.10", "116.228.88.11", "222.73.14.2"))

    def sample(self, group: str, kind: str, entry, limit: int = 40) -> None:
        """Keep `limit` of each kind, drawn evenly from the whole year (reservoir
        sampling, with its own random numbers so the shop does not depend on it);
        `entry()` makes the sample when one is kept."""
        key = (group, kind)
        seen = self.seen[key] = self.seen.get(key, 0) + 1
        found = self.samples.setdefault(group, {}).setdefault(kind, [])
        if len(found) < limit:
            found.append(entry())
        else:
            slot = self.sampler.randrange(seen)
            if slot < limit:
                found[slot] = entry()

    # -- the platform before the year's orders -------------------------------------------------

    def build(self) -> None:
        self._settings()
        self._operators()
        self._categories()
        self._merchants()
        self._products()
        self._coupons()
        self._blacklist()

    def _settings(self) -> None:
        values = {
            "site_name": "大商城 bigshop",
            "announcement": "本站为发卡平台演示数据：一年的订单、投诉与结算。",
            "icp_number": "沪ICP备00000000号-1",
            "terms": "## 服务条款\n\n在本平台购买的虚拟商品由各商户提供……",
            "refund_policy": "## 退款政策\n\n卡密发出后如无效，可在 7 天内发起投诉……",
            "privacy_policy": "## 隐私政策\n\n我们只保存完成订单所需的信息……",
            "contact_qq": "10001",
            "contact_email": "support@bigshop.example",
            "prohibited_words": "外挂\n破解\n账号出租",
        }
        for key, value in values.items():
            self.write("settings", [key, value])

    def _operators(self) -> None:
        ctx = self.context
        for n in range(self.scale.operators):
            user_id = self.next_id("users")
            email = "ops@bigshop.local" if n == 0 else f"ops{n + 1}@bigshop.local"
            secret = base64.b32encode(self.rng.randbytes(20)).decode()
            created = self.clock.start - 400 * DAY + n * 30 * DAY
            if n == 0:
                ctx.operator = {
                    "email": email,
                    "password": OPERATOR_PASSWORD,
                    "totp_secret": secret,
                    "user_id": user_id,
                }
            self.write(
                "users",
                [
                    user_id,
                    email,
                    ctx.operator_hash,
                    "operator",
                    ctx.vault.encrypt(secret),
                    0,
                    None,
                    created,
                    created,
                    ctx.recovery_hashes,
                    None,
                ],
            )
            self.operator_ids.append(user_id)
            self.audit(created, None, "operator.created", f"user:{user_id}")
            self.audit(created + 120, user_id, "2fa.enabled", f"user:{user_id}", ip=self.operator_ip())

    def _categories(self) -> None:
        operator = self.operator_ids[0]
        when = self.clock.start - 400 * DAY
        rows = [(name, en, False, None) for name, en in CATEGORIES]
        rows.append((*HIDDEN_CATEGORY, True, None))
        rows.append((*DELETED_CATEGORY, False, self.clock.start - 300 * DAY))
        for position, (name, en, hidden, deleted) in enumerate(rows, start=1):
            category_id = self.next_id("categories")
            self.write("categories", [category_id, name, en, position, hidden, deleted])
            self.audit(when + position * 60, operator, "category.created", f"category:{category_id}")

    def _merchants(self) -> None:
        rng, ctx, clock = self.rng, self.context, self.clock
        count = self.scale.merchants
        weights = [1.0 / (rank + 1) ** 1.05 for rank in range(count)]
        # One merchant takes about a tenth of the platform's orders (at scale 1, ~100,000).
        weights[0] = 0.11 * sum(weights[1:]) / 0.89
        for rank in range(count):
            user_id, merchant_id = self.next_id("users"), self.next_id("merchants")
            big = rank == 0
            roll = rng.random()
            status = "approved"
            if not big and rank >= 3:
                if roll < 0.04:
                    status = "pending"
                elif roll < 0.06:
                    status = "rejected"
                elif roll < 0.085:
                    status = "frozen"
            if big or rank < 20:
                created = clock.start - rng.uniform(60, 400) * DAY
            else:
                # Growth: more shops opened in the second half of the year.
                created = clock.start + (rng.random() ** 0.7) * YEAR_DAYS * DAY - 100 * DAY * rng.random() ** 3
                created = min(created, self.now - 2 * DAY)
            submitted = created + rng.uniform(0.1, 48) * HOUR
            reviewed = submitted + rng.uniform(0.5, 72) * HOUR
            if status == "pending":
                submitted = self.now - rng.uniform(1, 72) * HOUR if rng.random() < 0.8 else None
                created = min(created, (submitted or self.now) - HOUR)
                reviewed = None
            else:
                # Reviewed a few days before now at the latest: it has had time to list goods.
                created = min(created, self.now - 8 * DAY)
                submitted = created + rng.uniform(0.1, 48) * HOUR
                reviewed = submitted + rng.uniform(0.5, 72) * HOUR
            approved = reviewed if status in ("approved", "frozen") else None
            frozen_at = None
            if status == "frozen":
                frozen_at = approved + rng.uniform(0.3, 0.9) * (self.now - approved)
            name = rng.choice(SHOP_HEADS) + rng.choice(SHOP_MIDS) + rng.choice(SHOP_TAILS)
            email = "big@bigshop.local" if big else f"merchant{rank:03d}@bigshop.local"
            totp = not big and status == "approved" and rng.random() < 0.45
            public_id = self.hex(12)
            merchant = Merchant(
                id=merchant_id,
                user_id=user_id,
                email=email,
                name=name,
                public_id=public_id,
                status=status,
                created=created,
                approved=approved,
                frozen_at=frozen_at,
                fee_bp=250 if big else rng.choice((300, 300, 300, 300, 200, 500)),
                hold_days=7 if rng.random() < 0.1 else 3,
                weight=weights[rank],
            )
            self.merchants.append(merchant)
            self.write(
                "users",
                [
                    user_id,
                    email,
                    ctx.merchant_hash,
                    "merchant",
                    ctx.vault.encrypt(base64.b32encode(rng.randbytes(20)).decode()) if totp else None,
                    0,
                    None,
                    created,
                    created + rng.uniform(60, 3600),
                    ctx.recovery_hashes if totp else None,
                    None,
                ],
            )
            person = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
            company = rng.random() < 0.35
            self.write(
                "merchants",
                [
                    merchant_id,
                    user_id,
                    name,
                    status,
                    merchant.fee_bp,
                    created,
                    f"上海{name}网络科技有限公司" if company else person,
                    "company" if company else "individual",
                    ctx.vault.encrypt(
                        f"91310000MA1{rng.randrange(10**7):07d}X" if company else f"3101{rng.randrange(10**14):014d}"
                    )
                    if submitted
                    else None,
                    f"{self.hex(32)}.jpg" if submitted else None,
                    f"QQ {rng.randrange(10**8, 10**10)}",
                    submitted,
                    reviewed,
                    "营业执照照片不清晰，请重新上传。" if status == "rejected" else None,
                    email if rng.random() < 0.3 else None,
                    merchant.hold_days,
                    public_id,
                ],
            )
            self.audit(created, user_id, "merchant.signed_up", f"merchant:{merchant_id}", ip=self.random_ip())
            if reviewed is not None:
                decision = "rejected" if status == "rejected" else "approved"
                self.audit(
                    reviewed,
                    self.operator(),
                    f"merchant.{decision}",
                    f"merchant:{merchant_id}",
                    before={"status": "pending"},
                    after={"status": decision},
                    detail="营业执照照片不清晰，请重新上传。" if decision == "rejected" else "",
                    ip=self.operator_ip(),
                )
            if frozen_at is not None:
                self.audit(
                    frozen_at,
                    self.operator(),
                    "merchant.frozen",
                    f"merchant:{merchant_id}",
                    before={"status": "approved"},
                    after={"status": "frozen"},
                    detail="多起投诉未处理，冻结待查。",
                    ip=self.operator_ip(),
                )
            if totp:
                self.audit(created + DAY, user_id, "2fa.enabled", f"user:{user_id}", ip=self.random_ip())
            merchant.sign_in_ips = [self.random_ip() for _ in range(rng.randint(1, 3))]
            merchant.devices = [self.hex(64) for _ in range(rng.randint(1, 3))]
            if approved is not None:
                self._merchant_extras(merchant)

    def _merchant_extras(self, merchant: Merchant) -> None:
        """A payout account, maybe a webhook endpoint, the withdrawals and the sign-ins."""
        rng, ctx = self.rng, self.context
        opened = min(merchant.approved + rng.uniform(1, 96) * HOUR, self.now - HOUR)
        kind = rng.choice(("alipay", "alipay", "bank", "usdt"))
        if kind == "alipay":
            account = f"1{rng.randrange(30, 90)}{rng.randrange(10**8):08d}"
        elif kind == "bank":
            account = f"6222{rng.randrange(10**15):015d}"
        else:
            account = "T" + "".join(
                rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789") for _ in range(33)
            )
        account_id = self.next_id("payout_accounts")
        self.write(
            "payout_accounts",
            [account_id, merchant.id, kind, merchant.name[:80], ctx.vault.encrypt(account), account[-4:], opened, None],
        )
        self.audit(
            opened,
            merchant.user_id,
            "payout_account.added",
            f"merchant:{merchant.id}",
            f"payout_account:{account_id} {kind}",
        )
        merchant.payout_account = account_id
        self.at(opened + rng.uniform(5, 12) * DAY, self._withdrawal_check, merchant)
        if merchant.weight >= self.merchants[0].weight / 12 and rng.random() < 0.7:
            endpoint_id = self.next_id("webhook_endpoints")
            self.write(
                "webhook_endpoints",
                [
                    endpoint_id,
                    merchant.id,
                    f"https://api.{merchant.public_id}.example.com/faka/webhook",
                    ctx.vault.encrypt("whsec_" + self.hex(48)),
                    "order.delivered,order.refunded,complaint.opened",
                    True,
                    opened,
                ],
            )
            merchant.webhook_endpoint = endpoint_id
        # Sign-ins: busy shops log in most days.
        every = DAY / (0.3 + 3 * min(1.0, merchant.weight / self.merchants[0].weight * 8))
        t = max(merchant.approved, self.clock.start - 30 * DAY) + rng.uniform(0, every)
        end = self.now if merchant.frozen_at is None else merchant.frozen_at
        while t < end:
            self.at(t, self._sign_in, merchant.user_id, rng.choice(merchant.sign_in_ips), rng.choice(merchant.devices))
            t += rng.expovariate(1 / every)

    def _products(self) -> None:
        sellers = [m for m in self.merchants if m.approved is not None]
        shares = [m.weight**0.45 for m in sellers]
        total = sum(shares)
        left = self.scale.products - len(sellers)
        counts = [1 + int(left * s / total) for s in shares]
        waiting = [m for m in self.merchants if m.status == "pending" and m.created < self.now - HOUR]
        counts[0] += max(0, self.scale.products - sum(counts) - len(waiting))
        for merchant, count in zip(sellers, counts):
            for n in range(count):
                self._product(merchant, n)
        for merchant in waiting:  # a new shop's first product, waiting like the shop
            self._product(merchant, 0, unlisted=True)

    def _product(self, merchant: Merchant, n: int, unlisted: bool = False) -> None:
        rng, ctx = self.rng, self.context
        checkout_product = merchant is self.merchants[0] and n == 0
        template = TEMPLATES[0] if checkout_product else rng.choice(TEMPLATES)
        category, title, choice, base_price, prefix, delivery = template
        if unlisted:
            created = max(merchant.created, self.now - 2 * DAY)
        else:
            first = merchant.approved + rng.uniform(0.1, 3) * DAY
            # A shop lists most of its goods early and adds more over time.
            created = first if n == 0 or rng.random() < 0.5 else first + rng.random() * (self.now - first)
            created = min(created, self.now - HOUR)
        product = Product(
            id=self.next_id("products"),
            slug=self.hex(16),
            merchant=merchant,
            category_id=category + 1,
            title=title,
            delivery=delivery,
            created=created,
            # Some goods sell far better than others; the first listings of a shop most.
            weight=(50.0 if checkout_product else rng.paretovariate(1.3)) / (1 + n * 0.02),
            prefix=prefix,
        )
        values: list[tuple[str, str | None, int]] = []
        if choice == "face":
            faces = sorted(rng.sample(FACES, rng.choice((1, 1, 2, 3, 4))))
            if checkout_product:
                faces = [100]
            values = [(f"¥{v}", f"¥{v}", v * base_price) for v in faces]
        elif choice == "months":
            months = sorted(rng.sample(MONTHS, rng.choice((1, 1, 2, 3))))
            values = [(f"{m}个月", f"{m} months", int(base_price * m * (1 - 0.05 * MONTHS.index(m)))) for m in months]
        elif choice == "edition":
            editions = EDITIONS[: rng.choice((1, 2, 3))]
            values = [(zh, en, int(base_price * factor)) for zh, en, factor in editions]
        else:
            values = [("", None, base_price)]
        if len(values) == 1:
            single = values[0]
            product.title = f"{title} {single[0]}".strip() if single[0] else title
            values = [("", None, single[2])]
        tag = "" if checkout_product else rng.choice(TAGS)
        product.title = f"{tag}{product.title}"[:120]
        jitter = rng.uniform(0.9, 1.15)
        for position, (name, name_en, price) in enumerate(values):
            variant = Variant(
                id=self.next_id("product_variants"),
                key=self.hex(16),
                product=product,
                name=name,
                name_en=name_en,
                price=max(100, int(price * jitter)),
                max_per_order=1 if delivery == "manual" else rng.choice((5, 10, 10, 20, 50)),
                position=position,
                weight=1.0 / (1 + position * 0.6),
            )
            if delivery == "auto" and rng.random() < 0.12:
                variant.tiers = [(5, int(variant.price * 0.95)), (20, int(variant.price * 0.9))][: rng.choice((1, 2))]
            product.variants.append(variant)
        if len(product.variants) > 2 and rng.random() < 0.1:
            product.variants[-1].deleted_at = created + rng.random() * (self.now - created)
        # Whether and when it sells: moderation, visibility, deletion.
        moderation, reason = "approved", None
        visible = True
        roll = rng.random()
        if unlisted or (not checkout_product and roll < 0.012):
            moderation = "pending"
            product.sellable_from = math.inf
            created = product.created = max(created, self.now - 3 * DAY)
        elif not checkout_product and roll < 0.02:
            moderation, reason = "rejected", "商品描述涉及违禁内容。"
            product.sellable_from = math.inf
            self.audit(
                min(created + rng.uniform(1, 20) * HOUR, self.now - 1),
                self.operator(),
                "moderation.rejected",
                f"product:{product.id}",
                detail=reason,
                before={"moderation": "pending", "moderation_reason": None},
                after={"moderation": "rejected", "moderation_reason": reason, "reports_closed": 0},
                ip=self.operator_ip(),
            )
        elif not checkout_product and roll < 0.026:
            moderation, reason = "taken_down", "多名买家举报为盗版资源。"
            product.sellable_until = created + rng.random() * (self.now - created)
            self.audit(
                product.sellable_until,
                self.operator(),
                "moderation.taken_down",
                f"product:{product.id}",
                detail=reason,
                before={"moderation": "approved", "moderation_reason": None},
                after={"moderation": "taken_down", "moderation_reason": reason, "reports_closed": 1},
                ip=self.operator_ip(),
            )
        elif not checkout_product and roll < 0.05:
            visible = False  # the merchant took it off the shelf
            product.sellable_until = created + rng.random() * (self.now - created)
        elif not checkout_product and roll < 0.08:
            product.deleted_at = created + rng.random() * (self.now - created)
            product.sellable_until = product.deleted_at
        if merchant.frozen_at is not None:
            product.sellable_until = min(product.sellable_until, merchant.frozen_at)
        # On sale once its first keys are in (the first import, half an hour in).
        product.sellable_from = max(product.sellable_from, created + HOUR)
        if delivery == "fixed":
            product.fixed_ciphertext = ctx.vault.encrypt(
                f"下载地址 https://pan.example.com/s/{self.hex(10)}  提取码 {self.hex(4).upper()}"
            )
        product.require_query_password = rng.random() < 0.05
        if delivery == "manual":
            product.require_email = True
            product.fields = [(self.hex(16), "游戏 UID", "Game UID", "number"), (self.hex(16), "备注", "Note", "text")]
        self.products.append(product)
        merchant.products.append(product)
        variants = product.variants
        self.write(
            "products",
            [
                product.id,
                product.slug,
                merchant.id,
                product.category_id,
                product.title,
                self._description(product),
                min(v.price for v in variants if v.deleted_at is None),
                delivery,
                product.fixed_ciphertext,
                2 if delivery == "manual" else 24,
                "卡密一经发出不予退款；卡密无效请在 7 天内提交投诉并附截图。",
                visible,
                moderation,
                n,
                created,
                False,
                product.require_query_password,
                reason,
                product.deleted_at,
                None,
                None,
                product.require_email,
                None,
                None,
                False,
                None,
                max(v.price for v in variants if v.deleted_at is None),
            ],
        )
        for variant in variants:
            self.write(
                "product_variants",
                [
                    variant.id,
                    variant.key,
                    product.id,
                    variant.name,
                    variant.name_en,
                    variant.price,
                    1,
                    variant.max_per_order,
                    rng.choice((0, 0, 10, 50)),
                    variant.position,
                    variant.deleted_at,
                    created,
                ],
            )
            for min_quantity, unit_price in variant.tiers:
                self.write("tier_prices", [self.next_id("tier_prices"), min_quantity, unit_price, variant.id])
        for position, (key, label, label_en, kind) in enumerate(product.fields):
            self.write(
                "checkout_fields",
                [
                    self.next_id("checkout_fields"),
                    key,
                    product.id,
                    position,
                    label,
                    label_en,
                    kind,
                    position == 0,
                    None,
                    r"[1-9]\d{8}" if kind == "number" else None,
                    "UID 是 9 位数字" if kind == "number" else None,
                    "A UID has 9 digits" if kind == "number" else None,
                    None,
                    None,
                    created,
                ],
            )
        if rng.random() < 0.06:
            self._reports(product)

    def _description(self, product: Product) -> str:
        rng = self.rng
        how = {
            "auto": "付款后立即显示卡密，并发送到您的邮箱。",
            "fixed": "付款后立即获得下载地址和提取码（所有买家相同）。",
            "manual": "人工处理，付款后 **2 小时内** 完成，请留意邮件通知。",
        }[product.delivery]
        lines = rng.sample(
            [
                "仅限国区账户",
                "全球通用",
                "请在有效期内使用",
                "一机一码",
                "支持开发票",
                "官方渠道采购",
                "售后无忧",
                "不支持退换",
            ],
            3,
        )
        return (
            f"**{product.title}**\n\n{how}\n\n" + "\n".join(f"- {line}" for line in lines) + "\n\n"
            "使用方法：登录账户 → 兑换 → 输入卡密。遇到问题请先联系客服。"
        )

    def _reports(self, product: Product) -> None:
        rng = self.rng
        for _ in range(rng.randint(1, 3)):
            created = product.created + rng.random() * (self.now - product.created)
            status = rng.choice(("open", "dismissed", "dismissed", "acted")) if created < self.now - DAY else "open"
            resolved = created + rng.uniform(1, 48) * HOUR if status != "open" else None
            resolver = self.operator() if resolved else None
            if resolved and resolved > self.now:
                status, resolved, resolver = "open", None, None
            self.write(
                "product_reports",
                [
                    self.next_id("product_reports"),
                    product.id,
                    rng.choice(("pirated", "fraud", "not_as_described", "other")),
                    "疑似盗版，请核实。",
                    self.ip_at(self.random_ip(), created),
                    status,
                    created,
                    resolved,
                    resolver,
                ],
            )

    def _coupons(self) -> None:
        rng = self.rng
        for merchant in self.merchants:
            if merchant.approved is None or rng.random() > 0.5:
                continue
            for _ in range(rng.randint(1, 4)):
                created = merchant.approved + rng.random() * max(HOUR, self.now - merchant.approved) * 0.8
                percent = rng.random() < 0.5
                product = rng.choice(merchant.products) if merchant.products and rng.random() < 0.3 else None
                expires = created + rng.uniform(7, 120) * DAY if rng.random() < 0.7 else None
                merchant.coupons.append(
                    [
                        self.next_id("coupons"),
                        f"{rng.choice(('VIP', 'NEW', 'SALE', 'HAPPY', 'GIFT'))}{rng.randrange(10, 99)}{self.hex(2).upper()}",
                        "percent" if percent else "fixed",
                        rng.choice((500, 1000, 1500)) if percent else rng.choice((100, 200, 500)),
                        product.id if product else None,
                        rng.choice((0, 0, 1000, 3000)),
                        rng.choice((None, None, 100, 500)),
                        0,
                        expires,
                        created,
                    ]
                )

    def _blacklist(self) -> None:
        rng = self.rng
        for _ in range(max(8, self.scale.orders // 8000)):
            created = self.clock.start + rng.random() * YEAR_DAYS * DAY
            merchant = rng.choice(self.merchants) if rng.random() < 0.3 else None
            kind = rng.choice(("ip", "ip", "email", "domain", "device"))
            value = {
                "ip": self.random_ip(),
                "email": f"{self.hex(8)}@{rng.choice(('qq.com', '163.com', 'mailinator.com'))}",
                "domain": rng.choice(("mailinator.com", "10minutemail.com", "guerrillamail.com", "yopmail.com")),
                "device": self.hex(64),
            }[kind]
            actor = merchant.user_id if merchant else self.operator()
            entry_id = self.next_id("blacklist")
            expires = created + rng.choice((7, 30, 90)) * DAY if rng.random() < 0.4 else None
            self.write(
                "blacklist",
                [
                    entry_id,
                    kind,
                    value,
                    rng.choice(("批量刷单", "恶意投诉", "盗刷支付", "撞库登录")),
                    merchant.id if merchant else None,
                    actor,
                    created,
                    expires,
                ],
            )
            self.audit(created, actor, "blacklist.added", f"blacklist:{entry_id}", detail=f"{kind} {value}")

    # -- the year ---------------------------------------------------------------------------

    def simulate(self) -> None:
        times = self._order_times()
        self._schedule_noise()
        for day in range(1, YEAR_DAYS + 1):
            self.at(self.clock.start + day * DAY - (self.clock.start % DAY) + 10 * MINUTE, self._settlement_check)
            self.at(self.clock.start + day * DAY - (self.clock.start % DAY) + 3 * HOUR, self._retention_run)
        started = time.perf_counter()
        report_every = max(1, len(times) // 20)
        for n, t in enumerate(times):
            self.run_until(t)
            self._order(t)
            if n % report_every == 0 and n:
                self.progress(f"year: {_utc(t):%Y-%m-%d}, {n:,} orders, {time.perf_counter() - started:.0f} s")
        self.run_until(self.now)

    def _order_times(self) -> list[float]:
        """When each order was placed: a growing platform, busier at weekends and on a few
        sales days, quiet at dawn; a few placed in the last minutes (still unpaid)."""
        rng, start = self.rng, self.clock.start
        promo_days = set(rng.sample(range(YEAR_DAYS), 6))
        weights = []
        for day in range(YEAR_DAYS):
            local = _utc(start + day * DAY + BEIJING)
            w = 0.5 + 0.5 * day / YEAR_DAYS
            w *= {4: 1.05, 5: 1.15, 6: 1.12}.get(local.weekday(), 1.0)
            w *= 1.9 if day in promo_days else 1.0
            w *= math.exp(rng.gauss(0, 0.08))
            weights.append(w)
        total = sum(weights)
        recent = 5 + self.scale.orders // 40000
        wanted = self.scale.orders - recent
        times: list[float] = []
        carry = 0.0
        for day, w in enumerate(weights):
            exact = wanted * w / total + carry
            count = int(exact)
            carry = exact - count
            slot = start + day * DAY
            hours = [HOURLY[int((slot + h * HOUR + BEIJING) // HOUR) % 24] for h in range(24)]
            cumulative = list(itertools.accumulate(hours))
            for _ in range(count):
                h = bisect_right(cumulative, rng.random() * cumulative[-1])
                times.append(slot + (min(h, 23) + rng.random()) * HOUR)
        times.extend(self.now - rng.uniform(20, 14 * MINUTE) for _ in range(recent))
        times = [t for t in times if t < self.now - 10]
        times.sort()
        return times

    def _schedule_noise(self) -> None:
        """What happens besides orders: refused checkouts, failed logins and lookups,
        probes of admin paths, forged notifications (only the last 90 days of security
        events are kept)."""
        rng = self.rng
        per_day = self.scale.orders / YEAR_DAYS
        t = self.now - 90 * DAY
        while t < self.now:
            t += rng.expovariate(per_day * 0.35 / DAY)
            self.at(t, self._security_event)
        t = self.clock.start
        while t < self.now:
            t += rng.expovariate(per_day * 0.006 / DAY)
            self.at(t, self._blocked_checkout)

    # -- one order and what follows from it ---------------------------------------------------

    def _pick_merchant(self, t: float) -> Merchant:
        day = int((t - self.clock.start) // DAY)
        if self._merchant_day != day:
            self._merchant_day = day
            day_start = self.clock.start + day * DAY
            self._sellers = [
                m
                for m in self.merchants
                if m.approved is not None
                and m.approved < day_start + DAY
                and (m.frozen_at is None or m.frozen_at > day_start)
            ]
            self._seller_weights = list(itertools.accumulate(m.weight for m in self._sellers))
        for _ in range(50):
            merchant = self._sellers[bisect_right(self._seller_weights, self.rng.random() * self._seller_weights[-1])]
            if merchant.sells_at(t) and self._can_sell(merchant, t):
                return merchant
        return self.merchants[0]  # its first product is on sale all year

    def _can_sell(self, merchant: Merchant, t: float) -> bool:
        """Whether the merchant has a product on sale at t. Its candidates (on sale at some
        time in this quarter of a day) are listed once a quarter day, with their weights."""
        quarter = int((t - self.clock.start) // (DAY / 4))
        if merchant._day != quarter:
            merchant._day = quarter
            merchant._sellable = [
                p for p in merchant.products if p.sellable_from <= t + DAY / 4 and t < p.sellable_until
            ]
            merchant._cumulative = list(itertools.accumulate(p.weight for p in merchant._sellable))
        return any(p.sellable_from <= t < p.sellable_until for p in merchant._sellable)

    def _pick_product(self, merchant: Merchant, t: float) -> Product:
        rng = self.rng
        while True:  # _pick_merchant made sure one is on sale
            product = merchant._sellable[bisect_right(merchant._cumulative, rng.random() * merchant._cumulative[-1])]
            if product.sellable_from <= t < product.sellable_until:
                return product

    def _pick_buyer(self) -> int:
        rng = self.rng
        if self.buyers and rng.random() < 0.45:
            return rng.randrange(len(self.buyers))
        domain = self.pick(DOMAIN_WEIGHTS, DOMAIN_NAMES)
        if rng.random() < 0.25:
            email = None
        elif domain == "qq.com":
            email = f"{rng.randrange(10**7, 10**10)}@qq.com"
        else:
            email = f"{rng.choice(('zhang', 'li', 'wang', 'liu', 'chen', 'yang', 'huang', 'zhao', 'lucky', 'game', 'cool'))}{rng.randrange(10000)}@{domain}"
        self.buyers.append((email, self.random_ip(), self.hex(64), "en" if rng.random() < 0.07 else "zh_CN"))
        return len(self.buyers) - 1

    def _quantity(self, variant: Variant) -> int:
        roll = self.rng.random()
        quantity = (
            1
            if roll < 0.72
            else 2
            if roll < 0.84
            else self.rng.randint(3, 5)
            if roll < 0.95
            else self.rng.randint(6, 20)
        )
        return min(quantity, variant.max_per_order)

    def _order(self, t: float) -> None:
        rng, ctx, now = self.rng, self.context, self.now
        merchant = self._pick_merchant(t)
        product = self._pick_product(merchant, t)
        live = [v for v in product.variants if v.deleted_at is None or t < v.deleted_at]
        variant = self.pick(list(itertools.accumulate(v.weight for v in live)), live) if len(live) > 1 else live[0]
        buyer = self._pick_buyer()
        email, ip, device, locale = self.buyers[buyer]
        if product.require_email and email is None:
            email = f"{rng.randrange(10**7, 10**10)}@qq.com"
        quantity = self._quantity(variant)
        unit_price = variant.unit_price(quantity)
        subtotal = unit_price * quantity
        coupon, discount = self._coupon(merchant, product, subtotal, t)
        total = subtotal - discount
        gateway = self.pick(GATEWAY_WEIGHTS, GATEWAY_NAMES)
        order_id = self.next_id("orders")
        number = self._number(t)
        token = self.hex(32)
        order = Order(order_id, number, token, merchant, product, variant, quantity, total, email, gateway, locale, t)
        merchant.orders += 1
        product.orders += 1
        # Its fate: paid in time (most), paid late, cancelled or left to expire.
        expires = t + ORDER_TTL
        roll = rng.random()
        started = t + rng.uniform(4, 90) if roll < 0.9 else None
        paid = None
        late = False
        cancelled = None
        if roll < 0.745:
            paid = min(started + rng.lognormvariate(4.0, 0.8), expires - 5)
        elif roll < 0.747 and started:
            paid, late = expires + rng.uniform(60, 6 * HOUR), True
        elif roll < 0.775:
            cancelled = t + rng.uniform(30, 10 * MINUTE)
        if paid is not None and paid > now:
            paid = None
        if started is not None and started > now:
            started = None
        status = "pending"
        delivered = held = refunded_at = None
        refunded_amount = 0
        risk_flags = None
        if paid is None:
            if cancelled is not None and cancelled <= now:
                status = "cancelled"
            elif expires <= now:
                status, cancelled = "expired", None
            else:
                cancelled = None
        else:
            cancelled = None
        outcome = "late_paid" if late else "paid"
        plan: dict = {}
        if paid is not None:
            status = "paid"
            if late and product.delivery == "auto" and rng.random() < 0.15:
                status, outcome = "paid_unfulfilled", "unfulfilled"
                refund_at = paid + rng.uniform(0.5, 48) * HOUR
                if refund_at <= now:
                    status, refunded_at, refunded_amount = "refunded", refund_at, total
                    plan["merchant_refund"] = refund_at
            elif product.delivery != "manual" and rng.random() < 0.0008:
                held, risk_flags = paid, rng.choice(("email_velocity", "ip_velocity", "disposable_email"))
                decided = paid + rng.uniform(0.2, 20) * HOUR
                plan["hold"] = (decided if decided <= now else None, rng.random() < 0.85)
                if decided <= now:
                    held = None
                    if plan["hold"][1]:
                        delivered = decided + rng.uniform(1, 5)
                    else:
                        status, refunded_at, refunded_amount = "refunded", decided, total
            elif product.delivery == "manual":
                delivered = paid + rng.lognormvariate(math.log(40 * MINUTE), 0.9)
            else:
                delivered = paid + rng.uniform(0.4, 4)
            if delivered is not None and delivered > now:
                delivered = None
            if delivered is not None:
                status = "delivered"
                order.delivered_at = delivered
                after = self._after_delivery(order, plan)
                if after:
                    status, refunded_at, refunded_amount = after
        if rng.random() < 0.02 and status not in ("pending",):
            risk_flags = risk_flags or rng.choice(
                ("ip_velocity", "device_velocity", "email_velocity", "disposable_email")
            )
            plan["checkout_risk"] = risk_flags
        if coupon is not None and status not in ("expired", "cancelled"):
            coupon[7] += 1
        delivery_ciphertext = None
        if order.delivered_at is not None:
            if product.delivery == "fixed":
                delivery_ciphertext = product.fixed_ciphertext
            elif product.delivery == "manual":
                delivery_ciphertext = ctx.vault.encrypt(f"已充值到账，单号 {self.hex(12).upper()}，请登录游戏查收。")
        with_password = product.require_query_password or rng.random() < 0.6
        self.write(
            "orders",
            [
                order_id,
                number,
                token,
                product.id,
                merchant.id,
                quantity,
                unit_price,
                total,
                CURRENCY,
                email,
                ctx.query_hash if with_password else None,
                status,
                "sandbox" if status == "pending" else gateway,
                self.ip_at(ip, t),
                locale,
                delivery_ciphertext,
                t,
                expires,
                paid,
                order.delivered_at,
                discount,
                coupon[0] if coupon else None,
                refunded_at,
                device,
                refunded_amount,
                started,
                None,
                risk_flags,
                held,
                email.rpartition("@")[2] if email else None,
                cancelled,
                None,
                variant.id,
                variant.name if product.has_choice else None,
                None,
                None,
                None,
                None,
                0,
            ],
        )
        if product.fields:
            for position, (key, label, label_en, kind) in enumerate(product.fields):
                value = f"{rng.randrange(10**8, 10**9)}" if kind == "number" else "天空岛"
                self.write(
                    "order_answers",
                    [
                        self.next_id("order_answers"),
                        order_id,
                        position,
                        key,
                        kind,
                        label,
                        label_en,
                        ctx.vault.encrypt(value),
                    ],
                )
        if status in ("pending", "paid") and product.delivery == "auto":
            # Unpaid, or paid and not delivered yet (held, or paid a moment ago): its keys
            # are reserved.
            variant.reserved.append((order_id, quantity, expires))
        if status == "pending":
            order.gateway = "sandbox"  # the one gateway the bench's instance has on
        if started is not None:
            self.at(started, self._payment_attempt, order, started)
        if paid is not None:
            self.at(paid, self._payment, order, outcome)
        if "checkout_risk" in plan:
            self.at(t + 0.2, self._risk_event, order, "checkout", plan["checkout_risk"], ip, device, email)
        if "hold" in plan:
            self.at(paid + 0.1, self._risk_event, order, "notify", risk_flags, ip, device, email)
            decided, released = plan["hold"]
            if decided is not None:
                self.at(decided, self._hold_decided, order, released)
        if "merchant_refund" in plan:
            self.at(plan["merchant_refund"], self._refund, order, total, None, merchant.user_id, False)
        if order.delivered_at is not None:
            self.at(order.delivered_at, self._delivered, order, plan)
        self._keep_sample(order, status, with_password, email)

    def _keep_sample(self, order: Order, status: str, with_password: bool, email: str | None) -> None:
        def entry():
            return {
                "token": order.token,
                "number": order.number,
                "merchant_id": order.merchant.id,
                "query_password": QUERY_PASSWORD if with_password else None,
                "email": email,
                "created_at": _utc(order.created).isoformat(),
                "expires_at": _utc(order.created + ORDER_TTL).isoformat(),
            }

        self.sample("orders", status, entry)
        if order.merchant is self.merchants[0]:
            self.sample("big_merchant_orders", status, entry, limit=20)
        if with_password and email and status == "delivered":
            self.lookup_emails[email] = self.lookup_emails.get(email, 0) + 1

    def _number(self, t: float) -> str:
        key = int(t // DAY)
        day = self.days.get(key)
        if day is None:
            day = self.days[key] = _utc(t).strftime("%Y%m%d")
        while True:
            number = day + f"{self.rng.randrange(10**12):012d}"
            if number not in self.numbers:
                self.numbers.add(number)
                return number

    def _coupon(self, merchant: Merchant, product: Product, subtotal: int, t: float):
        if not merchant.coupons or self.rng.random() > 0.06:
            return None, 0
        usable = [
            c
            for c in merchant.coupons
            if c[9] <= t
            and (c[8] is None or t < c[8])
            and (c[4] is None or c[4] == product.id)
            and subtotal >= c[5]
            and (c[6] is None or c[7] < c[6])
        ]
        if not usable:
            return None, 0
        coupon = self.rng.choice(usable)
        discount = subtotal * coupon[3] // 10000 if coupon[2] == "percent" else min(coupon[3], subtotal)
        if subtotal - discount < 1:
            return None, 0
        return coupon, discount

    def _after_delivery(self, order: Order, plan: dict):
        """A review and maybe a complaint after the goods arrived: returns the order's
        final (status, refunded_at, refunded_amount) when a complaint refunded it."""
        rng, now = self.rng, self.now
        result = None
        if rng.random() < 0.012:
            opened = order.delivered_at + min(rng.lognormvariate(math.log(10 * HOUR), 1.3), 7 * DAY - HOUR)
            if opened <= now:
                complaint = self._plan_complaint(order, opened)
                plan["complaint"] = complaint
                if complaint["refund"] is not None:
                    amount, when = complaint["refund"]
                    result = ("refunded" if amount == order.total else "partially_refunded", when, amount)
        if rng.random() < (0.04 if "complaint" in plan else 0.12):
            written = order.delivered_at + rng.lognormvariate(math.log(6 * HOUR), 1.2)
            if written <= now:
                plan["review"] = written
        return result

    def _plan_complaint(self, order: Order, opened: float) -> dict:
        """The whole case, as far as it got by now: the steps (time, who, event, text),
        its final state and what it refunded or replaced."""
        rng, now = self.rng, self.now
        reason = rng.choices(("key_invalid", "not_as_described", "not_delivered", "other"), (55, 20, 10, 15))[0]
        description = rng.choice(COMPLAINT_TEXTS[reason])
        operator = self.operator()
        state = {
            "status": "open",
            "reason": reason,
            "description": description,
            "deadline": opened + 48 * HOUR,
            "offer": (None, None, None),
            "refund_amount": None,
            "note": None,
            "decided_by": None,
            "updated": opened,
            "escalated": None,
            "resolved": None,
            "refund": None,
            "replacement": None,
            "steps": [(opened, "buyer", "opened", description, None, "complaint.opened")],
        }
        steps = state["steps"]
        t = opened
        can_replace = order.product.delivery == "auto"

        def step(when, author, event, body, actor, action):
            steps.append((when, author, event, body, actor, action))
            state["updated"] = when

        def escalate(when, author, event):
            state["status"], state["escalated"], state["deadline"] = "escalated", when, None
            step(
                when,
                author,
                event,
                self.context.text("escalated" if author == "buyer" else "auto_escalated", order),
                None,
                f"complaint.{event}",
            )
            decided = when + rng.uniform(2, 72) * HOUR
            if decided > now:
                return
            roll = rng.random()
            if roll < 0.6:
                amount = order.total if roll < 0.4 or order.total < 2 else max(1, order.total // 2)
                note = rng.choice(DECISION_REASONS_REFUND)
                state.update(status="resolved_refund", refund_amount=amount, note=note, decided_by=operator)
                state["refund"] = (amount, decided)
                body = self.context.text("decided_refund", order, amount=amount) + "\n\n" + note
            else:
                note = rng.choice(DECISION_REASONS_REJECT)
                state.update(status="resolved_rejected", note=note, decided_by=operator)
                body = self.context.text("decided_rejected", order) + "\n\n" + note
            state["resolved"] = decided
            step(decided, "operator", "decided", body, operator, "complaint.decided")

        if rng.random() < 0.15:
            # The merchant stays silent: the reconciler escalates it past the deadline.
            when = opened + 48 * HOUR + rng.uniform(10, 120)
            if when <= now:
                escalate(when, "system", "auto_escalated")
            return state
        t = opened + min(rng.lognormvariate(math.log(5 * HOUR), 1.0), 47 * HOUR)
        if t > now:
            return state
        roll = rng.random()
        user = order.merchant.user_id
        if roll < 0.45 or order.total < 2:
            step(t, "merchant", None, rng.choice(MERCHANT_REPLIES), user, "complaint.merchant_replied")
            offer = None
        elif roll < 0.8 or not can_replace:
            amount = order.total if rng.random() < 0.7 else max(1, order.total // 2)
            offer = ("refund", amount, None)
            step(
                t,
                "merchant",
                "offer",
                self.context.text("offer_refund", order, amount=amount),
                user,
                "complaint.offered",
            )
        else:
            count = rng.randint(1, order.quantity)
            offer = ("replacement", None, count)
            step(
                t,
                "merchant",
                "offer",
                self.context.text("offer_replacement", order, count=count),
                user,
                "complaint.offered",
            )
        state["status"], state["deadline"] = "merchant_replied", t + 7 * DAY
        if offer:
            state["offer"] = offer
        if rng.random() < 0.3:
            t2 = t + rng.uniform(0.2, 12) * HOUR
            if t2 <= now:
                step(t2, "buyer", None, rng.choice(BUYER_FOLLOWUPS), None, None)
                t = t2
        answer = t + rng.lognormvariate(math.log(8 * HOUR), 1.0)
        roll = rng.random()
        if offer and roll < 0.65:
            if answer > now:
                return state
            kind, amount, count = offer
            state["resolved"], state["deadline"] = answer, None
            if kind == "refund":
                state.update(status="resolved_refund", refund_amount=amount)
                state["refund"] = (amount, answer)
                step(
                    answer,
                    "buyer",
                    "accepted",
                    self.context.text("accepted_refund", order, amount=amount),
                    None,
                    "complaint.accepted",
                )
            else:
                state["status"] = "resolved_replaced"
                state["replacement"] = (count, answer)
                step(
                    answer,
                    "buyer",
                    "accepted",
                    self.context.text("accepted_replacement", order, count=count),
                    None,
                    "complaint.accepted",
                )
        elif roll < (0.8 if offer else 0.4):
            if answer <= now:
                escalate(answer, "buyer", "escalated")
        elif roll < (0.9 if offer else 0.75):
            if answer <= now:
                state.update(status="withdrawn", resolved=answer, deadline=None)
                step(answer, "buyer", "withdrawn", self.context.text("withdrawn", order), None, "complaint.withdrawn")
        else:
            closed = state["deadline"] + rng.uniform(10, 120)
            if closed <= now:
                state.update(status="withdrawn", resolved=closed, deadline=None)
                step(
                    closed,
                    "system",
                    "auto_closed",
                    self.context.text("auto_closed", order),
                    None,
                    "complaint.auto_closed",
                )
        return state

    # -- the events ----------------------------------------------------------------------------

    def _payment_attempt(self, when: float, order: Order, started: float) -> None:
        self.write(
            "payment_attempts",
            [
                self.next_id("payment_attempts"),
                order.id,
                order.gateway,
                GATEWAY_METHODS[order.gateway],
                f"cs_{self.hex(24)}" if order.gateway == "stripe" else None,
                started,
            ],
        )

    def _payment(self, when: float, order: Order, outcome: str) -> None:
        rng = self.rng
        gateway = order.gateway
        trade_no = f"{_utc(when):%Y%m%d%H%M%S}{order.id:09d}{rng.randrange(1000):03d}"
        self.write(
            "payment_notices",
            [self.next_id("payment_notices"), gateway, trade_no, order.id, order.total, CURRENCY, outcome, when],
        )
        source = rng.choice(GATEWAY_SOURCES[gateway])
        for n in range(1 + (rng.random() < 0.08) + (rng.random() < 0.02)):
            received = when + n * rng.uniform(5, 300)
            self._notify_log(order, received, source, "paid" if n == 0 else "replay", trade_no)
        if outcome != "unfulfilled" and rng.random() < 0.0005:
            self.at(when + rng.uniform(30, 600), self._duplicate_payment, order)

    def _notify_log(self, order: Order, received: float, source: str, outcome: str, trade_no: str) -> None:
        gateway = order.gateway
        fresh = received >= self.now - 180 * DAY  # the retention job empties older bodies
        money = f"{order.total // 100}.{order.total % 100:02d}"
        body = headers = None
        if fresh:
            headers = json.dumps(
                {
                    "Content-Type": "application/x-www-form-urlencoded"
                    if gateway in ("epay", "alipay")
                    else "application/json",
                    "User-Agent": USER_AGENTS[gateway],
                }
            )
            if gateway == "epay":
                body = (
                    f"pid=1001&trade_no={trade_no}&out_trade_no={order.number}&type=alipay&name=order"
                    f"&money={money}&trade_status=TRADE_SUCCESS&sign=[redacted]&sign_type=MD5"
                )
            elif gateway == "alipay":
                body = (
                    f"gmt_payment={_utc(received):%Y-%m-%d+%H%%3A%M%%3A%S}&out_trade_no={order.number}"
                    f"&trade_no={trade_no}&total_amount={money}&trade_status=TRADE_SUCCESS&sign=[redacted]"
                )
            else:
                body = json.dumps({"order_id": order.number, "trade_id": trade_no, "amount": money, "status": "paid"})
        self.write(
            "notify_log",
            [
                self.next_id("notify_log"),
                gateway,
                "notify",
                order.number,
                True,
                outcome,
                None,
                self.ip_at(source, received),
                headers,
                body,
                received,
            ],
        )

    def _duplicate_payment(self, when: float, order: Order) -> None:
        """The buyer paid twice: the second payment goes back to them (no ledger entry)."""
        rng = self.rng
        notice_id = self.next_id("payment_notices")
        trade_no = f"{_utc(when):%Y%m%d%H%M%S}{order.id:09d}{rng.randrange(1000, 2000)}"
        self.write(
            "payment_notices", [notice_id, order.gateway, trade_no, order.id, order.total, CURRENCY, "duplicate", when]
        )
        self._notify_log(order, when, rng.choice(GATEWAY_SOURCES[order.gateway]), "duplicate", trade_no)
        by_gateway = order.gateway in REFUNDS_BY_GATEWAY
        done = when + (rng.uniform(2, 60) if by_gateway else rng.uniform(1, 48) * HOUR)
        if done > self.now:
            done = when + 30  # a stale duplicate would be a mismatch the operator fixes within the day
        refund_id = self.next_id("refunds")
        paid_by = None if by_gateway else self.operator()
        self.write(
            "refunds",
            [
                refund_id,
                order.id,
                order.merchant.id,
                None,
                order.total,
                order.gateway,
                "done" if by_gateway else "paid",
                f"RF{self.hex(16)}",
                f"duplicate payment {trade_no}",
                when,
                done,
                paid_by,
                notice_id,
            ],
        )
        action = "refund.done" if by_gateway else "refund.paid"
        self.audit(
            done,
            paid_by,
            action,
            f"order:{order.id}",
            f"refund:{refund_id} amount={order.total} gateway={order.gateway} payment:{trade_no}",
        )

    def _delivered(self, when: float, order: Order, plan: dict) -> None:
        rng, product, merchant = self.rng, order.product, order.merchant
        if product.delivery == "auto":
            variant = order.variant
            for _ in range(order.quantity):
                variant.sold_at.append(when)
                variant.sold_order.append(order.id)
        fee = order.total * merchant.fee_bp // 10000
        available = when + merchant.hold_days * DAY
        order.available_at, order.fee = available, fee
        self._ledger(merchant, order.id, "sale", order.total, available, when)
        self._ledger(merchant, order.id, "fee", -fee, available, when)
        if order.email:
            sent = when + rng.uniform(1, 20)
            failed = rng.random() < 0.001
            self.write(
                "outbox_emails",
                [
                    self.next_id("outbox_emails"),
                    "order_delivered",
                    order.id,
                    order.email,
                    order.locale,
                    "failed" if failed else "sent",
                    8 if failed else 1,
                    "550 mailbox unavailable" if failed else None,
                    when,
                    None if failed else sent,
                    None,
                    None,
                    None,
                    None,
                    None,
                ],
            )
        self._webhook(order, "order.delivered", when)
        if "review" in plan:
            self.at(plan["review"], self._review, order)
        if "complaint" in plan:
            complaint = plan["complaint"]
            self.at(complaint["steps"][0][0], self._complaint_opened, order, complaint)

    def _ledger(
        self,
        merchant: Merchant,
        order_id,
        kind: str,
        amount: int,
        available: float,
        created: float,
        withdrawal_id: int | None = None,
    ) -> None:
        self.write(
            "ledger_entries",
            [self.next_id("ledger_entries"), merchant.id, order_id, kind, amount, available, created, withdrawal_id],
        )
        if order_id is not None:
            heapq.heappush(merchant.maturing, (available, amount))

    def _webhook(self, order: Order, event: str, when: float) -> None:
        merchant = order.merchant
        if merchant.webhook_endpoint is None:
            return
        body = json.dumps(
            {
                "id": "whd_" + self.hex(24),
                "type": event,
                "created": int(when),
                "data": {
                    "order": {
                        "number": order.number,
                        "status": event.split(".")[1],
                        "quantity": order.quantity,
                        "total": order.total,
                        "currency": CURRENCY,
                        "buyer_email": order.email,
                        "created_at": int(order.created),
                    },
                    "product": {"slug": order.product.slug, "title": order.product.title},
                    "variant": {"key": order.variant.key, "name": order.variant.name or None},
                    "answers": [],
                },
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        failed = self.rng.random() < 0.01
        self.write(
            "webhook_deliveries",
            [
                self.next_id("webhook_deliveries"),
                merchant.webhook_endpoint,
                event,
                self.context.vault.encrypt(body),
                "failed" if failed else "delivered",
                6 if failed else 1,
                502 if failed else 200,
                "HTTP 502" if failed else None,
                when,
                None if failed else when + self.rng.uniform(0.05, 2),
            ],
        )

    def _review(self, when: float, order: Order) -> None:
        rng = self.rng
        rating = rng.choices((5, 4, 3, 2, 1), (70, 15, 6, 3, 6))[0]
        body = rng.choice(REVIEW_TEXTS if rating >= 3 else BAD_REVIEW_TEXTS)
        replied = when + rng.uniform(1, 72) * HOUR if rng.random() < 0.25 else None
        if replied is not None and replied > self.now:
            replied = None
        suspicious = (
            rng.choice(("self_purchase", "device_many_orders", "device_many_reviews", "review_burst"))
            if rng.random() < 0.01
            else None
        )
        hidden = when + rng.uniform(1, 72) * HOUR if rng.random() < 0.003 else None
        if hidden is not None and hidden > self.now:
            hidden = None
        hider = self.operator() if hidden else None
        review_id = self.next_id("reviews")
        edited = when + rng.uniform(60, 20 * HOUR) if rng.random() < 0.03 else None
        self.write(
            "reviews",
            [
                review_id,
                order.id,
                order.merchant.id,
                order.product.id,
                rating,
                body,
                when,
                edited if edited and edited <= self.now else None,
                rng.choice(REPLY_TEXTS) if replied else None,
                replied,
                suspicious,
                hidden,
                "含有广告信息" if hidden else None,
                hider,
            ],
        )
        if hidden:
            self.audit(
                hidden,
                hider,
                "review.hide",
                f"review:{review_id}",
                detail="含有广告信息",
                before={"hidden_at": None, "hidden_reason": None},
                after={"hidden_at": _utc(hidden).isoformat(), "hidden_reason": "含有广告信息"},
                ip=self.operator_ip(),
            )

    def _complaint_opened(self, when: float, order: Order, plan: dict) -> None:
        complaint_id = self.next_id("complaints")
        ref = self.hex(20)
        offer_kind, offer_amount, offer_quantity = plan["offer"]
        self.write(
            "complaints",
            [
                complaint_id,
                ref,
                order.id,
                order.merchant.id,
                plan["status"],
                plan["reason"],
                plan["description"],
                plan["deadline"],
                offer_kind,
                offer_amount,
                offer_quantity,
                plan["refund_amount"],
                plan["note"],
                plan["decided_by"],
                when,
                plan["updated"],
                plan["escalated"],
                plan["resolved"],
            ],
        )
        self.sample(
            "complaints",
            plan["status"],
            lambda: {"ref": ref, "order_token": order.token, "merchant_id": order.merchant.id},
        )
        for step_at, author, event, body, actor, action in plan["steps"]:
            self.at(step_at, self._complaint_step, order, complaint_id, ref, author, event, body, actor, action, plan)
        self._webhook(order, "complaint.opened", when)
        if plan["refund"] is not None:
            amount, refund_at = plan["refund"]
            self.at(refund_at + 0.01, self._refund, order, amount, complaint_id, plan["decided_by"], True)
        if plan["replacement"] is not None:
            count, replaced_at = plan["replacement"]
            self.at(replaced_at + 0.01, self._replacement, order, count)

    def _complaint_step(self, when, order, complaint_id, ref, author, event, body, actor, action, plan) -> None:
        self.write(
            "complaint_messages",
            [
                self.next_id("complaint_messages"),
                complaint_id,
                author,
                actor if author in ("merchant", "operator") else None,
                event,
                body,
                when,
            ],
        )
        if action is None:
            return
        if action == "complaint.opened":
            detail = f"order:{order.number} reason={plan['reason']} by=buyer"
        elif action == "complaint.merchant_replied":
            detail = f"order:{order.number}"
        else:
            detail = f"order:{order.number} by={author}"
            if action == "complaint.decided":
                detail += f" refund={plan['refund_amount'] or 0}"
        ip = self.operator_ip() if author == "operator" else None
        self.audit(when, actor, action, f"complaint:{ref}", detail, ip=ip)

    def _refund(self, when: float, order: Order, amount: int, complaint_id, actor, credited: bool) -> None:
        """apply_refund: each credited share taken back in proportion, with its part of
        the fee; a Refund records how the buyer gets the money (the gateway, or by hand)."""
        rng, merchant = self.rng, order.merchant
        if credited and order.delivered_at is not None:
            back = order.total if amount >= order.total else amount
            fee_back = order.fee if amount >= order.total else order.fee * amount // order.total
            settles = max(when, order.available_at)
            self._ledger(merchant, order.id, "refund", -back, settles, when)
            if fee_back:
                self._ledger(merchant, order.id, "fee_return", fee_back, settles, when)
            self._webhook(order, "order.refunded", when)
        refund_id = self.next_id("refunds")
        by_gateway = order.gateway in REFUNDS_BY_GATEWAY
        if by_gateway:
            status, completed, paid_by, reference = "done", when + rng.uniform(2, 60), None, f"RF{self.hex(16)}"
        else:
            completed = when + rng.uniform(1, 72) * HOUR
            if completed <= self.now:
                status, paid_by, reference = "paid", self.operator(), f"{rng.randrange(10**15, 10**16)}"
            else:
                status, completed, paid_by, reference = "manual", None, None, None
        self.write(
            "refunds",
            [
                refund_id,
                order.id,
                merchant.id,
                complaint_id,
                amount,
                order.gateway,
                status,
                reference,
                None if by_gateway else "the gateway cannot refund: pay it back by hand",
                when,
                completed,
                paid_by,
                None,
            ],
        )
        self.audit(
            when,
            actor,
            "order.refunded",
            f"order:{order.id}",
            f"merchant:{merchant.id} was={'delivered' if order.delivered_at else 'paid'} amount={amount} "
            f"of={order.total}" + (f" complaint:{complaint_id}" if complaint_id else ""),
        )
        self.audit(
            when + 1,
            None,
            "refund.done" if by_gateway else "refund.manual",
            f"order:{order.id}",
            f"refund:{refund_id} amount={amount} gateway={order.gateway}",
        )
        if status == "paid":
            self.audit(
                completed,
                paid_by,
                "refund.paid",
                f"order:{order.id}",
                f"refund:{refund_id} amount={amount} reference={reference}",
                ip=self.operator_ip(),
            )

    def _replacement(self, when: float, order: Order, count: int) -> None:
        variant = order.variant
        for _ in range(count):
            variant.sold_at.append(when)
            variant.sold_order.append(order.id)
        if order.email:
            self.write(
                "outbox_emails",
                [
                    self.next_id("outbox_emails"),
                    "order_replacement",
                    order.id,
                    order.email,
                    order.locale,
                    "sent",
                    1,
                    None,
                    when,
                    when + 5,
                    None,
                    None,
                    None,
                    None,
                    None,
                ],
            )

    def _hold_decided(self, when: float, order: Order, released: bool) -> None:
        operator = self.operator()
        if released:
            self.audit(
                when,
                operator,
                "order.released",
                f"order:{order.id}",
                detail="risk hold",
                before={"held_at": _utc(when).isoformat()},
                ip=self.operator_ip(),
            )
        else:
            self.audit(
                when, operator, "order.refused", f"order:{order.id}", detail="疑似盗刷，拒绝发货", ip=self.operator_ip()
            )
            self._refund(when, order, order.total, None, operator, False)

    def _risk_event(self, when: float, order: Order, checkpoint: str, rules: str, ip, device, email) -> None:
        rng = self.rng
        score = 0
        event_id = self.next_id("risk_events")
        hits = []
        for rule in rules.split():
            points = {"ip_velocity": 30, "device_velocity": 30, "email_velocity": 20, "disposable_email": 40}.get(
                rule, 20
            )
            score += points
            detail = f"{rng.randint(6, 20)} orders in 10 min" if "velocity" in rule else ""
            hits.append((rule, points, detail))
        action = "hold" if checkpoint == "notify" else ("captcha" if score >= 40 else "flag")
        self.write(
            "risk_events",
            [
                event_id,
                checkpoint,
                action,
                score,
                action == "captcha",
                self.ip_at(ip, when),
                device,
                email,
                order.id,
                order.merchant.id,
                order.product.id,
                when,
            ],
        )
        for rule, points, detail in hits:
            self.write("risk_hits", [self.next_id("risk_hits"), event_id, rule, points, detail, when])

    def _blocked_checkout(self, when: float) -> None:
        rng = self.rng
        merchant = rng.choice(self.merchants[: max(3, len(self.merchants) // 5)])
        if not merchant.products:
            return
        product = rng.choice(merchant.products)
        event_id = self.next_id("risk_events")
        rules = rng.choice(
            (
                ("ip_velocity", 30, "14 orders in 10 min"),
                ("blacklist", 100, "site ip"),
                ("pending_hoarding", 50, "7 unpaid orders"),
                ("stock_hoarding", 100, "40 of 60 keys unpaid"),
            )
        )
        email = f"{self.hex(8)}@mailinator.com"
        self.write(
            "risk_events",
            [
                event_id,
                "checkout",
                "block",
                rules[1] + 30,
                False,
                self.ip_at(self.random_ip(), when),
                self.hex(64),
                email,
                None,
                merchant.id,
                product.id,
                when,
            ],
        )
        self.write("risk_hits", [self.next_id("risk_hits"), event_id, rules[0], rules[1], rules[2], when])
        self.write("risk_hits", [self.next_id("risk_hits"), event_id, "disposable_email", 40, "", when])

    def _security_event(self, when: float) -> None:
        rng = self.rng
        kind = rng.choices(
            (
                "lookup_failed",
                "login_failed",
                "csrf_failed",
                "admin_probe",
                "rate_limited",
                "signature_failed",
                "captcha_failed",
                "amount_mismatch",
            ),
            (40, 18, 12, 14, 9, 3, 3, 1),
        )[0]
        subject = {
            "lookup_failed": lambda: _utc(when).strftime("%Y%m%d") + f"{rng.randrange(10**12):012d}",
            "login_failed": lambda: (
                rng.choice(self.merchants).email if rng.random() < 0.5 else f"admin{rng.randrange(99)}@qq.com"
            ),
            "csrf_failed": lambda: rng.choice(("/login", "/lookup", "/p/buy")),
            "admin_probe": lambda: rng.choice(("/wp-admin/", "/.env", "/phpmyadmin/", "/admin.php", "/.git/config")),
            "rate_limited": lambda: rng.choice(("/lookup", "/login", "/p/buy")),
            "signature_failed": lambda: rng.choice(("epay", "alipay")),
            "captcha_failed": lambda: "/lookup",
            "amount_mismatch": lambda: "epay",
        }[kind]()
        ip = self.random_ip()
        self.write(
            "security_events",
            [
                self.next_id("security_events"),
                kind,
                self.ip_at(ip, when),
                self.hex(64) if rng.random() < 0.6 else None,
                subject,
                None,
                when,
            ],
        )
        if kind in ("signature_failed", "amount_mismatch"):
            self.write(
                "notify_log",
                [
                    self.next_id("notify_log"),
                    subject,
                    "notify",
                    None,
                    kind == "amount_mismatch",
                    "rejected",
                    "bad signature" if kind == "signature_failed" else "amount 1.00 CNY != 48.00 CNY",
                    self.ip_at(ip, when),
                    None,
                    "out_trade_no=0&money=1.00&sign=[redacted]",
                    when,
                ],
            )

    def _sign_in(self, when: float, user_id: int, ip: str, device: str) -> None:
        self.write("sign_ins", [self.next_id("sign_ins"), user_id, self.ip_at(ip, when), device, when])

    def _withdrawal_check(self, when: float, merchant: Merchant) -> None:
        """A merchant asks for most of its available balance, about weekly (busy shops
        more often); the operator approves and pays it, now and then rejects one."""
        rng = self.rng
        if merchant.frozen_at is not None and when >= merchant.frozen_at:
            return
        busy = merchant.weight / self.merchants[0].weight
        self.at(when + rng.uniform(2, 5 if busy > 0.2 else 11) * DAY, self._withdrawal_check, merchant)
        while merchant.maturing and merchant.maturing[0][0] <= when:
            merchant.matured += heapq.heappop(merchant.maturing)[1]
        available = merchant.matured - merchant.withdrawn
        if available < 10000:
            return
        # Below what is available by a margin: entries of orders under complaint are frozen.
        amount = int(available * rng.uniform(0.55, 0.85)) // 100 * 100
        withdrawal_id = self.next_id("withdrawals")
        rejected = rng.random() < 0.04
        decided = when + rng.uniform(1, 20) * HOUR
        paid = decided + rng.uniform(1, 30) * HOUR
        status, decided_at, reason, reference = "requested", None, None, None
        if rejected and decided <= self.now:
            status, decided_at, reason = "rejected", decided, "收款账户户名与实名信息不一致"
        elif not rejected and paid <= self.now:
            status, decided_at, reference = "paid", paid, f"{rng.randrange(10**19, 10**20)}"
        elif not rejected and decided <= self.now:
            status, decided_at = "approved", decided
        merchant.withdrawn += amount
        self.write(
            "withdrawals",
            [withdrawal_id, merchant.id, merchant.payout_account, amount, status, reason, when, decided_at, reference],
        )
        self._ledger(merchant, None, "withdrawal", -amount, when, when, withdrawal_id)
        self.audit(
            when,
            merchant.user_id,
            "withdrawal.requested",
            f"withdrawal:{withdrawal_id}",
            f"merchant:{merchant.id} amount={amount}",
            ip=rng.choice(merchant.sign_in_ips),
        )
        detail = f"merchant:{merchant.id} amount={amount}"
        if rejected:
            if decided <= self.now:
                self.at(decided, self._withdrawal_rejected, merchant, withdrawal_id, amount, detail)
            else:
                self.open_withdrawals[withdrawal_id] = amount
            return
        self.open_withdrawals[withdrawal_id] = amount
        if decided <= self.now:
            self.at(decided, self._withdrawal_decided, withdrawal_id, "approved", detail)
        if paid <= self.now:
            self.at(paid, self._withdrawal_decided, withdrawal_id, "paid", detail + f" reference={reference}")

    def _withdrawal_decided(self, when: float, withdrawal_id: int, status: str, detail: str) -> None:
        if status == "paid":
            self.open_withdrawals.pop(withdrawal_id, None)
        self.audit(
            when, self.operator(), f"withdrawal.{status}", f"withdrawal:{withdrawal_id}", detail, ip=self.operator_ip()
        )

    def _withdrawal_rejected(
        self, when: float, merchant: Merchant, withdrawal_id: int, amount: int, detail: str
    ) -> None:
        merchant.withdrawn -= amount
        self._ledger(merchant, None, "withdrawal_return", amount, when, when, withdrawal_id)
        self.audit(
            when,
            self.operator(),
            "withdrawal.rejected",
            f"withdrawal:{withdrawal_id}",
            detail + " reason=收款账户户名与实名信息不一致",
            ip=self.operator_ip(),
        )

    def _settlement_check(self, when: float) -> None:
        """The daily settlement check's audit event, for every day before today (today's
        is left for the job to write, so a benchmark run of it does the real work)."""
        if _utc(when).date() == _utc(self.now).date():
            return
        pending = available = 0
        merchants = 0
        for merchant in self.merchants:
            if merchant.approved is None:
                continue
            merchants += 1
            while merchant.maturing and merchant.maturing[0][0] <= when:
                merchant.matured += heapq.heappop(merchant.maturing)[1]
            pending += sum(amount for _at, amount in merchant.maturing)
            available += merchant.matured - merchant.withdrawn
        totals = {
            "merchants": merchants,
            "pending": pending,
            "available": available,
            "frozen": 0,
            "withdrawing": sum(self.open_withdrawals.values()),
            "mismatches": 0,
            "at": _utc(when).isoformat(),
        }
        self.audit(
            when, None, "settlement.daily", f"settlement:{_utc(when).date().isoformat()}", "books balance", after=totals
        )

    def _retention_run(self, when: float) -> None:
        per_day = self.scale.orders // YEAR_DAYS
        counts = {
            "ips_hashed": per_day * 3,
            "security_events_deleted": per_day // 3,
            "risk_events_deleted": 0,
            "challenges_deleted": per_day // 50,
            "notify_bodies_emptied": per_day,
            "api_calls_deleted": 0,
            "idempotency_keys_deleted": 0,
            "restock_requests_deleted": 0,
        }
        self.audit(when, None, "retention.ran", f"retention:{_utc(when).date().isoformat()}", after=counts)

    # -- after the year -----------------------------------------------------------------------

    def finish_catalogue(self) -> None:
        """Rows whose final state is known only now: the coupons' use counts."""
        for merchant in self.merchants:
            for c in merchant.coupons:
                coupon_id, code, kind, value, product_id, minimum, limit, used, expires, created = c
                self.write(
                    "coupons",
                    [
                        coupon_id,
                        merchant.id,
                        code,
                        kind,
                        value,
                        product_id,
                        minimum,
                        limit,
                        used,
                        expires,
                        expires is None or expires > self.now,
                        created,
                    ],
                )

    def keys(self, pool) -> None:
        """The card keys: every unit sold, the ones reserved by unpaid and held orders, and
        the rest of the stock up to the scale's total, in import batches about a month
        apart; the keys a sale took are always from an earlier batch. Ids follow the
        batches' times, as the imports would have given them."""
        rng = self.rng
        variants = [(p, v) for p in self.products if p.delivery == "auto" for v in p.variants]
        sold = sum(len(v.sold_order) for _p, v in variants)
        reserved = sum(q for _p, v in variants for _o, q, _u in v.reserved)
        unsold = max(0, self.scale.keys - sold - reserved)
        checkout = self.merchants[0].products[0].variants[0]
        checkout.stock = min(unsold // 3, max(3000, self.scale.keys // 40))
        unsold -= checkout.stock
        shares = []
        for _product, variant in variants:
            if variant is checkout:
                shares.append(0.0)
                continue
            sells = len(variant.sold_order) + 5
            # Some options are sold out, most hold weeks to months of sales.
            shares.append(0.0 if rng.random() < 0.05 else sells * rng.lognormvariate(0.5, 0.9))
        total_share = sum(shares) or 1.0
        for (_product, variant), share in zip(variants, shares):
            if variant is not checkout:
                variant.stock = int(unsold * share / total_share)
        # The fen the rounding leaves over go to the checkout product's pool.
        checkout.stock += self.scale.keys - sold - reserved - sum(v.stock for _p, v in variants)
        batches = []  # (import time, product, variant, first index, count, sold offset)
        for product, variant in variants:
            batches.extend(self._batches(product, variant))
        batches.sort(key=lambda b: (b[0], b[2].id, b[3]))
        self.progress(
            f"keys: {sold:,} sold, {reserved:,} reserved, {self.scale.keys - sold - reserved:,} unsold, "
            f"{len(batches):,} imports"
        )
        tasks = (
            (
                self.seed,
                product.id,
                variant.first_index + first + offset,
                min(KEY_CHUNK, count - offset),
                product.prefix,
            )
            for _when, product, variant, first, count in batches
            for offset in range(0, count, KEY_CHUNK)
        )
        encrypted = _in_order(tasks, pool)
        written = 0
        report_every = max(1, self.scale.keys // 10)
        for when, product, variant, first, count in batches:
            import_id = self.next_id("key_imports")
            self.write(
                "key_imports",
                [
                    import_id,
                    self.hex(32),
                    product.merchant.id,
                    product.id,
                    "done",
                    count,
                    count,
                    count,
                    0,
                    0,
                    0,
                    None,
                    when,
                    when + 1 + count / 5000,
                    variant.id,
                ],
            )
            created = _utc(when)
            done = 0
            while done < count:
                ciphertexts, fingerprints = next(encrypted)
                for ciphertext, fingerprint in zip(ciphertexts, fingerprints):
                    self._key_row(product, variant, first + done, ciphertext, fingerprint, created)
                    done += 1
                    written += 1
                    if written % report_every == 0:
                        self.progress(f"keys: {written:,} written")

    def _batches(self, product: Product, variant: Variant) -> list:
        """Import batches of a variant: one per month it sold in (its keys sold then), the
        last also holding what is reserved and unsold now."""
        variant.first_index = 1_000_000 * variant.position  # keys of a product's variants never collide
        sold_at = variant.sold_at
        total = len(sold_at) + sum(q for _o, q, _u in variant.reserved) + variant.stock
        if total == 0:
            return []
        batches = []
        start = product.created + 0.5 * HOUR
        index = 0
        period = 30 * DAY
        when = start
        while index < len(sold_at):
            end = when + period
            upto = bisect_right(sold_at, end, lo=index)
            if upto > index:
                batches.append([when, product, variant, index, upto - index])
            index = upto
            when = end
        rest = total - len(sold_at)
        if rest:
            last = batches[-1][0] if batches else start
            when = min(max(last, self.now - 20 * DAY), self.now - HOUR)
            if variant.deleted_at is not None or product.deleted_at is not None:
                when = min(when, (variant.deleted_at or product.deleted_at) - HOUR)
            # An import before the product existed is impossible; a tiny catalogue may squeeze.
            when = max(when, product.created)
            batches.append([when, product, variant, len(sold_at), rest])
        return [tuple(b) for b in batches]

    def _key_row(self, product, variant, index, ciphertext, fingerprint, created) -> None:
        """The index-th key of the variant (in id order): sold to the index-th unit sold,
        then reserved for the unpaid orders, then on sale (void once its product or option
        was deleted, and a few the merchant voided)."""
        order_id = reserved_until = sold_at = None
        sold = len(variant.sold_order)
        if index < sold:
            status, order_id, sold_at = "sold", variant.sold_order[index], variant.sold_at[index]
        else:
            index -= sold
            if variant.reserved_units is None:
                variant.reserved_units = [(o, u) for o, q, u in variant.reserved for _ in range(q)]
            if index < len(variant.reserved_units):
                status = "reserved"
                order_id, reserved_until = variant.reserved_units[index]
            elif variant.deleted_at is not None or product.deleted_at is not None or self.rng.random() < 0.015:
                status = "void"
            else:
                status = "available"
        self.write(
            "card_keys",
            [
                self.next_id("card_keys"),
                product.id,
                ciphertext,
                fingerprint,
                status,
                order_id,
                reserved_until,
                sold_at,
                created,
                variant.id,
            ],
        )

    # -- what the measuring side needs --------------------------------------------------------

    def summary(self) -> dict:
        ctx = self.context
        big = self.merchants[0]
        top = sorted(
            (p for p in self.products if p.sellable_until == math.inf and p.sellable_from < self.now),
            key=lambda p: -p.orders,
        )
        lookup_email = max(self.lookup_emails, key=self.lookup_emails.get) if self.lookup_emails else None
        delivered = [s for s in self.samples.get("orders", {}).get("delivered", []) if s["query_password"]]
        return {
            "scale": None,  # filled by the caller
            "now": _utc(self.now).isoformat(),
            "merchant": {
                "email": big.email,
                "password": MERCHANT_PASSWORD,
                "merchant_id": big.id,
                "public_id": big.public_id,
                "two_factor": False,
                "orders": big.orders,
            },
            "other_merchant_password": MERCHANT_PASSWORD,
            "operator": ctx.operator,
            "operator_recovery_codes": ctx.recovery_codes,
            "big_merchant_id": big.id,
            "products": {
                "checkout": big.products[0].slug,
                "top": [p.slug for p in top[:20]],
                "big_merchant": [p.slug for p in big.products if p.sellable_until == math.inf][:20],
                "with_variants": [p.slug for p in top if p.has_choice][:10],
                "manual": [p.slug for p in top if p.delivery == "manual"][:5],
                "fixed": [p.slug for p in top if p.delivery == "fixed"][:5],
            },
            "search_queries": ["steam", "会员", "windows 激活", "网易云音乐", "Netflix"],
            "search_url": "/?q=",  # the storefront's search is the home page's q
            "query_password": QUERY_PASSWORD,
            "orders": self.samples.get("orders", {}),  # by status: token, number, query password ...
            "big_merchant_orders": self.samples.get("big_merchant_orders", {}),
            "complaints": self.samples.get("complaints", {}),
            "lookup": {
                "number": delivered[0]["number"] if delivered else None,
                "query_password": QUERY_PASSWORD,
                "email": lookup_email,
            },
            "settlement_today_recorded": False,
            "notes": [
                "Pending orders expire 15 minutes after they were placed (expires_at); the reconciler's first run "
                "after that expires them and releases their keys.",
                "The sandbox gateway is on (as seed-demo turns it on): checkouts of the benchmark pay with it.",
                "Every merchant's password is other_merchant_password; their emails are merchantNNN@bigshop.local "
                "(NNN the rank, 001 the second biggest).",
            ],
        }


@dataclass
class Context:
    """What the fill takes from the app of the instance: its keys, password hashes, the
    retention's address hash and the words of the complaint threads."""

    vault: object
    raw_keys: str
    merchant_hash: str
    operator_hash: str
    query_hash: str
    recovery_codes: list[str]
    recovery_hashes: str
    hash_ip: object
    texts: dict
    operator: dict = field(default_factory=dict)

    def text(self, name: str, order: Order, **values) -> str:
        """A step of a complaint thread as faka words it, in the language of who acted
        (the buyer's order language for the buyer's steps, the site's for the others)."""
        buyer_steps = ("escalated", "accepted_refund", "accepted_replacement", "withdrawn")
        locale = order.locale if name in buyer_steps else "zh_CN"
        template = self.texts[locale][name]
        if "amount" in values:
            values["amount"] = f"¥{values['amount'] // 100:,}.{values['amount'] % 100:02d}"
        return template % values if values else template


COMPLAINT_MESSAGES = {
    "offer_refund": "offers a refund of %(amount)s.",
    "offer_replacement": "offers %(count)s replacement key(s).",
    "accepted_refund": "accepted the refund of %(amount)s.",
    "accepted_replacement": "accepted the replacement of %(count)s key(s).",
    "escalated": "asked the platform to decide.",
    "withdrawn": "withdrew the complaint.",
    "decided_rejected": "decided: the complaint is rejected.",
    "decided_refund": "decided: refund %(amount)s.",
    "auto_escalated": "The seller did not answer in time, so the platform will decide.",
    "auto_closed": "The buyer did not answer the seller in time, so the complaint is closed.",
}


def _address_hasher(secret_key):
    """faka.platform.retention.hash_ip without its per-call key derivation and app
    lookup (it is called for hundreds of thousands of addresses); make_context checks the
    two agree."""
    import hmac

    secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
    key = hmac.new(secret, b"faka.retention.ip-address", hashlib.sha256).digest()

    def hash_address(ip: str) -> str:
        return "h:" + hmac.new(key, ip.encode(), hashlib.sha256).hexdigest()[:40]

    return hash_address


def make_context(app) -> Context:
    from flask_babel import force_locale, gettext

    from faka.accounts import twofactor
    from faka.core.crypto import vault
    from faka.core.passwords import hash_login_password, hash_query_password
    from faka.payments.gateways import ensure_sandbox
    from faka.platform.retention import hash_ip

    with app.app_context():
        ensure_sandbox(enabled=True)
        texts = {}
        for locale in ("zh_CN", "en"):
            with app.test_request_context(), force_locale(locale):
                texts[locale] = {name: gettext(msgid) for name, msgid in COMPLAINT_MESSAGES.items()}
        codes, hashes = twofactor.new_recovery_codes()
        the_vault = vault()
        raw = ",".join(the_vault.keys)
        fast_hash_ip = _address_hasher(app.secret_key)
        if fast_hash_ip("203.0.113.7") != hash_ip("203.0.113.7"):
            raise RuntimeError("faka.platform.retention.hash_ip changed: update _address_hasher")
    return Context(
        vault=the_vault,
        raw_keys=raw,
        merchant_hash=hash_login_password(MERCHANT_PASSWORD),
        operator_hash=hash_login_password(OPERATOR_PASSWORD),
        query_hash=hash_query_password(QUERY_PASSWORD),
        recovery_codes=codes,
        recovery_hashes=hashes,
        hash_ip=fast_hash_ip,
        texts=texts,
    )


# -- the command ----------------------------------------------------------------------------


def fill(args) -> int:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    mark = [started]

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", flush=True)

    def phase(name: str) -> None:
        now = time.perf_counter()
        timings[name] = now - mark[0]
        mark[0] = now

    instance = Path(args.instance).resolve()
    instance.mkdir(parents=True, exist_ok=True)
    url = args.database_url
    sqlite = url.startswith("sqlite")
    if sqlite:
        sqlite_path = url.split(":///", 1)[1]
        if args.reset and Path(sqlite_path).exists():
            for suffix in ("", "-wal", "-shm"):
                Path(sqlite_path + suffix).unlink(missing_ok=True)
    elif args.reset:
        PostgresStore.reset(_psycopg_url(url))
    os.environ.update({"FAKA_INSTANCE_PATH": str(instance), "DATABASE_URL": url})
    os.environ.pop("REDIS_URL", None)  # the fill runs no jobs
    progress(f"init-db on {url.split('@')[-1]} (instance {instance})")
    migrated = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "faka", "init-db"], cwd=ROOT, capture_output=True, text=True
    )
    if migrated.returncode:
        print(migrated.stdout + migrated.stderr, file=sys.stderr)
        return 2
    store = SqliteStore(sqlite_path) if sqlite else PostgresStore(_psycopg_url(url))
    if store.filled():
        print("the database already holds a shop: use --reset to empty it first", file=sys.stderr)
        store.close()
        return 2
    from faka import create_app

    app = create_app({"JOBS_MODE": "sync"})
    context = make_context(app)
    with app.app_context():
        from faka.extensions import db

        db.engine.dispose()  # the fill writes through its own connections
    scale = Scale.of(args.scale)
    now = datetime.fromisoformat(args.now.replace("Z", "+00:00")) if args.now else datetime.now(UTC)
    now = now.replace(microsecond=0)
    progress(
        f"scale {args.scale}: {scale.merchants} merchants, {scale.products:,} products, {scale.keys:,} keys, "
        f"{scale.orders:,} orders; seed {args.seed}; now {now.isoformat()}"
    )
    pool = None
    if scale.keys > 50_000:
        workers = max(1, min(os.cpu_count() or 1, 4))
        pool = multiprocessing.get_context("spawn").Pool(workers, _start_worker, (context.raw_keys,))
    else:
        _start_worker(context.raw_keys)
    phase("prepare")
    store.begin()
    world = World(store, context, scale, args.seed, now, progress)
    world.build()
    phase("catalogue")
    progress("catalogue done; simulating the year")
    world.simulate()
    world.finish_catalogue()
    phase("year")
    progress("year done; making the card keys")
    try:
        world.keys(pool)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    phase("keys")
    store.finish(progress)
    phase("indexes, vacuum")
    counts = store.counts()
    summary = world.summary()
    summary["scale"] = args.scale
    summary["seed"] = args.seed
    summary["database_url"] = url
    summary["instance"] = str(instance)
    summary["counts"] = counts
    summary["timings"] = {
        **{k: round(v, 1) for k, v in timings.items()},
        "total": round(time.perf_counter() - started, 1),
    }
    (instance / "bigshop.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    store.close()
    _report(store, counts, timings, time.perf_counter() - started)
    return 0


def _psycopg_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _report(store, counts: dict[str, int], timings: dict[str, float], total: float) -> None:
    print()
    print(f"{'table':<26}{'rows':>12}{'write s':>10}{'index s':>10}{'vacuum s':>10}")
    for table, rows in counts.items():
        sink = store.sinks.get(table)
        if not rows and sink is None:
            continue
        write = sink.seconds if sink else 0.0
        print(
            f"{table:<26}{rows:>12,}{write:>10.1f}{store.index_seconds.get(table, 0.0):>10.1f}"
            f"{store.vacuum_seconds.get(table, 0.0):>10.1f}"
        )
    for name, seconds in store.vacuum_seconds.items():
        if name not in counts:
            print(f"{name:<26}{'':>12}{'':>10}{'':>10}{seconds:>10.1f}")
    print()
    print(
        "phases: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
        + f"; total {total:.1f} s"
    )
    print("(write s: time handing the table's rows to the database, generation not included)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("fill", help="fill a database with a year of a busy platform")
    command.add_argument("--database-url", required=True, help="postgresql://... or sqlite:////path/faka.db")
    command.add_argument("--instance", required=True, help="the instance folder the app will run with")
    command.add_argument("--scale", type=float, default=1.0)
    command.add_argument("--seed", type=int, default=1)
    command.add_argument("--now", default=None, help="when the year ends (ISO time; default: now)")
    command.add_argument("--reset", action="store_true", help="empty the database first")
    args = parser.parse_args()
    return fill(args)


if __name__ == "__main__":
    sys.exit(main())
