"""Issue 18's move, generated: `git mv` every module to its bounded context and rewrite
every import and dotted reference to it. Run once from the repository root on a clean
tree; it is kept beside the plan for review and deleted with it.

    python docs/plans/move_contexts.py [--dry-run]
"""

import ast
import io
import re
import subprocess
import sys
import tokenize
from collections import defaultdict
from pathlib import Path

DRY = "--dry-run" in sys.argv

# old module -> new module (whole files)
MOVES = {
    # the shared kernel
    "faka.database": "faka.core.db",
    "faka.jobs": "faka.core.tasks",
    "faka.pagecache": "faka.core.cache",
    "faka.instance": "faka.core.instance",
    "faka.models.types": "faka.core.types",
    "faka.services.clock": "faka.core.clock",
    "faka.services.errors": "faka.core.errors",
    "faka.services.text": "faka.core.text",
    "faka.services.crypto": "faka.core.crypto",
    "faka.services.passwords": "faka.core.passwords",
    "faka.services.uploads": "faka.core.uploads",
    # platform
    "faka.services.settings": "faka.platform.settings",
    "faka.services.audit": "faka.platform.audit",
    "faka.services.analytics": "faka.platform.analytics",
    "faka.services.platform_stats": "faka.platform.stats",
    "faka.services.retention": "faka.platform.retention",
    "faka.services.backup": "faka.platform.backup",
    "faka.services.dbcopy": "faka.platform.dbcopy",
    "faka.services.contact": "faka.platform.contact",
    # risk
    "faka.services.risk": "faka.risk.engine",
    "faka.services.blacklist": "faka.risk.blacklist",
    "faka.services.security_events": "faka.risk.security_events",
    "faka.services.captcha": "faka.risk.captcha",
    "faka.services.risk_monitor": "faka.risk.monitor",
    # reviews
    "faka.services.reviews": "faka.reviews.reviews",
    "faka.services.reputation": "faka.reviews.reputation",
    # inventory
    "faka.services.keys": "faka.inventory.keys",
    "faka.services.stock": "faka.inventory.stock",
    # catalog
    "faka.services.catalog": "faka.catalog.storefront",
    "faka.services.categories": "faka.catalog.categories",
    "faka.services.products": "faka.catalog.products",
    "faka.services.product_images": "faka.catalog.images",
    "faka.services.checkout_fields": "faka.catalog.checkout_fields",
    "faka.services.moderation": "faka.catalog.moderation",
    # messaging
    "faka.services.mail": "faka.messaging.mail",
    "faka.services.notifications": "faka.messaging.notifications",
    "faka.services.webhooks": "faka.messaging.webhooks",
    # accounts
    "faka.services.accounts": "faka.accounts.users",
    "faka.services.twofactor": "faka.accounts.twofactor",
    "faka.services.passkeys": "faka.accounts.passkeys",
    "faka.services.merchants": "faka.accounts.onboarding",
    "faka.services.merchant_review": "faka.accounts.review",
    # ledger
    "faka.services.money": "faka.ledger.balances",
    "faka.services.settlement": "faka.ledger.settlement",
    # payments
    "faka.payments": "faka.payments.gateways",
    "faka.payments.base": "faka.payments.gateways.base",
    "faka.payments.alipay": "faka.payments.gateways.alipay",
    "faka.payments.epay": "faka.payments.gateways.epay",
    "faka.payments.sandbox": "faka.payments.gateways.sandbox",
    "faka.payments.stripe_checkout": "faka.payments.gateways.stripe_checkout",
    "faka.payments.usdt": "faka.payments.gateways.usdt",
    "faka.payments.wechat": "faka.payments.gateways.wechat",
    "faka.payments.clients": "faka.payments.gateways.clients",
    "faka.services.payments": "faka.payments.notify",
    "faka.services.refunds": "faka.payments.refunds",
    "faka.services.cashier": "faka.payments.cashier",
    "faka.services.holds": "faka.payments.holds",
    # orders
    "faka.services.checkout": "faka.orders.checkout",
    "faka.services.coupons": "faka.orders.coupons",
    "faka.services.delivery": "faka.orders.delivery",
    "faka.services.orders": "faka.orders.lookup",
    "faka.services.merchant_orders": "faka.orders.merchant_orders",
    "faka.order_changes": "faka.orders.status_signal",
    # complaints
    "faka.services.complaints": "faka.complaints.workflow",
    # ops: the code that looks at every context
    "faka.services.health": "faka.ops.health",
    "faka.services.doctor": "faka.ops.doctor",
    "faka.services.seed": "faka.ops.seed",
    "faka.services.first_run": "faka.ops.first_run",
    "faka.services.reconcile": "faka.ops.reconcile",
    # web: everything shaped by a request
    "faka.application": "faka.web.app",
    "faka.security": "faka.web.security",
    "faka.device": "faka.web.device",
    "faka.i18n": "faka.web.i18n",
    "faka.templating": "faka.web.templating",
    "faka.charts": "faka.web.charts",
    "faka.request_guard": "faka.web.request_guard",
    "faka.services.share": "faka.web.shop.share",
    "faka.blueprints": "faka.web",
    "faka.blueprints.access": "faka.web.access",
    "faka.blueprints.errors": "faka.web.errors",
    "faka.blueprints.limits": "faka.web.limits",
    "faka.blueprints.uploads": "faka.web.uploads",
    "faka.blueprints.htmx": "faka.web.htmx",
    "faka.blueprints.forms": "faka.web.forms",
    "faka.blueprints.fields": "faka.web.fields",
    "faka.blueprints.catalog": "faka.web.shop.catalog",
    "faka.blueprints.checkout": "faka.web.shop.checkout",
    "faka.blueprints.orders": "faka.web.shop.orders",
    "faka.blueprints.complaints": "faka.web.shop.complaints",
    "faka.blueprints.pay": "faka.web.shop.pay",
    "faka.blueprints.auth": "faka.web.auth.views",
    "faka.blueprints.passkeys": "faka.web.auth.passkeys",
    "faka.blueprints.health": "faka.web.api.health",
    "faka.blueprints.captcha": "faka.web.api.captcha",
    "faka.blueprints.merchant": "faka.web.merchant",
    "faka.blueprints.merchant_blacklist": "faka.web.merchant.blacklist",
    "faka.blueprints.merchant_complaints": "faka.web.merchant.complaints",
    "faka.blueprints.merchant_fields": "faka.web.merchant.fields",
    "faka.blueprints.merchant_images": "faka.web.merchant.images",
    "faka.blueprints.merchant_reviews": "faka.web.merchant.reviews",
    "faka.blueprints.merchant_forms": "faka.web.merchant.forms",
    "faka.blueprints.operator": "faka.web.operator",
    **{
        f"faka.blueprints.operator.{m}": f"faka.web.operator.{m}"
        for m in ("categories complaints console merchants moderation payments reviews risk settlement site").split()
    },
    # beside the package until now
    "config": "faka.config",
    "worker": "faka.worker",
}
PACKAGES = {"faka.payments", "faka.blueprints", "faka.blueprints.operator"}
PACKAGES_NEW = {"faka.payments.gateways", "faka.web", "faka.web.merchant", "faka.web.operator"}

