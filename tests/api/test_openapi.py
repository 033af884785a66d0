"""The OpenAPI document, and schemathesis against the live server: requests generated
from the document — valid ones and invalid ones — never get a 5xx, and every answer
matches the document (status, content type, body schema)."""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api.mount import _checked, collect
from gateway.api.operators import OperatorList, routes
from gateway.api.registry import Routes
from tests.api.conftest import CRM_TOKEN, StartApi, customer_writes
from tests.conftest import World

EXAMPLES = 10
"""Generated requests per operation and mode (positive, negative): the whole run stays
well under 30 s."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_a_route_declared_twice_is_refused() -> None:
    twin = Routes("twin")
    twin.route("GET", "/operators", scope="read", response=OperatorList)(routes.routes[0].handler)
    with pytest.raises(RuntimeError, match="declared twice"):
        _checked([routes, twin])


# schemathesis draws from `random` inside its strategies, which hypothesis deprecates.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_schemathesis_finds_no_server_error(world: World, start_api: StartApi) -> None:
    api = await start_api()
    await customer_writes(world, api, "Ivan", "hello")  # contact 1, with a process
    async with api.http.get(f"{api.base}/openapi.json") as response:
        doc = await response.json()
    _describes_every_route(doc)
    schema = schemathesis.openapi.from_dict(doc)
    operations = [op.ok() for op in schema.get_all_operations() if isinstance(op, Ok)]
    assert len(operations) == len(doc_operations(doc))
    headers = {"Authorization": f"Bearer {CRM_TOKEN}"}
    seen: dict[int, int] = {}

    def run() -> None:
        session = requests.Session()
        for operation in operations:
            # Random contact ids are mostly unknown (404): a third run acts on Ivan's.
            ivan = {"contact_id": "1"} if "{contact_id}" in operation.path else None
            runs = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
            runs += [(GenerationMode.POSITIVE, ivan)] if ivan else []
            for mode, fixed in runs:

                @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
                @hypothesis.settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )
                def check(case: Any) -> None:
                    response = case.call(
                        base_url=api.running.url, session=session, headers=headers, timeout=10
                    )
                    seen[response.status_code] = seen.get(response.status_code, 0) + 1
                    case.validate_response(response, checks=CHECKS, headers=headers)

                check()
        session.close()

    await asyncio.to_thread(run)  # requests is blocking; the server runs on this loop
    assert not [s for s in seen if s >= 500], seen
    assert seen.get(200) and seen.get(400) and seen.get(404), seen


def doc_operations(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m, p) for p, ops in doc["paths"].items() for m in ops]


def _describes_every_route(doc: dict[str, Any]) -> None:
    declared = {(r.method.lower(), "/api/v1" + r.path) for g in collect() for r in g.routes}
    assert set(doc_operations(doc)) == declared
    send = doc["paths"]["/api/v1/contacts/{contact_id}/messages"]["post"]
    assert send["x-scope"] == "write"
    assert send["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendIn"
    }
    assert set(send["responses"]) == {"202", "400", "401", "403", "404", "409", "413", "415", "503"}
    assert any(p["name"] == "Idempotency-Key" for p in send["parameters"])
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    query = doc["paths"]["/api/v1/tasks"]["get"]["parameters"]
    status = next(p for p in query if p["name"] == "status")
    assert status["schema"]["enum"] == ["new", "in_work", "returned", "closed", "open"]
    assert status["description"].startswith("A task status")
