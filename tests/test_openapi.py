"""carebot/openapi.yaml: a valid OpenAPI 3.1 document, shipped in the package, that describes
exactly the routes of the service with every door open: none undocumented, none missing."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from openapi_spec_validator import validate

from tests.every_door import every_door
from tests.schema_strategies import spec

METHODS = ("get", "post", "put", "patch", "delete")


def test_the_spec_is_valid_openapi_3_1() -> None:
    document = spec()  # read as the installed package has it (importlib.resources)
    assert document["openapi"].startswith("3.1")
    validate(document)


def spec_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec()["paths"].items()
        for method in item
        if method in METHODS
    }


def app_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route, paths as the spec writes them (``{id}``, no regex)."""
    found = set()
    for resource in app.router.resources():
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{filename}"
        for route in resource:
            if route.method != "HEAD":  # aiohttp adds one beside each GET
                found.add((route.method, path))
    return found


async def test_the_spec_lists_every_route_of_the_service_and_no_other(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with every_door(tmp_path, sqlite_url) as doors:
        served = app_routes(doors.service.app)
    documented = spec_routes()
    assert sorted(served - documented) == [], "routes the spec does not describe"
    assert sorted(documented - served) == [], "routes the spec describes that are not served"
    assert len(served) > 40  # every door was open: the comparison means something


def test_each_operation_has_its_own_id_and_documents_its_answers() -> None:
    operations = [
        operation
        for item in spec()["paths"].values()
        for method, operation in item.items()
        if method in METHODS
    ]
    ids = [operation["operationId"] for operation in operations]
    assert len(ids) == len(set(ids))
    assert all(operation["responses"] for operation in operations)
