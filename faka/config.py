"""Configuration read from the environment.

Every setting has a default that works on a fresh machine (SQLite in the instance folder,
jobs in-process, the sandbox gateway), so `make run` needs nothing installed.
"""

import os
from datetime import timedelta


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY")  # generated into the instance folder when unset
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")  # default: SQLite in the instance folder
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    # "pgbouncer" when DATABASE_URL goes through a pooler in transaction mode (PgBouncer's
    # pool_mode = transaction, or any pooler that hands each transaction another server
    # connection): faka then keeps nothing on a connection between transactions
    # (faka/core/db.py). Unset for a direct connection or a pooler in session mode.
    DATABASE_POOLER = os.environ.get("FAKA_DATABASE_POOLER") or None
    # A direct connection to PostgreSQL for LISTEN, which a transaction pooler cannot carry
    # (faka/orders/status_signal.py). Default: DATABASE_URL, unless DATABASE_POOLER is set;
    # then, without it, status polls read the database each time.
    DATABASE_LISTEN_URL = os.environ.get("FAKA_DATABASE_LISTEN_URL") or None
    # Web hosts behind the load balancer (docs/topology.md): above 1, `flask doctor` checks
    # that they share what they must.
    WEB_HOSTS = _env_int("FAKA_WEB_HOSTS", 1)
    REDIS_URL = os.environ.get("REDIS_URL") or None
    RQ_QUEUE = os.environ.get("FAKA_RQ_QUEUE", "faka")
    # "rq" when REDIS_URL is set, else "thread"; "sync" runs each job inline after commit.
    JOBS_MODE = os.environ.get("FAKA_JOBS_MODE")
    RECONCILE_INTERVAL = _env_int("FAKA_RECONCILE_INTERVAL", 60)
    ENCRYPTION_KEYS = os.environ.get("FAKA_ENCRYPTION_KEYS")
    BASE_URL = os.environ.get("FAKA_BASE_URL", "http://127.0.0.1:5000")
    # Where `flask backup` writes (else <instance>/backups); the console's checklist looks there.
    BACKUP_DIR = os.environ.get("FAKA_BACKUP_DIR") or None

    ORDER_TTL_MINUTES = _env_int("FAKA_ORDER_TTL_MINUTES", 15)
    CURRENCY = os.environ.get("FAKA_CURRENCY", "CNY")
    MAX_KEYS_PER_ORDER = 100

    MAIL_SERVER = os.environ.get("MAIL_SERVER") or None
    MAIL_PORT = _env_int("MAIL_PORT", 25)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    MAIL_USE_TLS = _env_bool("MAIL_USE_TLS")
    MAIL_USE_SSL = _env_bool("MAIL_USE_SSL")
    MAIL_TIMEOUT = _env_int("MAIL_TIMEOUT", 10)
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "faka <no-reply@localhost>")
    MAIL_MAX_ATTEMPTS = _env_int("MAIL_MAX_ATTEMPTS", 8)

    BABEL_DEFAULT_LOCALE = "zh_CN"
    BABEL_DEFAULT_TIMEZONE = os.environ.get("FAKA_TIMEZONE", "Asia/Shanghai")
    LANGUAGES = ["zh_CN", "en"]

    # Rate limits live in Redis when REDIS_URL is set. Redis down must not take the shop
    # down with it (a gateway's notification must still be recorded): the limits are then
    # counted in each process's memory until Redis answers again.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_LOOKUP = os.environ.get("FAKA_RATELIMIT_LOOKUP", "10 per minute")
    RATELIMIT_CHECKOUT = os.environ.get("FAKA_RATELIMIT_CHECKOUT", "30 per minute")
    RATELIMIT_QUOTE = os.environ.get("FAKA_RATELIMIT_QUOTE", "60 per minute")  # product-page price previews
    RATELIMIT_REPORT = os.environ.get("FAKA_RATELIMIT_REPORT", "5 per hour")  # buyers reporting a product
    # buyers asking to be told when a sold-out option is back (faka/messaging/restock.py)
    RATELIMIT_RESTOCK = os.environ.get("FAKA_RATELIMIT_RESTOCK", "10 per hour")
    # Buyers' complaint and review posts, per IP and order (buyers behind one NAT share an IP).
    RATELIMIT_COMPLAINT = os.environ.get("FAKA_RATELIMIT_COMPLAINT", "30 per hour")
    RATELIMIT_CAPTCHA = os.environ.get("FAKA_RATELIMIT_CAPTCHA", "60 per minute")  # captcha challenges fetched
    # Login and second-step posts per address, whatever the accounts (each account is also
    # slowed down per address by faka/accounts/login.py).
    RATELIMIT_LOGIN = os.environ.get("FAKA_RATELIMIT_LOGIN", "20 per minute")
    # Captcha work: a browser derives on average half this many PBKDF2 keys (faka/risk/captcha.py);
    # 2000 takes about 0.6 s in headless Chromium on 2 cores, so about 1 s on a mid-range phone.
    CAPTCHA_MAX_NUMBER = _env_int("FAKA_CAPTCHA_MAX_NUMBER", 2000)
    # Payment notifications per source address: generous, a gateway calls from few addresses
    # (the sandbox pay page posts here too, from the buyer's address).
    RATELIMIT_NOTIFY = os.environ.get("FAKA_RATELIMIT_NOTIFY", "600 per minute")
    # Order, pay and complaint pages asked for by a token that does not exist, per address:
    # only misses count, so a buyer's page and its polling are never limited by it.
    RATELIMIT_TOKEN_MISSES = os.environ.get("FAKA_RATELIMIT_TOKEN_MISSES", "20 per minute")
    # License checks by merchants' software (/api/v1/licenses/, docs/licenses.md), per address:
    # every check counts towards the first; the second counts only keys not found (guessing).
    RATELIMIT_LICENSE = os.environ.get("FAKA_RATELIMIT_LICENSE", "60 per minute;600 per hour")
    RATELIMIT_LICENSE_MISSES = os.environ.get("FAKA_RATELIMIT_LICENSE_MISSES", "10 per minute;50 per hour")
    # The merchant REST API (/api/v1, docs/api.md): calls per API key, whatever the operation;
    # and requests without a valid key per address (they look for keys).
    API_RATE_LIMIT = os.environ.get("FAKA_API_RATE_LIMIT", "120 per minute")
    API_AUTH_FAILURE_LIMIT = os.environ.get("FAKA_API_AUTH_FAILURE_LIMIT", "30 per minute")
    # Webhook URLs must be public addresses unless this is set (for a LAN-only deployment).
    WEBHOOK_ALLOW_PRIVATE = _env_bool("FAKA_WEBHOOK_ALLOW_PRIVATE")
    # Where push channels send (faka/messaging/push_providers.py), by kind; tests point them
    # at a local server. A Bark channel may name its own self-hosted server instead.
    PUSH_PROVIDER_URLS = {
        "telegram": "https://api.telegram.org",
        "bark": "https://api.day.app",
        "wecom": "https://qyapi.weixin.qq.com",
        "dingtalk": "https://oapi.dingtalk.com",
        "feishu": "https://open.feishu.cn",
        "serverchan": "https://sctapi.ftqq.com",
        "pushplus": "https://www.pushplus.plus",
    }

    # Back-office sessions end after this long without a request.
    PERMANENT_SESSION_LIFETIME = timedelta(minutes=_env_int("FAKA_SESSION_IDLE_MINUTES", 120))
    # ...and, however active, this many hours after their login.
    SESSION_MAX_HOURS_OPERATOR = _env_int("FAKA_SESSION_MAX_HOURS_OPERATOR", 12)
    SESSION_MAX_HOURS_MERCHANT = _env_int("FAKA_SESSION_MAX_HOURS_MERCHANT", 7 * 24)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("FAKA_SECURE_COOKIES")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = _env_bool("FAKA_SECURE_COOKIES")
    HSTS = _env_bool("FAKA_HSTS")
    WTF_CSRF_HEADERS = ["X-CSRFToken"]
    # CSRF is checked by faka/web/security.py's hook, which looks at the method first.
    WTF_CSRF_CHECK_DEFAULT = False
    WTF_CSRF_TIME_LIMIT = None
    MAX_CONTENT_LENGTH = 24 * 1024 * 1024  # key files up to 20 MB, plus the form around them
    # Uploads (faka/web/uploads.py): per back-office user, all uploads (licence, product
    # images, key files, logo) share one budget, and merchants' and operators' complaint posts
    # another. What is kept stored is bounded per merchant (product images and licence) and
    # per order (complaint images, whoever posted them).
    RATELIMIT_UPLOAD = os.environ.get("FAKA_RATELIMIT_UPLOAD", "10 per minute;120 per hour")
    RATELIMIT_COMPLAINT_REPLY = os.environ.get("FAKA_RATELIMIT_COMPLAINT_REPLY", "10 per minute;120 per hour")
    MERCHANT_STORAGE_QUOTA = _env_int("FAKA_MERCHANT_STORAGE_MB", 500) * 1024 * 1024
    ORDER_EVIDENCE_QUOTA = _env_int("FAKA_ORDER_EVIDENCE_MB", 50) * 1024 * 1024
    # Where uploads live (faka/core/storage.py): "local", the instance folder, or "database",
    # PostgreSQL, which every web host behind a load balancer shares.
    UPLOAD_STORAGE = os.environ.get("FAKA_UPLOAD_STORAGE") or "local"

    # Storefront pages are served from memory for this long (0 disables; see faka/core/cache.py).
    PAGE_CACHE_SECONDS = float(os.environ.get("FAKA_PAGE_CACHE_SECONDS", "2"))
    # A final order's status widget no longer changes; polls still in flight get it from memory.
    STATUS_CACHE_SECONDS = float(os.environ.get("FAKA_STATUS_CACHE_SECONDS", "30"))
    # How long a poll may reuse its last read of an unfinished order while the database says
    # the order has not changed since (faka/orders/status_signal.py); 0 reads every time.
    STATUS_TRUST_SECONDS = float(os.environ.get("FAKA_STATUS_TRUST_SECONDS", "10"))
