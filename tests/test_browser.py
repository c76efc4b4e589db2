"""The pages in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by selenium, against zto under gunicorn.

One browser for the whole module. Each test leaves screenshots in ``test-output/``
(desktop and phone sizes). Skipped, with the reason, only when Chromium is missing
outside CI; in CI (``CI`` set) a missing browser is an error, since ``.ci/run``
installs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import API_KEY, wait_for

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--lang=en-US")
HOSTILE_AGENT = '<img src=x onerror="document.title=\'pwned\';window.pwned=1">'
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
AUTH = {"Authorization": f"Bearer {API_KEY}"}

_missing = not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER))
pytestmark = pytest.mark.skipif(
    _missing and not os.environ.get("CI"),
    reason="Chromium is not installed: apt-get install chromium chromium-driver (CI installs them)")


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="zto-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    OUTPUT.mkdir(exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


# ---- helpers ------------------------------------------------------------------------------

def console_errors(driver) -> list[str]:
    """Console errors since the last call (reading the log empties it)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait(driver, condition, timeout: float = 10.0, message: str = ""):
    # The page redraws its table every refresh: an element read during a redraw is stale, so try again.
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: condition(d), message)


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def foreign_resources(driver, origin: str) -> list[str]:
    """Every URL the page loaded, or links to as a resource, that is not on ``origin``."""
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat([...document.querySelectorAll('script[src], link[href], img[src], iframe[src]')]"
        ".map(e => e.src || e.href))")
    return [url for url in loaded if not url.startswith(origin + "/")]


def screenshot(driver, name: str, phone: bool = False) -> Path:
    """A full-page screenshot in test-output/, at desktop or phone size."""
    path = OUTPUT / f"{name}.png"
    if phone:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    else:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1280, "height": min(max(height, 900), 6000), "deviceScaleFactor": 1,
                                "mobile": False})
    try:
        time.sleep(0.2)  # let layout settle after the resize
        if phone:
            overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name}: the page is {overflow}px wider than a phone screen"
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "height": min(height, 1600)})
            time.sleep(0.2)
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert path.stat().st_size > 10_000
    return path


def recent_requests(server) -> list[dict]:
    return requests.get(server.url + "/dashboard/requests", timeout=10).json()


def chat(live, prompt: str = "hi", headers: dict | None = None, **body) -> requests.Response:
    body.setdefault("messages", [{"role": "user", "content": prompt}])
    response = requests.post(live.base_url + "/chat/completions", json=body, headers=headers or AUTH, timeout=30)
    response.content  # noqa: B018 - read streams to the end
    return response


def wait_for_refresh(driver, after: int = 0) -> int:
    """Wait until the page has redrawn itself more than ``after`` times; the count."""
    def updates(d):
        value = d.find_element(By.ID, "dashboard").get_attribute("data-updates")
        return int(value) if value and int(value) > after else False

    return wait(driver, updates, timeout=12, message="the dashboard did not refresh")


def cards(driver) -> dict:
    return {name: text(driver, name) for name in (
        "total-requests", "successful-requests", "failed-requests", "success-rate", "average-response",
        "p95-response", "in-flight")}


def expected_cards(stats: dict) -> dict:
    return {
        "total-requests": f"{stats['total_requests']:,}",
        "successful-requests": f"{stats['successful_requests']:,}",
        "failed-requests": f"{stats['failed_requests']:,}",
        "in-flight": f"{stats['in_flight']:,}",
    }


# ---- the dashboard ------------------------------------------------------------------------

