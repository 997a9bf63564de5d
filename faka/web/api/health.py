"""GET /healthz for load balancers and monitoring."""

from flask import Blueprint, jsonify

from faka.extensions import limiter
from faka.ops.health import health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz():
    healthy, report = health()
    return jsonify(report), 200 if healthy else 503