# Old local names that read wrong under the new module name keep the old name as an alias
# where renaming is unsafe; elsewhere uses are renamed to the new module's name.
KEEP_NAME = {"faka.blueprints.auth", "faka.blueprints.passkeys"}

# models: each aggregate's classes go to its context's models.py
MODEL_FILES = {
    "audit": "platform",
    "settings": "platform",
    "catalog": "catalog",
    "images": "catalog",
    "checkout_fields": "catalog",
    "complaints": "complaints",
    "coupons": "orders",
    "imports": "inventory",
    "keys": "inventory",
    "mail": "messaging",
    "webhooks": "messaging",
    "merchants": "accounts",
    "users": "accounts",
    "passkeys": "accounts",
    "money": "ledger",
    "orders": "orders",
    "reviews": "reviews",
    "risk": "risk",
}
MODEL_CLASS_CONTEXT = {
    "GatewayConfig": "payments",
    "Refund": "payments",
    "PaymentNotice": "payments",
    "PaymentAttempt": "payments",
    "NotifyLog": "payments",
}
CONTEXT_DOCS = {
    "accounts": "Accounts: users, merchants and passkeys.",
    "catalog": "The catalogue: categories, products, their images and checkout fields.",
    "complaints": "Complaints: the case, its messages and evidence images.",
    "inventory": "Stock: card keys and the imports that bring them in.",
    "ledger": "The ledger: entries, payout accounts and withdrawals.",
    "messaging": "Outgoing messages: the email outbox and webhooks.",
    "orders": "Orders and coupons.",
    "payments": "Payments: notices, attempts, the notify log, refunds and gateway settings.",
    "platform": "Platform-wide settings and the audit trail.",
    "reviews": "Reviews of orders.",
    "risk": "Risk: rules' hits and events, the blacklist, security events and sign-ins.",
}
CONTEXTS_DOC = {
    "core": "The shared kernel: database, tasks, cache, clock, errors, crypto, text, uploads. It imports no context.",
    "accounts": "Accounts: users, merchants, sign-up, sessions, two-factor, passkeys and the merchant review.",
    "catalog": "The catalogue: categories, products, images, checkout fields, moderation and the storefront.",
    "inventory": "Stock: card keys, their import and reservation.",
    "orders": "Orders: checkout, coupons, delivery, lookup and the status signal.",
    "payments": "Payments: notification handling, refunds, holds, the cashier and the gateways.",
    "ledger": "The ledger: balances, payouts, withdrawals and settlement.",
    "complaints": "Complaints: the workflow, its steps and deadlines.",
    "reviews": "Reviews and reputation.",
    "risk": "Risk: the rules engine, blacklist, security events, captcha and the monitor.",
    "messaging": "Outgoing messages: the email outbox, notifications and webhooks.",
    "platform": "Platform-wide settings, audit, analytics, retention, backup and database copy.",
    "ops": "Operating the whole: health, doctor, seed, first run and the reconciler. It may import every context.",
    "payments.gateways": None,  # the registry lives in its __init__
    "web": None,  # register_blueprints lives in its __init__
    "web.shop": "The shop, as a buyer sees it.",
    "web.auth": "Sign-in, sign-up and passkeys.",
    "web.api": "JSON and health endpoints.",
}