def test_dashboard_shows_the_traffic_and_updates_itself(live, browser):
    for _ in range(18):
        assert requests.get(live.base_url + "/models", timeout=10).status_code == 200
    assert chat(live, model="GLM-4.5").status_code == 200
    assert chat(live, "scenario:thinking", stream=True, enable_thinking=True).status_code == 200
    assert chat(live, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert chat(live, "scenario:error_nested").status_code == 502
    hostile = requests.get(live.base_url + "/models", headers={"User-Agent": HOSTILE_AGENT}, timeout=10)
    assert hostile.status_code == 200

    assert wait_for(lambda: not any(r["in_progress"] for r in recent_requests(live)))  # all recorded
    browser.get(live.url + "/dashboard")
    assert browser.title == "zto · dashboard"
    updates = wait_for_refresh(browser)
    stats = requests.get(live.url + "/dashboard/stats", timeout=10).json()
    recent = requests.get(live.url + "/dashboard/requests", timeout=10).json()
    assert stats["total_requests"] >= 23 and len(recent) == min(100, stats["total_requests"])

    # the cards say what /dashboard/stats says
    shown = cards(browser)
    assert {k: shown[k] for k in expected_cards(stats)} == expected_cards(stats)
    rate = 100 * stats["successful_requests"] / stats["total_requests"]
    assert shown["success-rate"] == f"{rate:.1f}%" or shown["success-rate"] == f"{rate:.0f}%"
    assert shown["average-response"].endswith(("ms", "s")) and shown["p95-response"].endswith(("ms", "s"))

    # the table: newest first by arrival, 20 to a page, client data as text
    rows = browser.find_elements(By.CSS_SELECTOR, "#requests-body tr")
    assert len(rows) == 20
    first = rows[0].find_elements(By.TAG_NAME, "td")
    assert first[1].text == "GET" and first[2].text == "/v1/models" and first[9].text == HOSTILE_AGENT
    assert first[9].get_attribute("title") == HOSTILE_AGENT  # the whole value on hover, as text
    assert browser.find_elements(By.CSS_SELECTOR, "#requests-body img") == []
    assert browser.title != "pwned" and browser.execute_script("return window.pwned") is None
    statuses = [row.find_elements(By.TAG_NAME, "td")[5].text for row in rows[:4]]
    assert statuses == ["200", "502", "401", "200"]  # newest first by arrival
    errors = {row.find_elements(By.TAG_NAME, "td")[5].text: row.find_elements(By.TAG_NAME, "td")[6].text
              for row in rows[:4]}
    assert errors["502"] == "upstream_error" and errors["401"] == "invalid_api_key" and errors["200"] == "–"
    models = [row.find_elements(By.TAG_NAME, "td")[3].text for row in rows[:6]]
    assert models.index("GLM-4.6") < models.index("GLM-4.5")
    # which upstream answered: none for /v1/models, the web chat for the answers
    upstreams = [row.find_elements(By.TAG_NAME, "td")[4].text for row in rows[:6]]
    assert upstreams[0] == "–" and upstreams[models.index("GLM-4.5")] == "web"
    pages = -(-len(recent) // 20)
    assert text(browser, "page-info") == f"Page 1 of {pages}"

    # the chart: one bar per recent request, failures marked
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart rect.bar")) == len(recent)
    assert text(browser, "last-request") == "last at " + first[0].text  # the newest row's time
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart rect.bar.fail")) == sum(not r["ok"] for r in recent)

    screenshot(browser, "dashboard-desktop")
    screenshot(browser, "dashboard-phone", phone=True)
    # on a phone each request is a card, and every cell of it stays inside it
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        time.sleep(0.2)
        outside = browser.execute_script(
            "return [...document.querySelectorAll('#requests-body tr')].flatMap(tr => {"
            "  const box = tr.getBoundingClientRect();"
            "  return [...tr.cells].filter(td => { const r = td.getBoundingClientRect();"
            "    return r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1 || td.scrollWidth > td.clientWidth + 1); })"
            "  .map(td => td.dataset.label + ': ' + td.textContent); })")
        assert outside == []
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # previous / next
    browser.find_element(By.ID, "next-page").click()
    assert text(browser, "page-info") == f"Page 2 of {pages}"
    second = browser.find_elements(By.CSS_SELECTOR, "#requests-body tr")[0].find_elements(By.TAG_NAME, "td")
    assert second[2].text == recent[20]["path"]
    browser.find_element(By.ID, "prev-page").click()
    assert text(browser, "page-info") == f"Page 1 of {pages}"
    assert not browser.find_element(By.ID, "prev-page").is_enabled()

    # new traffic shows up without a reload
    browser.execute_script("window.notReloaded = true")
    for _ in range(3):
        assert chat(live, model="GLM-4.5-Air").status_code == 200
    total = requests.get(live.url + "/dashboard/stats", timeout=10).json()["total_requests"]
    wait(browser, lambda d: text(d, "total-requests") == f"{total:,}", timeout=12,
         message="the total did not update")
    assert browser.execute_script("return window.notReloaded") is True
    assert wait_for_refresh(browser, updates) > updates
    newest = browser.find_elements(By.CSS_SELECTOR, "#requests-body tr")[0].find_elements(By.TAG_NAME, "td")
    assert newest[3].text == "GLM-4.5-Air"

    assert foreign_resources(browser, live.url) == []
    assert console_errors(browser) == []


LONG_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36 "
              "Edg/142.0.0.0 OpenAI/Python 1.109.1 async:asyncio/3.11 httpx/0.28.1 "
              "SomeBundledClient/9.9.9 (+https://example.com/a/very/long/path/that/keeps/going) ") * 2
LONG_AGENT = LONG_AGENT[:290].strip()  # the dashboard keeps 300 characters


def test_a_long_user_agent_does_not_make_its_row_tall(live, browser):
    """At 1280 px a row with a long user agent is about as tall as one with a short
    one: the agent is cut to two lines with an ellipsis, the whole of it in the title."""
    for agent in ("curl/8.5.0", LONG_AGENT):
        assert requests.get(live.base_url + "/models", headers={"User-Agent": agent}, timeout=10).status_code == 200
    assert wait_for(lambda: not any(r["in_progress"] for r in recent_requests(live)))
    browser.get(live.url + "/dashboard")
    wait_for_refresh(browser)
    short, long, width, title = browser.execute_script(
        "const rows = [...document.querySelectorAll('#requests-body tr')];"
        "const row = (agent) => rows.find(tr => tr.cells[9].textContent === agent);"  # the whole text: cut by the layout
        "return [row(arguments[0]).getBoundingClientRect().height, row(arguments[1]).getBoundingClientRect().height,"
        " window.innerWidth, row(arguments[1]).cells[9].title];",
        "curl/8.5.0", LONG_AGENT)
    assert width == 1280
    assert long <= short * 1.6, (short, long)
    assert title == LONG_AGENT


# ---- the API guide ------------------------------------------------------------------------

def test_docs_show_working_examples(live, browser):
    browser.get(live.url + "/docs")
    assert browser.title == "zto · API guide"
    assert text(browser, "base-url") == live.base_url
    for name in ("python", "curl", "js"):
        block = browser.find_element(By.ID, f"example-{name}")
        assert block.is_displayed() and live.base_url in block.text, name
    assert "from openai import OpenAI" in text(browser, "example-python")
    assert "enable_thinking" in text(browser, "example-python")

    # the JavaScript example, pasted as it is (with our key) into this page, reads the stream
    code = browser.execute_script("return document.getElementById('example-js').textContent")
    code = code.replace("sk-your-key", API_KEY)
    answer = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "(async () => {" + code + "\n; return answer; })().then(done, (e) => done('ERROR: ' + e));")
    assert answer == "Hello, world!"

    copy = browser.find_element(By.CSS_SELECTOR, "button[data-copy='example-python']")
    copy.click()
    wait(browser, lambda d: copy.text in ("Copied", "Select and copy"), message="the Copy button did nothing")

    screenshot(browser, "docs-desktop")
    screenshot(browser, "docs-phone", phone=True)
    assert foreign_resources(browser, live.url) == []
    assert console_errors(browser) == []


