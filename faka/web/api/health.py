"""GET /healthz for monitoring, and GET /healthz/host for load balancers."""

from flask import Blueprint, jsonify

from faka.extensions import limiter
from faka.ops.health import health, host_health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz():
    healthy, report = health()
    return jsonify(report), 200 if healthy else 503


@bp.get("/healthz/host")
@limiter.exempt
def healthz_host():
    healthy, report = host_health()
    return jsonify(report), 200 if healthy else 503
