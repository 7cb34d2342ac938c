"""No module over 500 lines (STYLE.md): a module that grows past that is split along its seams.

`store/tables.py` (every table in one place) and the Alembic migrations are exempt by design.
"""

from __future__ import annotations

from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "src" / "konsent"
MAX_LINES = 500
EXEMPT = {"store/tables.py"}


def too_long(root: Path, limit: int, allowed: set[str]) -> list[str]:
    """Modules under `root` longer than `limit` lines, except `allowed` and migrations."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "migrations" in path.parts or rel in allowed:
            continue
        n = len(path.read_text().splitlines())
        if n > limit:
            out.append(f"{rel}: {n} lines")
    return out


def test_no_module_under_src_konsent_exceeds_500_lines() -> None:
    assert too_long(PKG, MAX_LINES, EXEMPT) == []


def test_the_size_check_reports_a_module_one_line_over_the_limit(tmp_path: Path) -> None:
    """The checker itself: 501 lines are reported, 500 are not, migrations never."""
    (tmp_path / "big.py").write_text("x = 1\n" * 501)
    (tmp_path / "fits.py").write_text("x = 1\n" * 500)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001.py").write_text("x = 1\n" * 900)
    assert too_long(tmp_path, 500, set()) == ["big.py: 501 lines"]