# ---- the key, and several workers ----------------------------------------------------------

def test_login_with_the_dashboard_key(start_server, shared_fake, browser):
    server = start_server({"UPSTREAM_URL": shared_fake.completions_url, "DEBUG_MODE": "false", "THREADS": "8",
                           "WEB_CONCURRENCY": "2", "DASHBOARD_KEY": "browser-test-key"},
                          env_local={"DEFAULT_KEY": API_KEY})
    assert "browser-test-key" not in server.log()
    browser.get(server.url + "/dashboard")
    assert "/dashboard/login" in browser.current_url
    field = browser.find_element(By.ID, "key")
    screenshot(browser, "login-desktop")
    field.send_keys("wrong key")
    field.submit()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".form-error"), message="no error for a wrong key")
    browser.find_element(By.ID, "key").send_keys("browser-test-key")
    browser.find_element(By.ID, "key").submit()
    wait(browser, lambda d: d.current_url == server.url + "/dashboard", message="login did not lead to the dashboard")
    wait_for_refresh(browser)
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly
    notice = browser.find_element(By.ID, "worker-notice")
    assert notice.is_displayed() and "one worker" in notice.text and "partial view" in notice.text.lower()
    assert "partial view" in text(browser, "worker-line") and f"pid {text(browser, 'worker-pid')}" in text(browser, "worker-line")
    screenshot(browser, "dashboard-two-workers-desktop")
    # the wrong key's 401 is the only error a browser may report here
    assert [e for e in console_errors(browser) if "401" not in e] == []


