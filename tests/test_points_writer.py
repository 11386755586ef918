"""The group-commit writer's answers: a 409 names the field as the client sent it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests._support import T0, compact, point, run_labels


def body(form: str, names: list[str], types: list[int]) -> dict[str, Any]:
    times = [T0 + i for i in range(len(names))]
    if form == "sematic":
        points = [
            point(n, 1.0, t, c, **run_labels("r1")) for n, t, c in zip(names, times, types, strict=True)
        ]
        return {"metric_points": points}
    return compact(run_labels("r1"), names, [1.0] * len(names), times, types)


FIELD = {"sematic": "metric_points[1].metric_type", "compact": "points.metric_type[1]"}


@pytest.mark.parametrize("form", ["sematic", "compact"], ids=["sematic", "compact"])
def test_conflict_with_the_stored_type_names_the_sent_field(client: httpx.Client, form: str) -> None:
    assert client.post("/api/v1/metrics", json=body(form, ["steps"], [1])).status_code == 200
    response = client.post("/api/v1/metrics", json=body(form, ["other", "steps"], [1, 0]))
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error.startswith(f"{FIELD[form]}: metric 'steps' is stored as GAUGE"), error


@pytest.mark.parametrize("form", ["sematic", "compact"], ids=["sematic", "compact"])
def test_conflict_inside_a_batch_names_the_sent_field(client: httpx.Client, form: str) -> None:
    response = client.post("/api/v1/metrics", json=body(form, ["steps", "steps"], [0, 1]))
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    # Either point may be the one named; the field is spelled as the client sent it.
    sent = {FIELD[form], FIELD[form].replace("[1]", "[0]")}
    assert error.split(": ")[0] in sent, error
    assert "appears in this batch as both COUNT and GAUGE" in error
