"""``make dashboard-screenshots``: every console page in a real Chromium, as PNGs.

Builds a throwaway database from the migrations, seeds it (console_helpers.seed), serves the
console, signs in, and writes out/screenshots/<page>.png; the overview is also kept as
docs/console.png for the README. Look at them before calling a change to the console done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from console_helpers import ROOT, TOKEN, chromium, console_server, missing_browser, seed  # noqa: E402

OUT = ROOT / "out" / "screenshots"
DB = "kyu_console_screenshots"


def build_db(admin_url: str) -> str:
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=DB)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{DB}" with (force)')
        conn.execute(f'create database "{DB}"')
    files = [ROOT / "scripts" / "supabase_compat.sql",
             *sorted((ROOT / "supabase" / "migrations").glob("*.sql"))]
    for f in files:
        subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(f)],
                       check=True, capture_output=True)
    return url


def full_page(driver: Any, path: Path) -> None:
    """The whole page at 1440 px wide (at most 2400 px tall), not only the window."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1440, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1440, "height": max(900, min(height, 2400)),
                            "deviceScaleFactor": 1, "mobile": False})
    driver.save_screenshot(str(path))


def main() -> int:
    problem = missing_browser()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    admin_url = os.environ.get("DATABASE_URL",
                               "postgresql://postgres:postgres@127.0.0.1:54322/postgres")
    url = build_db(admin_url)
    seeded = seed(url)
    OUT.mkdir(parents=True, exist_ok=True)
    pages = {
        "overview": "/",
        "jobs": "/jobs",
        "jobs-filtered": "/jobs?status=dead&queue=emails",
        "job-running": f"/jobs/{seeded.running[1]}",
        "job-dead": f"/jobs/{seeded.dead[0]}",
        "dead-letter": "/dead",
        "queues": "/queues",
        "workers": "/workers",
        "schedules": "/schedules",
        "breakers": "/breakers",
    }
    try:
        with console_server(url) as console:
            driver = chromium()
            try:
                driver.get(console.base + "/login")
                driver.find_element("id", "token").send_keys(TOKEN)
                driver.find_element("id", "sign-in-submit").click()
                for name, path in pages.items():
                    driver.get(console.base + path)
                    time.sleep(0.3)
                    full_page(driver, OUT / f"{name}.png")
                    print(OUT / f"{name}.png")
                driver.get(console.base + "/dead")
                driver.find_element("css selector", 'input[name="ids"]').click()
                driver.find_element("id", "bulk-discard").click()
                full_page(driver, OUT / "dead-letter-confirm.png")
                print(OUT / "dead-letter-confirm.png")
            finally:
                driver.quit()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{DB}" with (force)')
    shutil.copy(OUT / "overview.png", ROOT / "docs" / "console.png")
    print(ROOT / "docs" / "console.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
