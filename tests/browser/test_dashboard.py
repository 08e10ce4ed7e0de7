"""The dashboard (/ui) in a real browser: Debian's headless Chromium, driven
by playwright, against a real `callback-store serve` on a fresh SQLite store
made with the command itself. Run by scripts/test-ui.sh, which installs what
this needs and passes the command's binary (CALLBACK_STORE_BIN) and the
browser (CALLBACK_STORE_CHROMIUM); neither missing is a skip: it fails.
Screenshots go to target/ui-screenshots/ (CALLBACK_STORE_UI_SCREENSHOTS).
"""

import json
import os
import queue
import re
import signal
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("CALLBACK_STORE_UI_SCREENSHOTS", ROOT / "target" / "ui-screenshots"))
# Generous: the machine is shared with other builds.
expect.set_options(timeout=15_000)


def required_env(name):
    value = os.environ.get(name)
    if not value or not Path(value).exists():
        pytest.fail(f"{name} must name an existing file (scripts/test-ui.sh sets it), got {value!r}")
    return value


class Store:
    """The command on one store file."""

    def __init__(self, binary, db):
        self.binary, self.db = binary, db

    def run(self, *args, org=None):
        command = [self.binary, "--db", str(self.db)] + (["--org", org] if org else []) + list(args)
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{command}: {done.returncode} {done.stderr}"
        return json.loads(done.stdout)

    def create(self, org, at, to, **fields):
        args = ["create", "--to", to, "--at", at.isoformat()]
        for name, value in fields.items():
            args += ["--" + name.replace("_", "-"), value]
        return self.run(*args, org=org)


