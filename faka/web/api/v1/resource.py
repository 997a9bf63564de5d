"""A resource of the API: a flask-smorest Blueprint whose operations are tagged with its
name in the OpenAPI document and document the errors every operation can answer.

Each resource module makes one (`bp = Resource("products", __name__, description=...)`)
and faka/web/api/v1/__init__.py nests it under /api/v1 (RESOURCES there).
"""

from copy import deepcopy
from http import HTTPStatus

from flask_smorest import Blueprint


def document(view, *, responses=(), security=None, parameters=(), extensions=None) -> None:
    """Add to the OpenAPI description of `view`: error `responses` (status codes, described
    once in the document's components), its `security` requirement, header `parameters`,
    and `extensions` (x-... keys of the operation)."""
    view._apidoc = deepcopy(getattr(view, "_apidoc", {}))
    documented = view._apidoc.setdefault("response", {}).setdefault("responses", {})
    for status in responses:
        documented.setdefault(status, [])
        if RESPONSE_NAMES[status] not in documented[status]:
            documented[status].append(RESPONSE_NAMES[status])
    if security is not None:
        view._apidoc.setdefault("manual_doc", {})["security"] = security
    if extensions:
        view._apidoc.setdefault("manual_doc", {}).update(extensions)
    if parameters:
        view._apidoc.setdefault("arguments", {}).setdefault("parameters", []).extend(parameters)


# The components.responses each error status refers to (faka/web/api/v1/__init__.py writes
# them); the names are flask-smorest's, which it uses itself for invalid arguments (422).
RESPONSE_NAMES = {status: HTTPStatus(status).name for status in (400, 401, 403, 404, 409, 422, 429)}


class Resource(Blueprint):
    """Operations tagged `name`; one with a path parameter documents 404 (another
    merchant's object answers exactly as a missing one)."""

    def route(self, rule, *, parameters=None, tags=None, **options):
        register = super().route(rule, parameters=parameters, tags=tags or [self.name], **options)

        def decorator(view):
            if "<" in rule:
                document(view, responses=(404,))
            return register(view)

        return decorator