def test_the_page_takes_success_from_the_server(live, browser):
    """A stream that broke after its 200 is a failure, as the server says (each record's
    ``ok``); a page judging by the status code alone would show it as a success."""
    assert chat(live, "scenario:mid_error", stream=True).status_code == 200

    def recent():
        return requests.get(live.url + "/dashboard/requests", timeout=10).json()[:20]

    assert wait_for(lambda: any(r["status"] == 200 and not r["ok"] for r in recent()))  # recorded at its close
    browser.get(live.url + "/dashboard")
    wait_for_refresh(browser)
    badges = [(b.text, "fail" in b.get_attribute("class"))
              for b in browser.find_elements(By.CSS_SELECTOR, "#requests-body .badge")]
    assert [failed for _, failed in badges] == [r["ok"] is False for r in recent()]
    assert any(text == "200" and failed for text, failed in badges)
    errors = [row.find_elements(By.TAG_NAME, "td")[6].text
              for row in browser.find_elements(By.CSS_SELECTOR, "#requests-body tr")]
    assert [error != "–" for error in errors] == [r["error"] is not None for r in recent()]


def test_two_instances_show_one_dashboard_until_redis_is_gone(start_server, shared_fake, redis_server, browser):
    browser.get("about:blank")
    console_errors(browser)  # what the previous test's page logged after its server stopped
    env = {"UPSTREAM_URL": shared_fake.completions_url, "DEBUG_MODE": "false", "REDIS_URL": redis_server.url}
    one = start_server(env, env_local={"DEFAULT_KEY": API_KEY})
    two = start_server({**env, "WEB_CONCURRENCY": "2"}, env_local={"DEFAULT_KEY": API_KEY})
    assert chat(one).status_code == 200 and chat(two).status_code == 200
    assert chat(two, stream=True).status_code == 200

    def chats(d) -> int:  # read in one script: the page may redraw its rows between two reads
        return d.execute_script("return [...document.querySelectorAll('#requests-body td.path')]"
                                ".filter(td => td.textContent === '/v1/chat/completions').length")

    for server in (one, two):
        browser.get(server.url + "/dashboard")
        wait(browser, lambda d: chats(d) == 3, timeout=15,
             message=f"{server.url}/dashboard does not show both instances' traffic")
        rows = str(len(browser.find_elements(By.CSS_SELECTOR, "#requests-body tr")))  # and each start's GET /v1/models
        assert text(browser, "total-requests") == rows and browser.find_element(By.ID, "chart").get_attribute("data-bars") == rows
        assert "all workers and instances" in text(browser, "worker-line")
        assert not browser.find_elements(By.ID, "worker-notice")
        assert not browser.find_element(By.ID, "stats-unavailable").is_displayed()
    screenshot(browser, "dashboard-shared-desktop")
    redis_server.kill()
    assert chat(two).status_code == 200  # the service keeps answering
    wait(browser, lambda d: d.find_element(By.ID, "stats-unavailable").is_displayed(), timeout=15,
         message="the page does not say the statistics are unavailable")
    assert "Statistics unavailable" in text(browser, "stats-unavailable")
    assert "Statistics unavailable" in text(browser, "status")
    screenshot(browser, "dashboard-statistics-unavailable-desktop")
    assert [e for e in console_errors(browser) if "503" not in e] == []


