"""/metrics of a real `callback-store serve`, read with the Prometheus
project's own Python parsers, against the store's own counts after a
scripted workload.

The workload runs over HTTP (creates, cancels, dispatches through a fake
webhook dialer: placed, failed, not reached with a follow-up) and through
the command (dispatch then complete or fail, a dispatch left open), and
leaves callbacks due but unclaimed (the server's dispatcher polls once an
hour). Then every per-status gauge, every due backlog and oldest due age
must equal `callback-store stats --all`; the process's counters must equal
what the workload did; an organization's key must see its own series only.

Run by scripts/test-metrics.sh (which installs prometheus_client into a
venv and builds the command); by hand:

    CALLBACK_STORE_BIN=target/debug/callback-store python3 tests/metrics/test_metrics.py
"""

import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from datetime import datetime, timezone

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

BIN = os.environ.get("CALLBACK_STORE_BIN", "target/debug/callback-store")
STATUSES = ["scheduled", "dispatching", "dispatched", "cancelled", "failed"]
PAST = "2020-01-01T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"


class Dialer(http.server.BaseHTTPRequestHandler):
    """The webhook: answers by the callback's metadata.mode."""

    def do_POST(self):
        callback = json.loads(self.rfile.read(int(self.headers["content-length"])))
        mode = callback["metadata"].get("mode", "ok")
        status, body = {
            "ok": (200, {"created_session_id": "sess_" + callback["id"]}),
            "no_answer": (200, {"outcome": "no_answer"}),
        }.get(mode, (503, {"error": "dialer is down"}))
        text = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


def command(db, *args):
    """Runs the command on `db`; its JSON output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLBACK_STORE_")}
    done = subprocess.run(
        [BIN, "--db", db, *args], capture_output=True, text=True, env=env, timeout=60
    )
    if done.returncode != 0:
        raise AssertionError(f"{args}: exit {done.returncode}: {done.stderr}")
    return json.loads(done.stdout)


def request(base, method, path, token=None, body=None):
    """(status, headers, text) of one request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


def samples(text):
    """{(name, sorted labels): value} of an exposition, read by the
    Prometheus text parser, after the strict OpenMetrics parser accepted it."""
    strict = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in openmetrics_families(text)
        for s in family.samples
    }
    lax = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert strict == lax, "the two parsers read different samples"
    return lax


def labels(**pairs):
    return tuple(sorted(pairs.items()))