def path_of(module: str, new: bool) -> Path:
    parts = module.split(".")
    packages = PACKAGES_NEW if new else PACKAGES
    if module in packages:
        return Path(*parts) / "__init__.py"
    return Path(*parts[:-1]) / f"{parts[-1]}.py"


def run(*args):
    if DRY:
        print(" ".join(args))
    else:
        subprocess.run(args, check=True)


# ---- models: split by top-level statement --------------------------------------------


def segments(path: Path):
    """(header, [(names defined, names used, text)]) of a module: the leading docstring and
    imports, then every top-level statement with the comments and blank lines before it."""
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    body = list(tree.body)
    header_end = 0
    while body and isinstance(body[0], (ast.Import, ast.ImportFrom, ast.Expr)):
        header_end = body.pop(0).end_lineno
    header = "".join(lines[:header_end])
    out, start = [], header_end
    for stmt in body:
        text = "".join(lines[start : stmt.end_lineno])
        defined = set()
        if isinstance(stmt, (ast.ClassDef, ast.FunctionDef)):
            defined.add(stmt.name)
        for node in ast.walk(stmt) if isinstance(stmt, ast.Assign) else ():
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
        used = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
        out.append((defined, used, text))
        start = stmt.end_lineno
    return header, out


def build_models():
    """Write each context's models.py; return {name: new module} for every public name."""
    names: dict[str, str] = {"utcnow": "faka.core.types", "UTCDateTime": "faka.core.types"}
    per_context: dict[str, list] = defaultdict(list)
    headers: dict[str, list[str]] = defaultdict(list)
    class_context: dict[str, str] = {}
    for stem, context in MODEL_FILES.items():
        header, segs = segments(Path(f"faka/models/{stem}.py"))
        previous = context
        for defined, used, text in segs:
            target = None
            for name in defined:
                target = MODEL_CLASS_CONTEXT.get(name, context)
            if target is None:  # a statement defining nothing: with what it uses
                hits = [class_context[n] for n in used if n in class_context]
                target = hits[0] if hits else previous
            for name in defined:
                class_context[name] = target
                if not name.startswith("_"):
                    names[name] = f"faka.{target}.models"
            per_context[target].append(text)
            if header not in headers[target]:
                headers[target].append(header)
            previous = target
    return names, per_context, headers


