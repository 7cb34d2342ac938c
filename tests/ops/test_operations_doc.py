"""docs/OPERATIONS.md ships only recipes that work: its systemd units and commands resolve
against the CLI, its environment file passes `konsent doctor`'s configuration checks, its
nginx and Caddy files pass `nginx -t` / `caddy validate` (where installed), and every metric
it names is served on /metrics (U6, #18)."""

from __future__ import annotations

import datetime as dt
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.main import get_command

from konsent.cli import app
from konsent.flows.operations import doctor
from konsent.settings import Settings
from tests.conftest import MASTER_KEY
from tests.ops.support import beat_now

DOC = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"
TEXT = DOC.read_text()
FILE_BLOCK = re.compile(r"<!-- file: (?P<name>\S+) -->\n```\w*\n(?P<body>.*?)```", re.S)
FILES = {m["name"]: m["body"] for m in FILE_BLOCK.finditer(TEXT)}
KONSENT = "/opt/konsent/.venv/bin/konsent"


def unit(name: str) -> dict[str, list[str]]:
    """A systemd unit as `Section.Key` → values (keys may repeat, as EnvironmentFile= does)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in FILES[name].splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def check_cli(args: list[str]) -> None:
    """Parse `konsent ARGS` as the CLI would: every sub-command and option must exist."""
    cmd: click.Command = get_command(app)
    ctx = click.Context(cmd)
    args = list(args)
    while isinstance(cmd, click.Group):
        name = args.pop(0)
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"`konsent {name}` is not a command"
        cmd, ctx = sub, click.Context(sub, parent=ctx)
    cmd.make_context(cmd.name or "", args)  # raises on an unknown option or a bad value


def shell_commands() -> list[list[str]]:
    """Every `konsent …` invocation in the page's sh blocks (continuation lines joined)."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", TEXT, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line.strip())
            for i, tok in enumerate(tokens):
                if (i == 0 and tok == "konsent") or tok.endswith("/bin/konsent"):
                    found.append(tokens[i + 1 :])
                    break
    return found


def test_page_has_every_recipe_the_issue_asks_for():
    for name in (
        "konsent.env",
        "secrets.env",
        "Caddyfile",
        "nginx-konsent.conf",
        "konsent-web@.service",
        "konsent-worker.service",
        "konsent-backup.service",
        "konsent-backup.timer",
        "prometheus.yml",
        "konsent-alerts.yml",
    ):
        assert name in FILES, name
    for heading in ("## Reverse proxy", "## systemd units", "## Upgrades", "## Backups", "## Sizing"):
        assert heading in TEXT


@pytest.mark.parametrize("name", ["konsent-web@.service", "konsent-worker.service", "konsent-backup.service"])
def test_systemd_units_run_konsent_commands_that_exist_with_both_environment_files(name):
    u = unit(name)
    assert u["Service.EnvironmentFile"] == ["/etc/konsent/konsent.env", "/etc/konsent/secrets.env"]
    assert u["Service.User"] == ["konsent"]
    for key in ("Service.ExecStart", "Service.ExecStartPre"):
        for line in u.get(key, []):
            tokens = shlex.split(line.replace("%i", "8001"))
            assert tokens[0] == KONSENT, line
            check_cli(tokens[1:])
    for line in u.get("Service.ExecStartPost", []):
        assert Path(shlex.split(line)[0]).is_absolute() and shutil.which(shlex.split(line)[0]), line


def test_web_units_leave_the_worker_to_the_worker_unit_and_listen_on_localhost():
    web = shlex.split(unit("konsent-web@.service")["Service.ExecStart"][0])
    assert "--no-worker" in web and web[web.index("--host") + 1] == "127.0.0.1"
    assert unit("konsent-backup.timer")["Install.WantedBy"] == ["timers.target"]


def test_every_konsent_command_in_the_page_exists():
    commands = shell_commands()
    assert {c[0] for c in commands} >= {"doctor", "migrate", "backup", "restore"}
    for args in commands:
        check_cli(args)


def test_environment_files_name_real_settings_and_pass_the_doctor(ctx, demo):
    env = {}
    for name in ("konsent.env", "secrets.env"):
        for line in FILES[name].splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                field = key.removeprefix("KONSENT_").lower()
                assert key.startswith("KONSENT_") and field in Settings.model_fields, key
                env[field] = value
    configured = Settings(**{k: v for k, v in env.items() if k not in ("data_dir", "master_key")})
    for field in ("base_url", "secure_cookies", "keystore_url", "embedded_worker", "log_format"):
        setattr(ctx.settings, field, getattr(configured, field))
    ctx.settings.master_key = SecretStr(MASTER_KEY)  # the page's placeholder stands for a real key
    ctx.settings.database_url = configured.database_url  # only compared with the key store's URL
    beat_now(ctx)
    assert doctor.diagnose(ctx).findings == []


def test_every_metric_the_page_names_is_served(app):
    with TestClient(app, client=("127.0.0.1", 40000)) as c:
        served = c.get("/metrics").text
    named = set(re.findall(r"\bkonsent_[a-z_]+\b", TEXT)) - {"konsent_keys", "konsent_restored"}
    assert len(named) >= 15
    missing = [m for m in named if f"\n{m}" not in served and f"# TYPE {m} " not in served]
    assert missing == []


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "konsent.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    crt, pem = tmp / "fullchain.pem", tmp / "privkey.pem"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return crt, pem


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_configuration_passes_nginx_t(tmp_path):
    crt, pem = _self_signed(tmp_path)
    site = (
        FILES["nginx-konsent.conf"]
        .replace("/etc/letsencrypt/live/konsent.example.com/fullchain.pem", str(crt))
        .replace("/etc/letsencrypt/live/konsent.example.com/privkey.pem", str(pem))
    )
    temp = " ".join(
        f"{d}_temp_path {tmp_path / d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\naccess_log {tmp_path / 'access.log'};\n{temp}\n{site}\n}}\n"
    )
    r = subprocess.run(
        [
            str(shutil.which("nginx")),
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed")
def test_caddyfile_passes_caddy_validate(tmp_path):
    (tmp_path / "Caddyfile").write_text(FILES["Caddyfile"])
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    r = subprocess.run(
        [
            str(shutil.which("caddy")),
            "validate",
            "--config",
            str(tmp_path / "Caddyfile"),
            "--adapter",
            "caddyfile",
        ],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    """The units as systemd reads them: no unknown key, no bad value (konsent's path stubbed)."""
    stub = tmp_path / "konsent"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    paths = []
    for name in ("konsent-web@.service", "konsent-worker.service", "konsent-backup.service"):
        target = tmp_path / name.replace("@.", "@8001.")
        target.write_text(FILES[name].replace(KONSENT, str(stub)))
        paths.append(str(target))
    (tmp_path / "konsent-backup.timer").write_text(FILES["konsent-backup.timer"])
    paths.append(str(tmp_path / "konsent-backup.timer"))
    r = subprocess.run(
        [str(shutil.which("systemd-analyze")), "verify", *paths], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
