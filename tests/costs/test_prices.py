"""The operator's price table: CSV import, all or nothing, versioned and dated (CH6, #16 item 4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from konsent.domain import costs as rules
from konsent.flows.context import Konsent
from konsent.flows.outbound import costs
from konsent.settings import get_settings
from konsent.store.tables import PriceList
from tests.conftest import MASTER_KEY
from tests.costs.support import PRICES, import_prices
from tests.web.test_admin_auth import as_role


def test_a_price_csv_is_read_by_country_category_and_price() -> None:
    rows, problems = rules.parse_price_csv(
        "country;category;price\nDE;marketing;0,1131\n+43;utility;0.05\n*;marketing;0.2\n"
    )
    assert problems == []
    assert rows == [
        rules.PriceRow("DE", "marketing", 113_100),
        rules.PriceRow("AT", "utility", 50_000),
        rules.PriceRow("*", "marketing", 200_000),
    ]


def test_a_broken_price_csv_names_every_broken_line_and_nothing_is_imported(ctx: Konsent, demo) -> None:
    text = (
        "country,category,price\nDE,marketing,0.10\nXX1,marketing,0.1\nDE,promo,0.1\nAT,utility,cheap\n"
        "DE,marketing,0.2\n"
    )
    with ctx.db.write() as s, pytest.raises(costs.PriceTableInvalid) as err:
        costs.import_prices(s, demo.tenant_id, text, datetime(2026, 1, 1, tzinfo=UTC))
    assert [p.line for p in err.value.problems] == [3, 4, 5, 6]
    with ctx.db.read() as s:
        assert s.query(PriceList).count() == 0


def test_versions_apply_from_their_date_and_the_old_one_stays(ctx: Konsent, demo) -> None:
    import_prices(ctx, demo.tenant_id, PRICES, "2026-01-01")
    import_prices(ctx, demo.tenant_id, "country,category,price\nDE,marketing,0.15\n", "2026-10-01")
    with ctx.db.read() as s:
        old, _, _ = costs.prices_in_force(s, demo.tenant_id, datetime(2026, 9, 30, tzinfo=UTC))
        new, _, _ = costs.prices_in_force(s, demo.tenant_id, datetime(2026, 10, 1, tzinfo=UTC))
        lists = costs.price_lists(s, demo.tenant_id, datetime(2026, 10, 2, tzinfo=UTC))
    assert (old[("DE", "marketing")], new[("DE", "marketing")]) == (100_000, 150_000)
    assert [(pl.valid_from.month, pl.current) for pl in lists] == [(10, True), (1, False)]


def test_the_cli_imports_a_dated_version_and_refuses_a_broken_file(
    ctx: Konsent, demo, tmp_path, monkeypatch
) -> None:
    from konsent.cli import app

    monkeypatch.setenv("KONSENT_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("KONSENT_DATA_DIR", str(ctx.settings.data_dir))
    monkeypatch.setenv("KONSENT_MASTER_KEY", MASTER_KEY)
    get_settings.cache_clear()
    good = tmp_path / "prices.csv"
    good.write_text(PRICES)
    result = CliRunner().invoke(
        app, ["prices", "import", str(good), "--valid-from", "2026-10-01", "--tenant", "demo"]
    )
    assert result.exit_code == 0, result.output
    with ctx.db.read() as s:
        [pl] = costs.price_lists(s, demo.tenant_id)
    assert (pl.valid_from.date().isoformat(), pl.rows, pl.source) == ("2026-10-01", 6, "prices.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("country,category,price\nDE,marketing,free\n")
    result = CliRunner().invoke(app, ["prices", "import", str(bad), "--valid-from", "2026-11-01"])
    assert result.exit_code == 2
    assert "line 2" in result.output
    with ctx.db.read() as s:
        assert len(costs.price_lists(s, demo.tenant_id)) == 1
    get_settings.cache_clear()


def test_the_admin_costs_page_shows_the_table_in_force(ctx: Konsent, demo, client) -> None:
    import_prices(ctx, demo.tenant_id)
    as_role(ctx, client, "viewer")
    page = client.get("/admin/costs")
    assert page.status_code == 200
    assert "0.20 EUR" in page.text and "prices.csv" in page.text