def minute(at):
    """`at` as the page shows it: HH:MM in the browser's zone (UTC here)."""
    return at.astimezone(timezone.utc).strftime("%H:%M")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The store, its callbacks and keys, and the server on a free port."""
    store = Store(required_env("CALLBACK_STORE_BIN"), tmp_path_factory.mktemp("store") / "callbacks.db")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # An agent whose only calling window is 12 hours away: dispatching its
    # callbacks now is refused by the API (409), an error the page must show.
    closed = (now.hour + 12) % 24
    store.run("policy", "set", "--agent", "agent_night", "--window", f"mon-sun {closed:02d}:00-{closed:02d}:59", org="org_a")
    a = {
        "due": store.create("org_a", now - timedelta(minutes=5), "+12015550100", reason="Overdue follow-up"),
        "soon": store.create("org_a", now + timedelta(hours=1), "+12015550101", reason="Quote questions", agent_id="agent_sales"),
        "cancel": store.create("org_a", now + timedelta(hours=3, minutes=30), "+12015550102", reason="Confirm appointment"),
        "move": store.create("org_a", now + timedelta(hours=7), "+12015550103", reason="Wants a later call"),
        "dispatch": store.create("org_a", now + timedelta(hours=20), "+12015550104", reason="Renewal"),
        "night": store.create("org_a", now + timedelta(hours=2), "+12015550106", agent_id="agent_night"),
        "later": store.create("org_a", now + timedelta(days=2), "+12015550105", reason="Beyond the window"),
    }
    b = [
        store.create("org_b", now + timedelta(hours=2), "+14155550199", reason="ORG B PRIVATE"),
        store.create("org_b", now - timedelta(minutes=1), "+14155550198", reason="ORG B DUE"),
    ]
    keys = {org: store.run("keys", "create", "--org", org, "--label", "browser test")["token"] for org in ["org_a", "org_b"]}
    keys["operator"] = store.run("keys", "create", "--operator", "--label", "browser test")["token"]

    server = subprocess.Popen(
        [store.binary, "--db", str(store.db), "serve", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    lines = queue.Queue()
    log = []

    def read():
        for line in server.stderr:
            log.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    base = None
    while base is None:
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            server.kill()
            pytest.fail(f"the server printed no address within 30 s: {''.join(log)}")
        found = re.search(r"listening on (http://\S+)", line)
        base = found and found.group(1)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield {"store": store, "base": base, "a": a, "b": b, "keys": keys, "now": now, "log": log}
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        pytest.fail(f"the server did not stop within 20 s of SIGTERM: {''.join(log)}")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=required_env("CALLBACK_STORE_CHROMIUM"), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    # UTC and one locale, so that the times the test expects are the page's.
    context = browser.new_context(viewport={"width": 1200, "height": 800}, timezone_id="UTC", locale="en-GB")
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    yield page
    context.close()


def open_with(page, world, org):
    page.goto(world["base"] + "/ui")
    page.fill("#key", world["keys"][org])
    page.click("#key-form button[type=submit]")
    expect(page.locator("#feed-state")).to_have_text("live")
    expect(page.locator("#org")).to_have_text(org)


def stat(page, name):
    return page.locator(f'[data-stat="{name}"] .value')


def card(page, callback):
    return page.locator(f'.card[data-id="{callback["id"]}"]')


def change(page, callback, action):
    return page.locator(f'#changes li[data-callback="{callback["id"]}"][data-action="{action}"]')


def test_a_refused_key_is_shown_and_not_kept(page, world):
    page.goto(world["base"] + "/ui")
    page.fill("#key", "cbs_not_a_key_of_this_store")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error-text")).to_contain_text("UNAUTHORIZED")
    expect(page.locator("#key-form")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.screenshot(path=SHOTS / "01-refused-key.png")
    # The refused key is the error the test caused; nothing else failed.
    assert all("401" in p for p in page.problems), page.problems


def test_an_operator_key_is_turned_away_with_the_reason(page, world):
    page.goto(world["base"] + "/ui")
    page.fill("#key", world["keys"]["operator"])
    page.click("#key-form button[type=submit]")
    expect(page.locator("#error-text")).to_contain_text("operator key")
    expect(page.locator("#key-form")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.problems == []


def test_counts_and_timeline_show_the_next_24_hours_of_the_keys_organization_only(page, world):
    a = world["a"]
    open_with(page, world, "org_a")
    expect(stat(page, "scheduled")).to_have_text(str(len(a)))
    expect(stat(page, "due")).to_have_text("1")
    for name in ["due", "soon", "cancel", "move", "dispatch", "night"]:
        expect(card(page, a[name])).to_contain_text(a[name]["to_number"])
    expect(card(page, a["soon"])).to_contain_text(minute(datetime.fromisoformat(a["soon"]["scheduled_at"])))
    expect(page.locator(".hour.overdue .card")).to_have_count(1)
    expect(card(page, a["later"])).to_have_count(0)  # two days away: outside the window
    text = page.locator("body").inner_text()
    for callback in world["b"]:
        assert callback["to_number"] not in text and callback["reason"] not in text
    # The key is kept for the tab only.
    assert page.evaluate("sessionStorage.getItem('callback-store.api-key')") == world["keys"]["org_a"]
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == "" and page.context.cookies() == []
    page.screenshot(path=SHOTS / "02-dashboard.png")
    assert page.problems == []


def test_cancel_in_the_page_arrives_as_a_live_change_and_updates_counts_and_history(page, world):
    a = world["a"]
    open_with(page, world, "org_a")
    before = int(stat(page, "cancelled").inner_text())
    card(page, a["cancel"]).click()
    expect(page.locator("#detail code")).to_have_text(a["cancel"]["id"])
    page.fill("#cancel-reason", "customer called back first")
    page.click("#cancel")
    arrived = change(page, a["cancel"], "cancel")
    expect(arrived).to_be_visible()
    expect(arrived).to_contain_text("customer called back first")
    expect(stat(page, "cancelled")).to_have_text(str(before + 1))
    expect(card(page, a["cancel"])).to_have_class(re.compile(r"\bcancelled\b"))
    expect(page.locator("#detail .history tbody tr")).to_have_count(2)
    expect(page.locator('#detail .history tr[data-action="cancel"]')).to_contain_text("customer called back first")
    page.screenshot(path=SHOTS / "03-cancelled.png")
    page.locator("#detail").screenshot(path=SHOTS / "04-history.png")
    assert page.problems == []


def test_reschedule_and_dispatch_buttons_act_and_their_changes_arrive(page, world):
    a, now = world["a"], world["now"]
    open_with(page, world, "org_a")
    card(page, a["move"]).click()
    expect(page.locator("#detail code")).to_have_text(a["move"]["id"])
    later = now + timedelta(hours=9)
    page.fill("#reschedule-at", later.strftime("%Y-%m-%dT%H:%M"))
    page.click("#reschedule")
    expect(change(page, a["move"], "reschedule")).to_be_visible()
    expect(card(page, a["move"])).to_contain_text(minute(later))

    dispatching = int(stat(page, "dispatching").inner_text())
    card(page, a["dispatch"]).click()
    expect(page.locator("#detail code")).to_have_text(a["dispatch"]["id"])
    page.click("#dispatch")
    expect(change(page, a["dispatch"], "dispatch")).to_be_visible()
    expect(stat(page, "dispatching")).to_have_text(str(dispatching + 1))
    expect(page.locator("#detail .badge").first).to_have_text("dispatching")
    assert page.problems == []


def test_an_error_of_the_api_is_shown_with_its_code_and_message(page, world):
    a = world["a"]
    open_with(page, world, "org_a")
    card(page, a["night"]).click()
    expect(page.locator("#detail code")).to_have_text(a["night"]["id"])
    page.click("#dispatch")
    expect(page.locator("#error-text")).to_contain_text("INVALID_TRANSITION")
    expect(page.locator("#error-text")).to_contain_text("outside its calling window")
    page.screenshot(path=SHOTS / "05-api-error.png")
    expect(page.locator("#detail .badge").first).to_have_text("scheduled")


def test_changes_made_elsewhere_arrive_live_and_another_organizations_never_do(page, world):
    store, now = world["store"], world["now"]
    open_with(page, world, "org_b")
    for callback in world["b"]:
        expect(card(page, callback)).to_be_visible()
    # org_a's change commits first, then org_b's: the feed is in commit
    # order, so once org_b's has arrived, org_a's would have too.
    secret = store.create("org_a", now + timedelta(hours=4), "+12015550177", reason="ORG A PRIVATE")
    store.run("cancel", secret["id"], org="org_a")
    mine = store.create("org_b", now + timedelta(hours=5), "+14155550177", reason="made by the command")
    expect(change(page, mine, "create")).to_be_visible()
    expect(card(page, mine)).to_be_visible()
    expect(stat(page, "scheduled")).to_have_text("3")
    text = page.locator("body").inner_text()
    assert secret["id"] not in page.content() and "ORG A PRIVATE" not in text and "+12015550177" not in text
    for callback in world["a"].values():
        assert callback["id"] not in page.content() and callback["to_number"] not in text
    page.screenshot(path=SHOTS / "06-org-b.png")
    assert page.problems == []
