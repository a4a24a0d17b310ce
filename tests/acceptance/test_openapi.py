"""The OpenAPI description, generated from the route table: valid OpenAPI 3.1, every route
of the table in it (and nothing else), its parameters those the table declares, and the
very document a live server serves at /openapi.json."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import orjson
from openapi_spec_validator import validate

from jobq.http import openapi
from jobq.http.spec import Access
from jobq.http.table import ROUTES
from tests import helpers

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _document() -> dict[str, Any]:
    return openapi.document(ROUTES)


def described(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, m) for path, item in document["paths"].items() for m in item if m in METHODS}


def test_every_route_of_the_table_is_described_and_nothing_else() -> None:
    routed = {(route.path, route.method.lower()) for route in ROUTES}
    assert len(routed) == len(ROUTES) > 30
    assert described(_document()) == routed


def test_the_document_is_valid_openapi_3_1() -> None:
    document = _document()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_each_operation_has_the_parameters_body_and_access_of_its_route() -> None:
    document = _document()
    for route in ROUTES:
        item = document["paths"][route.path]
        op = item[route.method.lower()]
        params = [_resolve(document, p) for p in [*item.get("parameters", []),
                                                   *op.get("parameters", [])]]
        assert {(p["name"], p["in"]) for p in params} == {
            (p.name, p.where) for p in route.params}, (route.method, route.path)
        assert op["operationId"] == route.op_id
        assert ("requestBody" in op) == (route.body.kind.value != "none"), route.path
        assert (op.get("security") == []) == (route.access is Access.PUBLIC), route.path
        for p in params:
            if p["schema"] == openapi.ref("RecordKey"):
                continue  # reads of job data start at a record key (PID/SID/JOB/INDEX)
            if p["name"] in ("count", "start", "startts", "endts"):
                assert p["schema"]["type"] == "integer", (route.path, p)


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
    document = _document()
    for path, method, _, params in _operations(document):
        in_path = {p["name"] for p in map(lambda p: _resolve(document, p), params)
                   if p["in"] == "path"}
        assert in_path == set(re.findall(r"{(\w+)}", path)), (path, method)


def test_operation_ids_are_unique_and_every_operation_answers_something() -> None:
    document = _document()
    ids = [op["operationId"] for _, _, op, _ in _operations(document)]
    assert len(ids) == len(set(ids))
    for path, method, op, _ in _operations(document):
        assert any(code.startswith("2") for code in op["responses"]), (path, method)


def test_only_the_public_endpoints_need_no_credentials() -> None:
    public = {path for path, _, op, _ in _operations(_document())
              if op.get("security") == []}
    assert public == {"/system/ts", "/healthz", "/readyz", "/metrics", "/openapi.json"}


def test_served_at_openapi_json_without_credentials(server: helpers.Server) -> None:
    response = httpx.get(server.url + "/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == orjson.loads(orjson.dumps(_document()))


def _rows_validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator of JSON-lines rows of the schema `name`, $refs resolved in the document."""
    document = _document()
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
