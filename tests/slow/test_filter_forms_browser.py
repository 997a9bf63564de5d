"""The back office's filter forms (a select that reloads the list as it changes) swap the
whole page, not the page into the form: once a filter form had no hx-target, htmx put a
second copy of the page, header and all, inside the form."""

import pytest

from faka.accounts import users
from faka.extensions import db
from faka.ledger.models import LedgerEntry


@pytest.mark.browser
def test_changing_the_ledger_filter_shows_one_page(chromium, live_server):
    app, base = live_server
    users.create_merchant("filters@shop.test", "a-long-password-1", "筛选小店", approved=True)
    db.session.commit()
    context = chromium.new_context(viewport={"width": 360, "height": 800}, locale="en")
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"{base}/login?lang=en")
        page.fill("#email", "filters@shop.test")
        page.fill("#password", "a-long-password-1")
        page.locator("form:has(#password) button[type=submit]").click()
        page.wait_for_url("**/merchant/**")
        page.goto(f"{base}/merchant/money")
        assert page.locator("h1").count() == 1
        page.select_option("select#kind", LedgerEntry.SALE)
        page.wait_for_url(f"**/merchant/money?kind={LedgerEntry.SALE}")
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").count() == 1
        assert page.locator("header.topbar").count() == 1
        assert page.locator("select#kind").input_value() == LedgerEntry.SALE
        assert errors == []
    finally:
        context.close()
