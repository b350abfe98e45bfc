"""test_concurrency.py - 200 clients at once, each on its own connection, all answered."""
import threading

import requests

import helpers

CLIENTS = 200


def test_200_concurrent_requests_succeed(daemon):
    before = daemon.metrics()
    barrier = threading.Barrier(CLIENTS, timeout=30)
    results = [None] * CLIENTS

    def client(index):
        path, token = (("/api/v1/whoami", daemon.token) if index % 2 else ("/healthz", None))
        barrier.wait()
        try:
            response = daemon.get(path, token=token, timeout=20,
                                  headers={"Connection": "close"})
            results[index] = (response.status_code, response.json())
        except (requests.RequestException, ValueError) as error:
            results[index] = ("error", repr(error))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    failures = [(i, r) for i, r in enumerate(results) if r is None or r[0] != 200]
    assert not failures, f"{len(failures)} of {CLIENTS} failed, e.g. {failures[:5]}"
    for index, (_, body) in enumerate(results):
        expected = {"subject": "alice"} if index % 2 else {"status": "ok"}
        assert expected.items() <= body.items(), body

    after = daemon.metrics()

    def delta(route):
        return (helpers.metric_value(after, "sparkplane_http_requests_total", route=route,
                                     status="200")
                - helpers.metric_value(before, "sparkplane_http_requests_total", route=route,
                                       status="200"))
    assert delta("/healthz") == CLIENTS // 2
    assert delta("/api/v1/whoami") == CLIENTS // 2
