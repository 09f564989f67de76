"""The web console in headless Chromium: sign in through the form, every page with real
data, the stylesheet applied under the CSP, no console error, a screenshot that shows it.

Served by uvicorn on loopback (the ``admin_url`` fixture) over the home that
``tests/coordinator/admin/console_home.py`` prepares (the ``consortium`` fixture).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from coordinator.admin.tokens import AdminRole
from tests.coordinator.admin.console_home import MEMBERS, NDCG, REVOKED


@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CI"),
    reason="chromium is not installed (CI installs it and then requires this test)",
)
@pytest.mark.timeout(180)
def test_the_console_renders_real_data_in_headless_chromium(
    admin_url: str,
    admin_tokens: dict[AdminRole, str],
    consortium: dict[str, Any],
    tmp_path: Path,
) -> None:
    # Prepare
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # loopback only
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    seen: dict[str, Any] = {}
    try:
        driver.set_page_load_timeout(60)
        # Execute: sign in through the form
        driver.get(f"{admin_url}/console/runs")
        seen["login_url"] = driver.current_url
        driver.find_element(By.ID, "token").send_keys(admin_tokens[AdminRole.AUDITOR])
        driver.find_element(By.ID, "sign-in").click()
        # a form post's redirect may still be under way when click() returns: wait for it
        # (a bound on a hang, not on speed)
        WebDriverWait(driver, 120).until(lambda d: not d.current_url.endswith("/login"))
        seen["after_login"] = driver.current_url
        seen["cookie_visible_to_pages"] = driver.execute_script("return document.cookie;")
        seen["overview"] = driver.find_element(By.ID, "content").text
        seen["header_background"] = driver.execute_script(
            "return getComputedStyle(document.querySelector('header')).backgroundColor;"
        )
        # every page through the navigation bar
        for key, label in (
            ("nodes", "Nodes"),
            ("budgets", "Budgets"),
            ("models", "Models"),
            ("partners", "Partners"),
            ("audit", "Audit reports"),
            ("runs", "Runs"),
        ):
            driver.find_element(By.LINK_TEXT, label).click()
            seen[key] = driver.find_element(By.ID, "content").text
            seen[f"{key}_h1"] = driver.find_element(By.TAG_NAME, "h1").text
        # one run's page: the plot, drawn on the server
        driver.find_element(By.LINK_TEXT, "run-ok").click()
        seen["circles"] = driver.execute_script(
            "return Array.from(document.querySelectorAll('#ndcg-plot circle')).map(c => {"
            "  const box = c.getBoundingClientRect();"
            "  return {x: c.dataset.x, y: c.dataset.y, w: box.width, h: box.height,"
            "          top: box.top}; });"
        )
        seen["polyline"] = driver.execute_script(
            "return document.querySelector('#ndcg-plot polyline').getAttribute('points');"
        )
        seen["line_stroke"] = driver.execute_script(
            "return getComputedStyle(document.querySelector('#ndcg-plot .plot-line')).stroke;"
        )
        seen["resources"] = driver.execute_script(
            "return performance.getEntriesByType('resource').map(entry => entry.name);"
        )
        screenshot = driver.get_screenshot_as_png()
        seen["log"] = driver.get_log("browser")
        # sign out
        signed_in_at = driver.current_url
        driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
        WebDriverWait(driver, 120).until(lambda d: d.current_url != signed_in_at)
        seen["after_logout"] = driver.current_url
        driver.get(f"{admin_url}/console/nodes")
        seen["nodes_after_logout"] = driver.current_url
    finally:
        driver.quit()
    (tmp_path / "run-ok.png").write_bytes(screenshot)
    # Assert: the form signed in, the cookie is out of the pages' reach
    assert seen["login_url"] == f"{admin_url}/console/login"
    assert seen["after_login"] == f"{admin_url}/console/"
    assert seen["cookie_visible_to_pages"] == ""  # HttpOnly
    assert "2 enrolled, 1 revoked" in seen["overview"]
    assert seen["header_background"] == "rgb(21, 35, 59)"  # the same-origin stylesheet applied
    # real data on every page
    for member in MEMBERS:
        assert member in seen["nodes"]
    assert "revoked" in seen["nodes"].split(REVOKED, 1)[1].split("\n", 1)[0]
    assert "bank_b" in seen["budgets"]
    assert "near" in seen["budgets"]
    assert consortium["files"]["adapter.safetensors"][:16] in seen["models"]
    assert "intact" in seen["models"]
    assert "FEDEMBED_ADMIN_GATEWAY_URL" in seen["partners"]
    assert "audit-1" in seen["audit"]
    assert "mismatch" in seen["audit"]
    assert "run-ok" in seen["runs"]
    assert "run-empty" in seen["runs"]
    assert [seen[f"{k}_h1"] for k in ("nodes", "budgets", "models", "partners", "audit")] == [
        "Nodes",
        "Budgets",
        "Models",
        "Partners",
        "Audit reports",
    ]
    # the plot: one visible point per evaluated round, higher nDCG drawn higher
    assert [(c["x"], c["y"]) for c in seen["circles"]] == [
        (str(r), f"{v:.6g}") for r, v in NDCG.items()
    ]
    assert all(c["w"] > 0 and c["h"] > 0 for c in seen["circles"])
    tops = [c["top"] for c in seen["circles"]]
    assert tops == sorted(tops, reverse=True)
    assert len(seen["polyline"].split()) == len(NDCG)
    assert seen["line_stroke"] == "rgb(31, 95, 191)"
    # nothing from elsewhere, nothing blocked, no error
    assert seen["resources"]
    assert all(name.startswith(admin_url) for name in seen["resources"]), seen["resources"]
    assert not [e for e in seen["log"] if e.get("level") == "SEVERE"], seen["log"]
    # the screenshot shows a page, not a blank one
    image = Image.open(io.BytesIO((tmp_path / "run-ok.png").read_bytes())).convert("RGB")
    assert image.size[0] >= 1000
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 20
    assert (21, 35, 59) in {colour for _, colour in colours}  # the header bar
    assert seen["after_logout"] == f"{admin_url}/console/login"
    assert seen["nodes_after_logout"] == f"{admin_url}/console/login"