def write_models(per_context, headers):
    for context, texts in per_context.items():
        imports = []
        for header in headers[context]:
            for line in header.splitlines():
                if line.startswith(("from ", "import ")) and line not in imports:
                    imports.append(line)
        # a continued import: keep whole statements
        source = "\n".join(h for h in headers[context])
        tree = ast.parse(source)
        statements = []
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                text = ast.get_source_segment(source, node)
                if text not in statements:
                    statements.append(text)
        body = "".join(texts).strip("\n")
        text = f'"""{CONTEXT_DOCS[context]}"""\n\n' + "\n".join(statements) + "\n\n\n" + body + "\n"
        Path(f"faka/{context}/models.py").write_text(text)


# ---- rewriting references -------------------------------------------------------------

ALL_OLD = dict(MOVES)


def new_local(old_module: str) -> str:
    return ALL_OLD[old_module].rsplit(".", 1)[-1]


def import_lines(node: ast.ImportFrom, model_names: dict[str, str], keep: set[str]) -> list[str] | None:
    """The statements replacing `node`, or None when it does not change."""
    module = node.module or ""
    if node.level or not (module == "faka" or module.startswith("faka.") or module in ("config", "worker")):
        return None
    groups: dict[str, list[str]] = defaultdict(list)
    changed = False
    for alias in node.names:
        name, asname = alias.name, alias.asname
        sub = f"{module}.{name}"
        if module not in ALL_OLD and (module == "faka.models" or module.startswith("faka.models.")):
            if module == "faka.models" and sub in ALL_OLD:  # from faka.models import types
                target, imported = ALL_OLD[sub].rsplit(".", 1)
                groups[target].append(
                    imported + (f" as {asname}" if asname else f" as {name}" if imported != name else "")
                )
            else:
                groups[model_names[name]].append(name + (f" as {asname}" if asname else ""))
            changed = True
        elif sub in ALL_OLD:
            target, imported = ALL_OLD[sub].rsplit(".", 1)
            local = asname or (name if imported != name and (sub in KEEP_NAME or name in keep) else None)
            groups[target].append(imported + (f" as {local}" if local and local != imported else ""))
            changed = True
        elif module in ALL_OLD:
            groups[ALL_OLD[module]].append(name + (f" as {asname}" if asname else ""))
            changed = True
        else:
            groups[module].append(name + (f" as {asname}" if asname else ""))
    if not changed:
        return None
    return [f"from {target} import {', '.join(items)}" for target, items in groups.items()]


def renames_in(tree: ast.AST) -> dict[str, str]:
    """Local names bound by `from pkg import module` whose module's name changes."""
    out = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        for alias in node.names:
            sub = f"{node.module}.{alias.name}"
            if alias.asname or sub not in ALL_OLD or sub in KEEP_NAME:
                continue
            new = new_local(sub)
            if new != alias.name:
                out[alias.name] = new
    return out


def safe_to_rename(tree: ast.AST, old: str, new: str) -> bool:
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == new:
            return False
        if isinstance(node, ast.arg) and node.arg in (old, new):
            return False
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in (old, new):
            return False
        if isinstance(node, ast.alias) and (node.asname or node.name.split(".")[0]) == new:
            return False
        if isinstance(node, ast.Name) and node.id == old:
            parent = parents.get(node)
            if not (isinstance(node.ctx, ast.Load) and isinstance(parent, ast.Attribute) and parent.value is node):
                return False
    return True


def rename_tokens(source: str, old: str, new: str) -> str:
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    lines = source.splitlines(keepends=True)
    edits = []
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME or tok.string != old:
            continue
        before = tokens[i - 1].string if i else ""
        after = tokens[i + 1].string if i + 1 < len(tokens) else ""
        if before != "." and after == ".":
            edits.append((tok.start, old, new))
    for tok in tokens:  # Python 3.11 keeps an f-string's expressions inside one STRING token
        if tok.type == tokenize.STRING and re.match(r"[rRbB]*[fF]", tok.string):
            text = re.sub(rf"(?<![\w.]){re.escape(old)}\.", f"{new}.", tok.string)
            if text != tok.string:
                if tok.start[0] != tok.end[0]:
                    raise SystemExit(f"multi-line f-string with {old}. at line {tok.start[0]}")
                edits.append((tok.start, tok.string, text))
    for (row, col), was, text in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + text + line[col + len(was) :]
    return "".join(lines)