def test_the_dashboard_names_official_api_keys_set_aside(start_server, official, browser):
    key = official.keys[0]
    server = start_server({"UPSTREAMS": "api", "ZAI_API_KEY": ",".join(official.keys), "ZAI_API_BASE": official.base_url},
                          env_local={"DEFAULT_KEY": API_KEY})
    browser.get(server.url + "/dashboard")
    wait_for_refresh(browser)
    assert not browser.find_element(By.ID, "keys-aside").is_displayed()
    official.fail_key(key, "1113")
    assert chat(server, "hi").status_code == 200  # the next key answers
    browser.refresh()
    wait(browser, lambda d: d.find_element(By.ID, "keys-aside").is_displayed(), message="no notice of the key set aside")
    notice = browser.find_element(By.ID, "keys-aside").text
    assert f"{key[:6]}…({len(key)} chars) (insufficient_quota, back in" in notice and key not in notice
    screenshot(browser, "dashboard-keys-set-aside-desktop")


# ---- the chart's axis ----------------------------------------------------------------------

def chart_state(driver) -> dict:
    return driver.execute_script("""
        const chart = document.getElementById('chart');
        const box = chart.getBoundingClientRect();
        return {scale: chart.dataset.scale, top: Number(chart.dataset.topMs),
                labels: [...chart.querySelectorAll('text.axis')].map(t => t.textContent)
                         .filter(t => /[0-9]/.test(t)),
                bars: [...chart.querySelectorAll('rect.bar')].map(b => [Number(b.dataset.ms),
                        b.getBoundingClientRect().height, b.classList.contains('ok')]),
                height: box.height};""")


def test_the_chart_axis_fits_and_fast_requests_stay_visible(live, browser):
    streams = [threading.Thread(target=chat, args=(live, "scenario:long transport:delay=0.01"), kwargs={"stream": True})
               for _ in range(3)]
    for thread in streams:
        thread.start()
    for _ in range(6):
        assert chat(live).status_code == 200
        assert requests.get(live.base_url + "/models", timeout=10).status_code == 200
    for thread in streams:
        thread.join(60)
    assert wait_for(lambda: not any(r["in_progress"] for r in recent_requests(live)))
    browser.get(live.url + "/dashboard")
    wait_for_refresh(browser)
    finished = [r for r in recent_requests(live) if not r["in_progress"]]
    slowest = max(r["duration_ms"] for r in finished)
    assert slowest > 1000  # the streams
    state = chart_state(browser)
    assert state["scale"] == "log"  # 1 ms answers beside 1 s streams
    assert slowest <= state["top"] < 1.5 * slowest, state  # the axis ends just above the slowest bar
    decimals = {label.split()[0].partition(".")[2].__len__() for label in state["labels"] if label != "0"}
    assert len(decimals) == 1, state["labels"]  # one precision for every label
    # A bar's height grows with its duration, and ten times slower is clearly taller.
    bars = sorted((ms, height) for ms, height, ok in state["bars"] if ok)
    heights = [height for _, height in bars]
    assert heights == sorted(heights)
    for fast, low in bars:
        for slow, high in bars:
            if fast >= 1 and slow >= 10 * fast:
                assert high - low >= 20, (fast, low, slow, high)
    screenshot(browser, "dashboard-chart-log-desktop")


def first_row(driver) -> tuple[list[str], str]:
    """The cells of the table's first row and the "last at" line, read at one moment."""
    return driver.execute_script(
        "const row = document.querySelector('#requests-body tr');"
        "return [row ? [...row.cells].map(c => c.textContent) : [],"
        " document.getElementById('last-request').textContent];")


