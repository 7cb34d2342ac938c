"""Issue #12 in a real browser, from an EMPTY installation (no demo): tenant and owner by the CLI,
the owner's guided setup, a visitor's sign-up through the new widget on the simulator phone,
a broadcast to that topic, a changed consent text, a re-consent request, and the contact's
confirmation moving them to the new version (U5, C1, C2, C6, M3)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from konsent.cli import app as cli_app
from konsent.settings import get_settings
from konsent.store.tables import Consent
from tests.conftest import MASTER_KEY
from tests.e2e.conftest import LiveServer, _free_port

pytestmark = pytest.mark.browser

OWNER = "inhaberin@kaffee.example"
PASSWORD = "ein-langes-passwort-1"
TEXT_V1 = (
    "Ja, ich möchte von der Kaffee GmbH Nachrichten zu den gewählten Themen erhalten. Widerruf mit STOP."
)
TEXT_V2 = "Ja, ich möchte von der Kaffee GmbH und ihren Röstereien Nachrichten erhalten. Widerruf mit STOP."


@pytest.fixture
def empty_server(ctx, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """konsent with nothing in it; the tenant and its owner are made with the CLI, as an operator would."""
    import uvicorn

    from konsent.delivery.worker import run_in_thread
    from konsent.web.app import create_app

    port = _free_port()
    ctx.settings.base_url = f"http://127.0.0.1:{port}"
    ctx.settings.simulator_enabled = True  # the server below runs on this ctx, not on the environment
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    for key, value in {
        "KONSENT_DATABASE_URL": ctx.settings.database_url,
        "KONSENT_DATA_DIR": str(ctx.settings.data_dir),
        "KONSENT_MASTER_KEY": MASTER_KEY,
        "KONSENT_BASE_URL": ctx.settings.base_url,
        "KONSENT_SIMULATOR_ENABLED": "true",  # where the simulator is opt-in
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    cli = CliRunner()
    made = cli.invoke(cli_app, ["tenant", "create", "kaffee", "Kaffee GmbH"])
    assert made.exit_code == 0 and "Next steps" in made.output, made.output
    owner = cli.invoke(
        cli_app, ["user", "create", "kaffee", OWNER, "--role", "owner", "--password", PASSWORD]
    )
    assert owner.exit_code == 0, owner.output
    get_settings.cache_clear()
    root.handlers[:] = handlers
    root.setLevel(level)
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    worker_thread, stop_worker = run_in_thread(ctx)
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "live server did not start"
    yield LiveServer(f"http://127.0.0.1:{port}", OWNER, PASSWORD)
    stop_worker.set()
    worker_thread.join(timeout=30)  # done before the test's database goes away
    server.should_exit = True
    thread.join(timeout=10)


def _versions(ctx) -> list[tuple[str, str, int]]:
    with ctx.db.read() as s:
        return [(c.purpose, c.status, c.text_version) for c in s.scalars(select(Consent))]


def test_new_company_sets_up_gets_a_subscriber_broadcasts_and_asks_for_re_consent(
    ctx, empty_server, browser_page
):
    page, url = browser_page, empty_server.url

    # 1. The owner signs in; the dashboard shows the setup checklist and leads into the sequence.
    page.goto(f"{url}/admin/login")
    page.fill("#tenant", "kaffee")
    page.fill("#email", OWNER)
    page.fill("#password", PASSWORD)
    page.locator("form:has(#password) button[type=submit]").click()
    page.get_by_test_id("setup-checklist").wait_for()
    page.get_by_test_id("setup-start").click()
    page.get_by_test_id("setup-next").click()

    # 2. Step 1: company and privacy policy.
    page.wait_for_url(re.compile(r".*/admin/settings/company\?setup=1"))
    page.fill("#legal_name", "Kaffee GmbH")
    page.fill("#address", "Röstweg 1, 20095 Hamburg")
    page.fill("#representative", "Erika Bohne")
    page.fill("#dpo_contact", "datenschutz@kaffee.example")
    page.fill("#supervisory_authority", "HmbBfDI")
    page.fill("#privacy_url", "https://kaffee.example/datenschutz")
    page.fill("#privacy_version", "2026-12")
    page.select_option("#time_zone", "Europe/Berlin")
    page.get_by_test_id("save").click()

    # 3. Step 2: a topic.
    page.wait_for_url(re.compile(r".*/admin/topics\?setup=1"))
    page.fill("#slug", "bohnen")
    page.fill("#name_de", "Bohnen der Woche")
    page.fill("#name_en", "Beans of the week")
    page.get_by_test_id("add-topic").click()
    page.get_by_test_id("topic-bohnen").wait_for()
    page.get_by_test_id("continue").click()

    # 4. Step 3: the German consent text.
    page.wait_for_url(re.compile(r".*/admin/consent-texts\?setup=1"))
    page.fill("#text-de", TEXT_V1)
    page.get_by_test_id("publish-de").click()

    # 5. Step 4: the first channel, the simulator.
    page.wait_for_url(re.compile(r".*/admin/channels.*"))
    sim = page.locator("details.card:has(input[name=kind][value=simulator])")
    sim.locator("summary").click()
    sim.locator("input[name=name]").fill("Testhandy")
    sim.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/admin/channels\?created=\d+.*"))

    # 6. Step 5: the widget snippet and a page to try it.
    page.get_by_test_id("setup-to-widget").click()
    page.wait_for_url(re.compile(r".*/admin/setup/widget\?setup=1"))
    assert 'data-konsent-tenant="kaffee"' in page.get_by_test_id("snippet").inner_text()
    preview = page.get_by_test_id("preview").get_attribute("href")
    assert preview and preview.endswith("/try/kaffee")

    # 7. A visitor subscribes through the new tenant's widget and confirms on the simulator phone.
    page.goto(preview)
    page.get_by_test_id("konsent-widget").wait_for()
    topic = page.get_by_test_id("topic-bohnen")
    assert not topic.is_checked()
    topic.check()
    page.get_by_test_id("konsent-submit").click()
    link = page.get_by_test_id("konsent-deeplink")
    link.wait_for()
    href = link.get_attribute("href")
    assert href and "/simulator" in href
    page.goto(href)
    page.locator("#sim-send").click()
    page.locator("#sim-messages .sim-msg.in", has_text="Bohnen der Woche").wait_for()
    assert _versions(ctx) == [("newsletter:bohnen", "active", 1)]
    phone = href

    # The checklist is complete: the widget step says so and the dashboard no longer shows it.
    page.goto(f"{url}/admin/setup/widget")
    page.get_by_test_id("test-done").wait_for()
    page.goto(f"{url}/admin")
    assert page.get_by_test_id("setup-checklist").count() == 0

    # 8. A broadcast to that topic reaches the phone.
    page.goto(f"{url}/admin/broadcasts")
    page.fill("form[action='/admin/broadcasts'] input[name=name]", "Neue Ernte")
    page.select_option("form[action='/admin/broadcasts'] select[name=topic]", "bohnen")
    page.fill("form[action='/admin/broadcasts'] textarea[name=text]", "Die neue Ernte aus Kolumbien ist da!")
    page.locator("form[action='/admin/broadcasts'] button[type=submit]").last.click()
    page.wait_for_url(re.compile(r".*/admin/broadcasts/\d+.*"))
    page.locator("form[action$='/send']").first.locator("button[type=submit]").click()
    page.goto(phone.split("&text=")[0])
    page.locator("#sim-messages .sim-msg.in", has_text="Die neue Ernte").wait_for(timeout=30_000)

    # 9. The consent text changes: a new version; the old one stays readable; re-consent is offered.
    page.goto(f"{url}/admin/consent-texts")
    page.fill("#text-de", TEXT_V2)
    page.get_by_test_id("publish-de").click()
    page.goto(f"{url}/admin/consent-texts/de/1")
    assert page.get_by_test_id("consent-text").inner_text().strip() == TEXT_V1
    page.goto(f"{url}/admin/consent-texts")
    page.get_by_test_id("reconsent-de").click()
    page.get_by_test_id("reconsent-progress").wait_for()
    assert page.get_by_test_id("rc-sent").inner_text().strip() == "1"
    assert page.get_by_test_id("rc-confirmed").inner_text().strip() == "0"
    progress = page.url
    assert _versions(ctx) == [("newsletter:bohnen", "active", 1)], "nothing changes before the confirmation"

    # 10. The contact gets the request with a code and sends it back: moved to version 2.
    page.goto(phone.split("&text=")[0])
    request = page.locator("#sim-messages .sim-msg.in", has_text="Röstereien")
    request.wait_for(timeout=30_000)
    code = re.search(r"KS[0-9A-Z]{10}", request.inner_text())
    assert code, request.inner_text()
    page.fill("#sim-text", code.group(0))
    page.locator("#sim-send").click()
    page.locator("#sim-messages .sim-msg.in", has_text="beruht jetzt auf").wait_for(timeout=30_000)
    assert _versions(ctx) == [("newsletter:bohnen", "active", 2)]
    page.goto(progress)
    assert page.get_by_test_id("rc-confirmed").inner_text().strip() == "1"