def dotted_pattern():
    olds = sorted((o for o in ALL_OLD if o.startswith("faka.")), key=len, reverse=True)
    return re.compile(
        r"(?<![\w.])("
        + "|".join(re.escape(o) for o in olds)
        + r")(?![\w])(?!\.(?:notify|refunds|cashier|holds|gateways|models|tasks)\b)"
    )


def path_map():
    out = {}
    for old, new in ALL_OLD.items():
        if old in PACKAGES or new in PACKAGES_NEW:
            continue
        out[str(path_of(old, False))] = str(path_of(new, True))
    for stem, context in MODEL_FILES.items():
        out[f"faka/models/{stem}.py"] = f"faka/{context}/models.py"
    out["faka/models/__init__.py"] = "faka/models.py"
    return out


PATHS = path_map()
DOTTED = dotted_pattern()
PATH_RE = re.compile(
    r"(?<![\w/.])(faka/)?("
    + "|".join(re.escape(p[len("faka/") :]) for p in sorted(PATHS, key=len, reverse=True) if p.startswith("faka/"))
    + r")(?![\w])"
)


def rewrite_text(text: str) -> str:
    text = DOTTED.sub(lambda m: ALL_OLD[m.group(1)], text)
    text = re.sub(r"(?<![\w.])faka\.models\.(\w+)(?![\w])", lambda m: _model_module(m), text)
    return PATH_RE.sub(lambda m: PATHS["faka/" + m.group(2)], text)


def _model_module(match):
    stem = match.group(1)
    if stem in MODEL_FILES:
        return f"faka.{MODEL_FILES[stem]}.models"
    return match.group(0)


def rewrite_python(path: Path, model_names) -> None:
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    renames, keep = {}, set()
    for old, new in renames_in(tree).items():
        if safe_to_rename(tree, old, new):
            renames[old] = new
        else:
            keep.add(old)
    replacements = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            new = import_lines(node, model_names, keep)
            if new is not None:
                replacements.append((node, new))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ("config", "worker") and not alias.asname:
                    print(f"warning: {path}: bare `import {alias.name}`")
    # strings, comments and `import faka.x` first, outside the from-imports rewritten below
    inside = {
        n
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for n in range(node.lineno, node.end_lineno + 1)
    }
    lines = [line if number in inside else rewrite_text(line) for number, line in enumerate(lines, 1)]
    for node, new in sorted(replacements, key=lambda r: r[0].lineno, reverse=True):
        indent = lines[node.lineno - 1][: node.col_offset]
        if indent.strip():  # `if x: from y import z` and the like
            raise SystemExit(f"{path}:{node.lineno}: import not at the start of its line")
        tail = lines[node.end_lineno - 1][node.end_col_offset :].rstrip("\n")  # a `# noqa` stays
        lines[node.lineno - 1 : node.end_lineno] = [indent + stmt + tail + "\n" for stmt in new]
    source = "".join(lines)
    for old, new in renames.items():
        source = rename_tokens(source, old, new)
    path.write_text(source)


