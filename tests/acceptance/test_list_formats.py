"""Plain list and summary rows, which the database builds as JSON text (issue 9, item 3),
answer in every format as rows built in Python do: JSON lines and JSON carry the text as
it is, CSV, XML and text read it back into rows; finished jobs with `scrapystats` show
their outcome counters (issue 10, item 5). On both backends, through a real server."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests import helpers

P = 61
STATS = {"item_scraped_count": 12, "response_received_count": 30, "log_count/INFO": 40,
         "log_count/WARNING": 3, "log_count/ERROR": 2}
COUNTERS = {"items": 12, "pages": 30, "errors": 2, "logs": 45}


def _seed(http: httpx.Client) -> None:
    lines = [{"spider": "books", "state": "finished", "scrapystats": STATS, "tags": ["a", "b"]},
             {"spider": 'q"uote\n', "state": "finished"},
             {"spider": "books", "tags": ["a"], "scrapystats": STATS}]
    body = b"\n".join(orjson.dumps(line) for line in lines)
    assert http.post(f"/jobq/{P}/push", content=body).status_code == 200


def _get(http: httpx.Client, path: str, **params: Any) -> httpx.Response:
    answer = http.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return answer


def test_plain_rows_answer_alike_in_every_format(server: helpers.Server) -> None:
    with server.client() as http:
        _seed(http)
        url = f"/jobq/{P}/list"
        states = {"state": ["pending", "finished"]}
        jl = _get(http, url, **states)
        assert jl.headers["content-type"].startswith("application/x-jsonlines")
        lines = jl.content.splitlines()
        rows = [orjson.loads(line) for line in lines]
        assert [r["key"] for r in rows] == [f"{P}/1/2", f"{P}/2/1", f"{P}/1/1"]
        assert {k: rows[2][k] for k in COUNTERS} == COUNTERS, "finished, with scrapystats"
        assert list(rows[2])[-4:] == list(COUNTERS) and rows[2]["tags"] == ["a", "b"]
        assert not set(COUNTERS) & set(rows[0]), "a pending row carries none"
        assert rows[1]["spider"] == 'q"uote\n' and "items" not in rows[1]

        # elapsed grows between requests: compare without it
        def same(got: list[dict[str, Any]]) -> None:
            strip = [{k: v for k, v in r.items() if k != "elapsed"} for r in got]
            assert strip == [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]

        as_json = _get(http, url, format="json", **states)
        assert as_json.content.startswith(b"[{") and b"\n" not in as_json.content
        same(as_json.json())
        text = _get(http, url, format="text", **states).content.splitlines()
        same([orjson.loads(line) for line in text])
        csv = _get(http, url, format="csv", fields="key,spider,items,tags", include_headers=1,
                   **states).text
        assert csv.splitlines()[0] == "key,spider,items,tags"
        assert f'{P}/1/1,books,12,"[""a"",""b""]"' in csv.splitlines()
        xml = _get(http, url, format="xml", **states).text
        assert xml.count("<item>") == 3
        assert ('<value name="tags"><value>a</value><value>b</value></value>'
                '<value name="items">12</value>') in xml
        # an empty list, in JSON lines and JSON
        assert _get(http, url, state="running").content == b""
        assert _get(http, url, state="running", format="json").content == b"[]"


def test_summary_rows_answer_alike_in_every_format(server: helpers.Server) -> None:
    with server.client() as http:
        _seed(http)
        url = f"/jobq/{P}/summary"
        queues = [orjson.loads(line) for line in _get(http, url).content.splitlines()]
        assert [(q["name"], q["count"], len(q["summary"])) for q in queues] == [
            ("pending", 1, 1), ("running", 0, 0), ("finished", 2, 2)]
        newest_finished = queues[2]["summary"][1]
        assert {k: newest_finished[k] for k in COUNTERS} == COUNTERS
        assert _get(http, url, format="json").json()[2]["summary"][1]["logs"] == 45
        xml = _get(http, url, format="xml").text
        assert '<value name="summary"><value><value name="key">' in xml
        assert '<value name="logs">45</value>' in xml
        one = _get(http, f"{url}/finished", format="csv", fields="name,count").text
        assert one.splitlines() == ["finished,2"]
