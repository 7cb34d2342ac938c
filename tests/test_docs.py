"""The README documents every setting (U1): an operator can configure konsent from it."""

from pathlib import Path

from konsent.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_configuration_table_lists_every_setting():
    text = README.read_text()
    missing = [f"KONSENT_{n.upper()}" for n in Settings.model_fields if f"`KONSENT_{n.upper()}`" not in text]
    assert not missing, f"README configuration table lacks {missing}"


def test_readme_has_quick_start_and_test_commands():
    text = README.read_text()
    assert "## Quick start" in text and "## Tests" in text
    assert "konsent demo" in text.split("## Tests")[0]