def main():
    model_names, per_context, headers = build_models()
    # directories and package files
    contexts = [c for c in CONTEXTS_DOC if "." not in c or c.startswith(("web.", "payments."))]
    for package in contexts:
        folder = Path("faka", *package.split("."))
        folder.mkdir(parents=True, exist_ok=True)
    # git mv, bigger pieces first
    for old, new in MOVES.items():
        src, dst = path_of(old, False), path_of(new, True)
        if old in ("config", "worker"):
            src = Path(f"{old}.py")
        if not src.exists():
            raise SystemExit(f"missing {src}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        run("git", "mv", str(src), str(dst))
    for package, doc in CONTEXTS_DOC.items():
        init = Path("faka", *package.split("."), "__init__.py")
        if doc and not init.exists():
            init.write_text(f'"""{doc}"""\n')
    if DRY:
        return
    # models: the biggest aggregate of each context carries history
    biggest = {}
    for stem, context in MODEL_FILES.items():
        size = Path(f"faka/models/{stem}.py").stat().st_size
        if size > biggest.get(context, ("", 0))[1]:
            biggest[context] = (stem, size)
    for context, (stem, _size) in biggest.items():
        run("git", "mv", f"faka/models/{stem}.py", f"faka/{context}/models.py")
    write_models(per_context, headers)
    for stem in MODEL_FILES:
        if Path(f"faka/models/{stem}.py").exists():
            run("git", "rm", "-q", f"faka/models/{stem}.py")
    run("git", "mv", "faka/models/__init__.py", "faka/models.py")
    modules = sorted({m for m in model_names.values() if m.endswith(".models")})
    Path("faka/models.py").write_text(
        '"""Every context\'s models in one import, for Alembic and the app factory: importing\n'
        'this module registers every table. Contexts import each other\'s models directly."""\n\n'
        + "".join(f"import {m}  # noqa: F401\n" for m in modules)
    )
    run("git", "rm", "-q", "faka/services/__init__.py")
    # rewrite every reference
    files = [
        p
        for pattern in ("faka/**/*.py", "tests/**/*.py", "bench/**/*.py", "scripts/**/*.py", "migrations/**/*.py")
        for p in Path(".").glob(pattern)
        if "vendor" not in p.parts
    ]
    for path in files:
        rewrite_python(path, model_names)
    texts = [Path("README.md"), Path("Makefile"), Path("pyproject.toml"), Path("pytest.ini"), Path(".ci/run")]
    texts += [p for p in Path("docs").rglob("*.md") if "plans" not in p.parts]
    texts += [p for p in Path("deploy").rglob("*") if p.is_file()]
    for path in texts:
        if path.exists():
            path.write_text(rewrite_text(path.read_text()))
    by_hand()
    run("git", "add", "-A", "faka")


# references no import rewrite can see: paths to started scripts, the package root
EDITS = {
    "faka/core/instance.py": [
        ("ROOT = Path(__file__).resolve().parent.parent", "ROOT = Path(__file__).resolve().parents[2]")
    ],
    "faka/worker.py": [("python worker.py [--burst]", "faka-worker [--burst]")],
    "pyproject.toml": [
        ('faka = "faka.cli:main"', 'faka = "faka.cli:main"\nfaka-worker = "faka.worker:main"'),
        ('py-modules = ["config"]  # the settings read from the environment, beside the package\n', ""),
        ('"faka", "config", "conftest"', '"faka", "conftest"'),
    ],
    "Makefile": [("$(BIN)/python worker.py", "$(BIN)/faka-worker")],
    "deploy/systemd/faka-worker.service": [("/opt/faka/.venv/bin/python worker.py", "/opt/faka/.venv/bin/faka-worker")],
    "deploy/docker/compose.yaml": [('["python", "worker.py"]', '["faka-worker"]')],
    "tests/chaos_tools.py": [('[sys.executable, "worker.py", *args]', '[sys.executable, "-m", "faka.worker", *args]')],
    "tests/test_doctor.py": [
        ('[sys.executable, "worker.py", *self.args]', '[sys.executable, "-m", "faka.worker", *self.args]')
    ],
    "tests/test_jobs.py": [
        ('[sys.executable, "worker.py", "--burst"]', '[sys.executable, "-m", "faka.worker", "--burst"]'),
        ('[sys.executable, "worker.py"]', '[sys.executable, "-m", "faka.worker"]'),
    ],
    "tests/test_fuzz_routes.py": [('/ "faka" / "blueprints"', '/ "faka" / "web"')],
    "bench/run.py": [('[str(BIN / "python"), "worker.py"]', '[str(BIN / "faka-worker")]')],
}


def by_hand():
    for name, edits in EDITS.items():
        path = Path(name)
        text = path.read_text()
        for old, new in edits:
            if old not in text:
                raise SystemExit(f"{name}: {old!r} not found")
            text = text.replace(old, new)
        path.write_text(text)
    # prose: "worker.py" is now faka/worker.py, run as faka-worker
    for path in [Path("README.md"), *Path("deploy").rglob("*.md"), *Path("docs").glob("*.md")]:
        if path.exists():
            path.write_text(re.sub(r"(?<![\w/.])worker\.py\b", "faka/worker.py", path.read_text()))


if __name__ == "__main__":
    main()
