"""Blueprints: thin routes that parse, call one service, and render."""


def register_blueprints(app) -> None:
    # Imported here: every view module imports this package (faka.web.access, forms...),
    # and importing faka.web.app for the factory must not load every view.
    from faka.web import errors, merchant, operator, substore_host
    from faka.web.api import captcha, health
    from faka.web.api import v1 as api_v1
    from faka.web.auth import passkeys
    from faka.web.auth import views as auth
    from faka.web.shop import brand, catalog, checkout, complaints, orders, pay, restock, substore

    app.register_blueprint(catalog.bp)
    app.register_blueprint(brand.bp)
    app.register_blueprint(checkout.bp)
    app.register_blueprint(captcha.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(complaints.bp)
    app.register_blueprint(pay.bp)
    app.register_blueprint(restock.bp)
    app.register_blueprint(substore.bp)
    substore_host.init_app(app)  # a sub-store's own domain serves its pages at / and /p/<slug>
    app.register_blueprint(auth.bp)
    app.register_blueprint(passkeys.bp)
    app.register_blueprint(merchant.bp)
    app.register_blueprint(operator.bp)
    app.register_blueprint(health.bp)
    api_v1.init_app(app)  # /api/v1: the merchant REST API and its OpenAPI document
    errors.init_app(app)
