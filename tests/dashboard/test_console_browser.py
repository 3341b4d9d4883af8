"""The console in a real browser: Debian's Chromium (through its chromedriver) against
``python -m python_worker dashboard`` on a real database. Loads every page, signs in, retries a
dead job through the dead letter's confirmation, pauses and resumes a queue, and watches the
overview refresh itself; each time the database is checked, not the page alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from console_helpers import (
    TOKEN,
    Console,
    Seeded,
    chromium,
    console_server,
    missing_browser,
    sql,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

PAGES = {
    "/": "Overview",
    "/jobs": "Jobs",
    "/dead": "Dead letter",
    "/queues": "Queues",
    "/workers": "Workers",
    "/schedules": "Schedules",
    "/breakers": "Circuit breakers",
}


@pytest.fixture(scope="module")
def console(module_db_url: str, seeded: Seeded) -> Iterator[Console]:
    with console_server(module_db_url, KYU_DASHBOARD_REFRESH_SECONDS="1") as c:
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = missing_browser()
    if problem:
        pytest.fail(problem)  # make test must not pass without the browser tests
    driver = chromium()
    yield driver
    driver.quit()


def wait(driver: Any, seconds: float = 10) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def sign_in(driver: Any, console: Console) -> None:
    driver.delete_all_cookies()
    driver.get(console.base + "/login")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "sign-in-submit").click()
    wait(driver).until(ec.presence_of_element_located((By.ID, "mode")))
    assert driver.find_element(By.ID, "mode").text == "signed in"


def severe_console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_every_page_loads_without_errors(browser: Any, console: Console, seeded: Seeded) -> None:
    for path, heading in {**PAGES, f"/jobs/{seeded.running[0]}": f"Job {seeded.running[0]}"
                          }.items():
        browser.get(console.base + path)
        h1 = browser.find_element(By.TAG_NAME, "h1").text
        assert h1.startswith(heading), (path, h1)
        assert severe_console_errors(browser) == [], path  # CSP, script or asset failures
    browser.get(console.base + "/jobs")
    rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
    assert len(rows) == 50
    bar = browser.find_elements(By.ID, "progress")
    assert bar == []  # a list page has no progress bar; the job page has one:
    browser.get(console.base + f"/jobs/{seeded.running[1]}")
    assert float(browser.find_element(By.ID, "progress").get_attribute("value")) == 0.583


def test_filtering_jobs_in_the_form(browser: Any, console: Console, seeded: Seeded) -> None:
    browser.get(console.base + "/jobs")
    form = browser.find_element(By.ID, "job-filters")
    form.find_element(By.NAME, "status").send_keys("dead")
    form.find_element(By.NAME, "payload").send_keys('{"image_id": 77}')
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(ec.url_contains("status=dead"))
    ids = [int(a.text) for a in browser.find_elements(By.CSS_SELECTOR, "#jobs td.n a")]
    assert sorted(ids) == sorted(seeded.dead[4:])


def test_an_anonymous_visitor_is_sent_to_sign_in(browser: Any, console: Console) -> None:
    browser.delete_all_cookies()
    browser.get(console.base + "/dead")
    assert browser.find_elements(By.ID, "bulk-retry") == []
    browser.find_element(By.ID, "sign-in").click()
    wait(browser).until(ec.url_contains("/login"))
    browser.find_element(By.ID, "token").send_keys("not the token")
    browser.find_element(By.ID, "sign-in-submit").click()
    # a wrong token is answered after half a second: wait for the answer, not the old page
    error = wait(browser).until(ec.presence_of_element_located((By.ID, "login-error")))
    assert error.text == "wrong token"


def test_retry_a_dead_job_through_the_page(browser: Any, console: Console, seeded: Seeded,
                                           module_db_url: str) -> None:
    job_id = seeded.dead[1]
    sign_in(browser, console)
    browser.get(console.base + "/dead")
    browser.find_element(By.CSS_SELECTOR, f'input[name="ids"][value="{job_id}"]').click()
    browser.find_element(By.ID, "bulk-retry").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "confirm")))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Retry 1 dead job?"
    # nothing happens before the confirmation
    assert sql(module_db_url, "select (queue.get_job(%s)).status", (job_id,))[0][
        "status"] == "dead"
    browser.find_element(By.ID, "confirm").click()
    flash = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.good")))
    assert flash.text == "1 jobs pending again"
    row = sql(module_db_url, "select (queue.get_job(%s)).*", (job_id,))[0]
    assert (row["status"], row["attempt"]) == ("pending", 0)
    assert len(row["errors"]) == 3  # its history is kept


def test_pause_and_resume_a_queue_through_the_page(browser: Any, console: Console,
                                                   module_db_url: str) -> None:
    def paused() -> bool:
        return bool(sql(module_db_url, "select paused from queue.queue_policies"
                                       " where queue_name = 'images'")[0]["paused"])

    sign_in(browser, console)
    browser.get(console.base + "/queues")
    browser.find_element(By.ID, "pause-images").click()
    flash = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.good")))
    assert flash.text == "queue images paused"
    assert paused()
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="images"]')
    assert "paused" in row.text
    browser.find_element(By.ID, "resume-images").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash.good"),
                                                         "queue images resumed"))
    assert not paused()


def test_the_overview_refreshes_itself(browser: Any, console: Console,
                                       module_db_url: str) -> None:
    browser.get(console.base + "/")

    def waiting_reports() -> str:
        row = browser.find_element(By.CSS_SELECTOR, '#queue-stats tr[data-queue="reports"]')
        return str(row.find_elements(By.CSS_SELECTOR, "td.n")[0].text)

    before = int(waiting_reports())
    ids = [sql(module_db_url, "select queue.enqueue_job('report.monthly', '{}') as id")[0]["id"]
           for _ in range(2)]
    try:
        wait(browser, 15).until(lambda d: waiting_reports() == str(before + 2))
        assert browser.find_element(By.ID, "live").get_attribute("data-refreshed-at")
    finally:
        for i in ids:
            sql(module_db_url, "select queue.cancel_job(%s)", (i,))
