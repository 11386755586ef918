"""Request bodies: an empty body is called empty, on every JSON endpoint."""

from __future__ import annotations

import httpx
import pytest

from sematic_metrics.errors import InvalidInputError
from sematic_metrics.service import points_body, runs_body


@pytest.mark.parametrize("raw", [b"", b" \r\n\t"], ids=["empty", "blank"])
def test_decoders_call_an_empty_body_empty(raw: bytes) -> None:
    for decode in (points_body.decode, runs_body.decode):
        with pytest.raises(InvalidInputError, match=r"^body: empty; send a JSON object"):
            decode(raw)


@pytest.mark.parametrize(
    "path", ["/api/v1/metrics", "/api/v1/runs", "/api/v1/sql"], ids=["metrics", "runs", "sql"]
)
def test_empty_body_is_a_400_saying_so(client: httpx.Client, path: str) -> None:
    response = client.post(path, content=b"", headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("body: empty")