def test_a_stream_in_progress_is_listed_before_it_ends(live, browser):
    stream = threading.Thread(target=chat, args=(live, "scenario:long transport:delay=0.03"), kwargs={"stream": True})
    stream.start()
    assert wait_for(lambda: any(r["in_progress"] for r in recent_requests(live)))
    browser.get(live.url + "/dashboard")
    wait_for_refresh(browser)
    cells, last = first_row(browser)
    assert cells[5] == "streaming" and "so far" in cells[7], cells
    assert last == "last at " + cells[0]
    screenshot(browser, "dashboard-stream-in-progress-desktop")
    stream.join(60)
    wait(browser, lambda d: first_row(d)[0][5] == "200", timeout=15, message="the finished stream is not shown as finished")
    done, last = first_row(browser)
    assert done[0] == cells[0] and "so far" not in done[7] and last == "last at " + cells[0]  # the same row and time


def test_an_unreachable_server_is_said_in_words(live, browser):
    browser.get(live.url + "/dashboard")
    wait_for_refresh(browser)
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    try:
        browser.execute_script("document.dispatchEvent(new Event('visibilitychange'))")  # refresh now
        wait(browser, lambda d: "cannot be reached" in text(d, "status"), message="no message for a lost server")
        status = text(browser, "status")
        assert "Failed to fetch" not in status and status.startswith("Not updated since ")
        assert "Trying again" in status
        screenshot(browser, "dashboard-offline-phone", phone=True)
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
        browser.execute_cdp_cmd("Network.disable", {})
    browser.execute_script("document.dispatchEvent(new Event('visibilitychange'))")
    wait(browser, lambda d: text(d, "status").startswith("Updated"), message="no recovery once back online")


# ---- the API guide on a phone, and its contents -------------------------------------------

TABLE_GEOMETRY = """
    return [...document.querySelectorAll('.docs-body table')].map(table => {
      const card = table.closest('section'), style = getComputedStyle(card), box = card.getBoundingClientRect();
      return {
        section: card.id, left: table.getBoundingClientRect().left, right: table.getBoundingClientRect().right,
        cardLeft: box.left + parseFloat(style.paddingLeft), cardRight: box.right - parseFloat(style.paddingRight),
        sentences: [...table.querySelectorAll('td')].filter(td => td.textContent.trim().length > 40)
                     .map(td => td.getBoundingClientRect().width),
        labels: [...table.querySelectorAll('tbody td:not(:first-child)')]
                  .map(td => getComputedStyle(td, '::before').content),
      };
    })"""


@pytest.mark.parametrize("width", [390, 700])
def test_docs_tables_fit_a_phone(live, browser, width):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "width": width})
    try:
        browser.get(live.url + "/docs")
        wait(browser, lambda d: d.execute_script("return document.readyState") == "complete")
        time.sleep(0.2)
        tables = browser.execute_script(TABLE_GEOMETRY)
        assert len(tables) >= 4
        for table in tables:
            assert table["left"] >= table["cardLeft"] - 1 and table["right"] <= table["cardRight"] + 1, table
            assert all(cell >= 150 for cell in table["sentences"]), table  # never a word per line
            if width < 640:  # one block per row: each cell says which column it is
                assert all(label.startswith('"') and label.endswith(': "') for label in table["labels"]), table
        if width < 640:
            assert any('"Meaning: "' in table["labels"] for table in tables)
            browser.execute_script("document.getElementById('request').scrollIntoView()")
            screenshot(browser, "docs-request-fields-phone", phone=True)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_docs_contents_show_the_current_section(live, browser):
    browser.get(live.url + "/docs")

    def current(d):
        return d.execute_script("return [...document.querySelectorAll('.toc a[aria-current]')]"
                                ".map(a => a.getAttribute('href'))")

    wait(browser, lambda d: current(d) == ["#start"], message="the first section is not marked at the top")
    for section in ("models", "reasoning", "errors"):
        browser.execute_script(f"document.getElementById('{section}').scrollIntoView()")
        wait(browser, lambda d, s=section: current(d) == ["#" + s], message=f"{section} is not marked")
    assert browser.find_element(By.CSS_SELECTOR, ".toc a[aria-current]").value_of_css_property("font-weight") in (
        "600", "bold", "700")
    screenshot(browser, "docs-contents-desktop")
