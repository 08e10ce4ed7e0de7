"""Reads the reports of a schemathesis run (scripts/test-http.sh) and checks
that the run did what the script promises, beyond schemathesis' own exit
status: every phase ran (examples, coverage, fuzzing, stateful), negative
(schema-violating) requests were sent and refused, stateful scenarios
followed the links of openapi.yaml, the conformance checks ran on the
responses and none failed, and no response was a 5xx. Prints the figures.

Usage: python3 schemathesis_summary.py REPORT_DIR
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

PHASES = ("examples", "coverage", "fuzzing", "stateful")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "ignored_auth",
)


def main(folder: Path) -> int:
    (summary_path,) = folder.glob("*.json")
    (events_path,) = folder.glob("*.ndjson")
    summary = json.loads(summary_path.read_text())
    cases = collections.Counter()  # (phase, mode)
    linked = 0  # stateful steps that used a link's values
    statuses = collections.Counter()
    checks = collections.Counter()  # (name, status)
    for line in events_path.read_text().splitlines():
        event = json.loads(line).get("ScenarioFinished")
        if not event:
            continue
        recorder = event["recorder"]
        for case in recorder.get("cases", {}).values():
            mode = case["value"]["meta"]["generation"]["mode"]
            cases[(event["phase"], mode)] += 1
            linked += bool(event["phase"] == "stateful" and case.get("is_transition_applied"))
        for interaction in recorder.get("interactions", {}).values():
            response = interaction.get("response")
            statuses[response["status_code"] if response else "no answer"] += 1
        for results in recorder.get("checks", {}).values():
            for check in results:
                checks[(check["name"], check["status"])] += 1

    problems = []
    for phase in PHASES:
        status = summary["phases"].get(phase, {}).get("status")
        if status != "success":
            problems.append(f"phase {phase}: {status}")
    negative = sum(n for (_, mode), n in cases.items() if mode == "negative")
    if negative == 0:
        problems.append("no negative test case was generated")
    if linked == 0:
        problems.append("no stateful step followed a link")
    server_errors = sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500)
    if server_errors or statuses.get("no answer"):
        problems.append(f"{server_errors} 5xx answers, {statuses.get('no answer', 0)} requests unanswered")
    for name in CHECKS:
        if checks[(name, "success")] == 0:
            problems.append(f"check {name} never ran")
    failed = {name: n for (name, status), n in checks.items() if status not in ("success", "skip")}
    if failed or summary["test_cases"]["with_failures"] or summary["exit_code"] != 0:
        problems.append(f"failed checks: {failed}, failures: {summary['failures']}")

    by_phase = {p: {m: cases[(p, m)] for m in ("positive", "negative")} for p in PHASES}
    print(f"schemathesis figures: {summary['test_cases']['generated']} test cases in {summary['running_time']:.0f} s")
    print(f"  cases by phase (positive/negative): {json.dumps(by_phase)}")
    print(f"  stateful steps that followed a link: {linked}")
    print(f"  answers by status: {dict(sorted(statuses.items(), key=str))}")
    ran = {name: checks[(name, 'success')] for name in sorted({n for n, _ in checks})}
    print(f"  checks passed: {json.dumps(ran)}")
    for p in problems:
        print(f"schemathesis summary: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
