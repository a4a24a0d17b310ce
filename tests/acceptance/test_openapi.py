"""The OpenAPI description: valid OpenAPI 3.1, listing exactly the routes and methods of the
router (a route added without a description fails here), served at /openapi.json."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import orjson
from openapi_spec_validator import validate
from starlette.routing import Route

from jobq.http import openapi
from jobq.http.routes import ROUTES
from tests import helpers

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def routed() -> set[tuple[str, str]]:
    """(path, method) of every route; HEAD only where Starlette did not add it to a GET."""
    found = set()
    for route in ROUTES:
        assert isinstance(route, Route), route
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette answers HEAD wherever GET is routed
        found |= {(route.path, m.lower()) for m in methods}
    return found


def described(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, m) for path, item in document["paths"].items() for m in item if m in METHODS}


def test_the_document_lists_exactly_the_routes() -> None:
    document = openapi.document()
    assert described(document) == routed(), (
        f"routes without a description: {sorted(routed() - described(document))}; "
        f"descriptions without a route: {sorted(described(document) - routed())}"
    )


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.document()
    assert document["openapi"].startswith("3.1.")
    validate(document)


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], list[Any]]]:
    return [
        (path, method, op, [*item.get("parameters", []), *op.get("parameters", [])])
        for path, item in document["paths"].items()
        for method, op in item.items() if method in METHODS
    ]


def _resolve(document: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in obj:
        name = obj["$ref"].rpartition("/")[2]
        resolved: dict[str, Any] = document["components"]["parameters"][name]
        return resolved
    return obj


def test_path_parameters_match_the_route_templates() -> None:
    document = openapi.document()
    for path, method, _, params in _operations(document):
        in_path = {p["name"] for p in map(lambda p: _resolve(document, p), params)
                   if p["in"] == "path"}
        assert in_path == set(re.findall(r"{(\w+)}", path)), (path, method)


def test_operation_ids_are_unique_and_every_operation_answers_something() -> None:
    document = openapi.document()
    ids = [op["operationId"] for _, _, op, _ in _operations(document)]
    assert len(ids) == len(set(ids))
    for path, method, op, _ in _operations(document):
        assert any(code.startswith("2") for code in op["responses"]), (path, method)


def test_only_the_public_endpoints_need_no_credentials() -> None:
    public = {path for path, _, op, _ in _operations(openapi.document())
              if op.get("security") == []}
    assert public == {"/system/ts", "/healthz", "/readyz", "/metrics", "/openapi.json"}


def test_served_at_openapi_json_without_credentials(server: helpers.Server) -> None:
    response = httpx.get(server.url + "/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == openapi.document()


def _rows_validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator of JSON-lines rows of the schema `name`, $refs resolved in the document."""
    document = openapi.document()
    schema = {**openapi.array(openapi.ref(name)), "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_metadata_never_shadows_the_fields_of_a_row(server: helpers.Server) -> None:
    """Found against the description: `jobmeta=ts` used to answer a client's `ts` field."""
    shadowing = {"spider": "s", "ts": "hello", "elapsed": None, "key": "1/1/1", "note": 1}
    with server.client() as http:
        pushed = http.post("/jobq/7/push", content=orjson.dumps(shadowing))
        assert pushed.status_code == 200, pushed.text
        key = pushed.json()["key"]
        jobmeta = ["ts", "elapsed", "key", "note"]
        for path, params in (("/jobq/7/list", {"state": "pending", "jobmeta": jobmeta}),
                             ("/jobq/7/jobsummary", {"key": key, "jobmeta": jobmeta})):
            response = http.get(path, params=params)
            assert response.status_code == 200, response.text
            rows = [orjson.loads(line) for line in response.content.splitlines()]
            _rows_validator("JobRow").validate(rows)
            assert rows[0]["key"] == key and rows[0]["note"] == 1
            assert isinstance(rows[0]["ts"], int) and isinstance(rows[0]["elapsed"], int)
