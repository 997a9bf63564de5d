"""Blueprints: thin routes that parse, call one service, and render."""


def register_blueprints(app) -> None:
    from faka.blueprints import (
        auth,
        captcha,
        catalog,
        checkout,
        complaints,
        errors,
        health,
        merchant,
        operator,
        orders,
        passkeys,
        pay,
    )

    app.register_blueprint(catalog.bp)
    app.register_blueprint(checkout.bp)
    app.register_blueprint(captcha.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(complaints.bp)
    app.register_blueprint(pay.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(passkeys.bp)
    app.register_blueprint(merchant.bp)
    app.register_blueprint(operator.bp)
    app.register_blueprint(health.bp)
    errors.init_app(app)
