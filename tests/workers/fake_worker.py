"""A worker written against the HTTP API alone, run as a real process by the tests:
register, claim with `startjob?wait` and its worker id, heartbeat, stop what the server
says to stop. Jobs "run" until told to stop (the tests kill it with `kill -9` or cancel).

    python -m tests.workers.fake_worker URL[,URL...] API_KEY PROJECT SLOTS NAME

Prints one line a claimed job (`claimed KEY`) and a stopped one (`stopped KEY REASON`).
"""

from __future__ import annotations

import random
import sys
import threading
import time

import httpx


def main() -> None:
    urls, key, project, slots, name = (sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]),
                                       int(sys.argv[4]), sys.argv[5])
    clients = [httpx.Client(base_url=u, auth=(key, ""), timeout=30) for u in urls]
    answer = random.choice(clients).post(
        "/workers", json={"name": name, "host": "test", "slots": slots, "projects": [project]})
    answer.raise_for_status()
    worker_id = answer.json()["id"]
    interval = answer.json()["heartbeat_interval"]
    running: set[str] = set()
    lock = threading.Lock()

    def heartbeat() -> None:
        while True:
            with lock:
                keys = sorted(running)
            try:
                reply = random.choice(clients).post(
                    f"/workers/{worker_id}/heartbeat", json={"jobs": keys})
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            if reply.status_code == 200:
                for job in reply.json()["jobs"]:
                    if job["action"] == "stop":
                        with lock:
                            running.discard(job["key"])
                        if job["finish"]:
                            random.choice(clients).post(f"/jobq/{project}/update", json={
                                "key": job["key"], "state": "finished",
                                "close_reason": job["reason"]})
                        print("stopped", job["key"], job["reason"], flush=True)
            time.sleep(interval)

    threading.Thread(target=heartbeat, daemon=True).start()
    while True:
        with lock:
            free = len(running) < slots
        if not free:
            time.sleep(0.05)
            continue
        try:
            reply = random.choice(clients).post(
                f"/jobq/{project}/startjob", params={"wait": 1}, json={"worker_id": worker_id})
        except httpx.HTTPError:
            time.sleep(0.05)
            continue
        if reply.status_code == 200:
            job_key = reply.json()["key"]
            with lock:
                running.add(job_key)
            print("claimed", job_key, flush=True)
        elif reply.status_code != 204:
            time.sleep(0.2)


if __name__ == "__main__":
    main()