class MetricsMatchTheStore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.db = os.path.join(cls.dir.name, "metrics.db")
        command(cls.db, "init")
        cls.operator = command(cls.db, "keys", "create", "--operator")["token"]
        cls.tokens = {
            org: command(cls.db, "--org", org, "keys", "create")["token"]
            for org in ("org_a", "org_b")
        }
        cls.dialer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Dialer)
        threading.Thread(target=cls.dialer.serve_forever, daemon=True).start()
        webhook = "http://127.0.0.1:%d/place-call" % cls.dialer.server_address[1]
        cls.server = subprocess.Popen(
            [BIN, "--db", cls.db, "serve", "--listen", "127.0.0.1:0",
             "--dispatch-webhook", webhook, "--dispatch-interval", "1h"],
            stderr=subprocess.PIPE, text=True,
        )
        cls.base = None
        deadline = time.monotonic() + 30
        while cls.base is None and time.monotonic() < deadline:
            line = cls.server.stderr.readline()
            if "listening on " in line:
                cls.base = line.split("listening on ", 1)[1].strip()
        if cls.base is None:
            cls.tearDownClass()
            raise AssertionError("the server did not start")
        threading.Thread(target=cls.server.stderr.read, daemon=True).start()
        cls.workload()

    @classmethod
    def tearDownClass(cls):
        cls.server.send_signal(signal.SIGTERM)
        cls.server.wait(timeout=30)
        cls.dialer.shutdown()
        cls.dir.cleanup()

    @classmethod
    def create(cls, org, scheduled_at, **extra):
        body = {"to_number": "+12015551234", "scheduled_at": scheduled_at, **extra}
        status, _, text = request(cls.base, "POST", "/v1/callbacks", cls.tokens[org], body)
        assert status == 201, text
        return json.loads(text)["id"]

    @classmethod
    def post(cls, org, path, body=None):
        status, _, text = request(cls.base, "POST", path, cls.tokens[org], body)
        assert status == 200, f"{path}: {text}"
        return json.loads(text)

    @classmethod
    def workload(cls):
        # org_a: due and future ones, a cancel, calls placed, failed, by hand.
        for _ in range(3):
            cls.create("org_a", PAST)
        cls.create("org_a", FUTURE)
        cls.post("org_a", f"/v1/callbacks/{cls.create('org_a', FUTURE)}/cancel")
        placed = cls.create("org_a", PAST, metadata={"mode": "ok"})
        cls.post("org_a", f"/v1/callbacks/{placed}/dispatch")
        down = cls.create("org_a", PAST, metadata={"mode": "down"})
        cls.post("org_a", f"/v1/callbacks/{down}/dispatch")
        for finish in ("complete", "fail", None):
            id = cls.create("org_a", PAST)
            claim = command(cls.db, "--org", "org_a", "dispatch", id)
            if finish == "complete":
                command(cls.db, "--org", "org_a", "complete", id,
                        "--session", "sess_x", "--claim", claim["token"])
            elif finish == "fail":
                command(cls.db, "--org", "org_a", "fail", id,
                        "--cause", "line dead", "--claim", claim["token"])
        # org_b: a call not answered, retried by its policy (a follow-up).
        status, _, text = request(
            cls.base, "PUT", "/v1/calling-policy", cls.tokens["org_b"],
            {"max_attempts": 2, "retry_intervals": ["1h"], "retry_on": ["no_answer"]},
        )
        assert status == 200, text
        unanswered = cls.create("org_b", PAST, metadata={"mode": "no_answer"})
        cls.post("org_b", f"/v1/callbacks/{unanswered}/dispatch")
        cls.create("org_b", PAST)
        # The server's counters of these requests are read by the scrape.

    def scrape(self, token):
        status, headers, text = request(self.base, "GET", "/metrics", token)
        self.assertEqual(status, 200, text)
        self.assertTrue(headers["content-type"].startswith("application/openmetrics-text"))
        return samples(text)

    def test_every_store_gauge_matches_the_commands_stats(self):
        seen = self.scrape(self.operator)
        before = datetime.now(timezone.utc)
        stats = command(self.db, "stats", "--all")["organizations"]
        self.assertEqual([s["organization_id"] for s in stats], ["org_a", "org_b"])
        for org in stats:
            org_id = org["organization_id"]
            for status in STATUSES:
                gauge = seen[("callback_store_callbacks",
                              labels(organization_id=org_id, status=status))]
                self.assertEqual(gauge, org["counts"][status], f"{org_id} {status}")
            due = seen[("callback_store_due_callbacks", labels(organization_id=org_id))]
            self.assertEqual(due, org["due"], org_id)
            age = seen[("callback_store_oldest_due_age_seconds",
                        labels(organization_id=org_id))]
            oldest = datetime.fromisoformat(org["oldest_due_at"].replace("Z", "+00:00"))
            # The scrape came a moment before the command's stats.
            self.assertAlmostEqual(age, (before - oldest).total_seconds(), delta=60)
        a = {s: stats[0]["counts"][s] for s in STATUSES}
        self.assertEqual(a, {"scheduled": 4, "dispatching": 1, "dispatched": 2,
                             "cancelled": 1, "failed": 2})
        self.assertEqual(stats[0]["due"], 3)
        b = {s: stats[1]["counts"][s] for s in STATUSES}
        self.assertEqual(b, {"scheduled": 2, "dispatching": 0, "dispatched": 0,
                             "cancelled": 0, "failed": 1})
        self.assertEqual(stats[1]["due"], 1, "the follow-up is an hour away")

    def test_the_api_stats_are_the_commands(self):
        status, _, text = request(self.base, "GET", "/v1/stats", self.operator)
        self.assertEqual(status, 200, text)
        self.assertEqual(json.loads(text), command(self.db, "stats", "--all"))
        status, _, text = request(self.base, "GET", "/v1/stats", self.tokens["org_b"])
        self.assertEqual(json.loads(text), command(self.db, "--org", "org_b", "stats"))

    def test_the_process_counters_match_what_the_workload_did(self):
        seen = self.scrape(self.operator)
        # Three calls went through the server's webhook; the command's
        # dispatches are another process's claims.
        self.assertEqual(seen[("callback_store_claims_total", ())], 3)
        for outcome in ("dispatched", "failed", "no_answer"):
            self.assertEqual(
                seen[("callback_store_dispatch_outcomes_total", labels(outcome=outcome))],
                1, outcome)
        self.assertEqual(seen[("callback_store_webhook_duration_seconds_count", ())], 3)
        self.assertEqual(seen[("callback_store_follow_ups_created_total", ())], 1)
        self.assertIn(("callback_store_busy_retries_total", ()), seen)
        dispatches = seen[("callback_store_http_requests_total", labels(
            method="POST", route="/v1/callbacks/{id}/dispatch", status="200"))]
        self.assertEqual(dispatches, 3)
        for (name, pairs) in seen:
            for key, value in pairs:
                self.assertNotIn("cb_", value, f"{name}: a raw path became a label")

    def test_an_organizations_key_sees_its_own_series_only_and_no_token_none(self):
        seen = self.scrape(self.tokens["org_b"])
        self.assertTrue(seen)
        for name, pairs in seen:
            self.assertIn(("organization_id", "org_b"), pairs, name)
        status, _, text = request(self.base, "GET", "/metrics")
        self.assertEqual((status, json.loads(text)["code"]), (401, "UNAUTHORIZED"))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
