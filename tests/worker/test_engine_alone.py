"""The engine stands alone: ``import python_worker`` loads none of the receipt app, every engine
module is under the import contract that ``make lint`` checks, a worker without handlers is
refused with the fix named, and a fresh ``pip install .`` (no extras) drains jobs with a handler
module of its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("python_worker.receipts", "rapidfuzz", "pypdf", "pypdfium2", "PIL", "jinja2",
                "weasyprint", "httpx", "googleapiclient", "imap_tools", "storage3", "reportlab")


def test_importing_the_engine_loads_nothing_of_the_app() -> None:
    code = ("import sys, python_worker, python_worker.cli, python_worker.worker;"
            " print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    assert "python_worker.worker" in out  # the check sees what was imported
    loaded = [m for m in out if m.split(".")[0] in APP_PACKAGES or m.startswith(APP_PACKAGES)]
    assert loaded == []


def test_every_engine_module_is_under_the_import_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = config["tool"]["importlinter"]["contracts"][0]
    assert "python_worker.receipts" in contract["forbidden_modules"]
    engine = {f"python_worker.{p.stem}" for p in (ROOT / "python_worker").glob("*.py")
              if p.stem != "__init__"}
    assert engine == set(contract["source_modules"])


def test_a_worker_without_handlers_is_refused_with_the_fix(module_db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KYU_HANDLERS"}
    env["DATABASE_URL"] = module_db_url
    out = subprocess.run([sys.executable, "-m", "python_worker", "process"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert "no handler modules" in out.stderr and "--handlers" in out.stderr


NOOP_MODULE = '''
from python_worker import handler


@handler("alone.noop")
def noop(payload: dict) -> dict:
    return {"seen": payload["n"]}
'''


def test_a_plain_install_without_extras_drains_jobs(module_db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "python_worker", source / "python_worker",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    install = subprocess.run([py, "-m", "pip", "install", "-q", str(source)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    missing = subprocess.run([py, "-c", "import weasyprint"], capture_output=True, text=True)
    assert "ModuleNotFoundError" in missing.stderr  # the app's packages did not come along

    (tmp_path / "alone_jobs.py").write_text(NOOP_MODULE, encoding="utf-8")
    with psycopg.connect(module_db_url, autocommit=True) as conn:
        conn.execute("select queue.register_job_type('alone.noop')")
        ids = [conn.execute("select queue.enqueue_job('alone.noop', %s)",
                            (json.dumps({"n": i}),)).fetchone()[0] for i in range(20)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KYU_")}
    env["DATABASE_URL"] = module_db_url
    out = subprocess.run([py, "-m", "python_worker", "--json", "process", "--handlers",
                          "alone_jobs"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["completed"] == 20
    with psycopg.connect(module_db_url) as conn:
        rows = conn.execute("select status, result from queue.job_history where id = any(%s)",
                            (ids,)).fetchall()
    assert sorted(r[1]["seen"] for r in rows if r[0] == "completed") == list(range(20))
