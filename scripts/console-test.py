#!/usr/bin/env python3
"""Drives Jelly's web console in a real headless Chromium (selenium + chromedriver) against a
running jelly serve with data in it; run by ConsoleTests (Tests/JellyServerTests).

  scripts/console-test.py URL ADMIN_KEY SERVER_KEY SCREENSHOT_DIR

Expects: partition player-1 locked by gs-1 holding `progress` (a Godot Variant with a Vector2) and
`profile` (JSON); partition player-2 with one object. Prints PASS at the end, or FAIL lines and
exits 1. Screenshots of the main views go to SCREENSHOT_DIR."""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

url, admin_key, server_key, shots = sys.argv[1:5]
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL", what, flush=True)


options = Options()
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"]:
    options.add_argument(arg)
options.binary_location = "/usr/bin/chromium"
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 15)


def text(element_id):
    return driver.find_element(By.ID, element_id).text


def sign_in(key):
    driver.get(url + "/console")
    driver.execute_script("sessionStorage.clear()")
    driver.get(url + "/console")
    wait.until(EC.visibility_of_element_located((By.ID, "key")))
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login-button").click()
    wait.until(EC.visibility_of_element_located((By.ID, "main")))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")) >= 2)


def open_partition(name):
    row = driver.find_element(By.CSS_SELECTOR, '#partitions tbody tr[data-partition="%s"]' % name)
    row.click()
    wait.until(lambda d: d.find_element(By.ID, "partition-name").text == name)
    wait.until(lambda d: all(p.text != "…" for p in d.find_elements(By.CSS_SELECTOR, "#objects pre.preview")) and
               len(d.find_elements(By.CSS_SELECTOR, "#objects tbody tr")) > 0)


try:
    # A wrong key is refused with a message, and the form stays.
    driver.get(url + "/console")
    wait.until(EC.visibility_of_element_located((By.ID, "key")))
    driver.find_element(By.ID, "key").send_keys("not-a-key")
    driver.find_element(By.ID, "login-button").click()
    wait.until(lambda d: "refused" in d.find_element(By.ID, "login-error").text)

    # A game-server key: everything readable, nothing to break.
    sign_in(server_key)
    names = [r.get_attribute("data-partition") for r in driver.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")]
    check(names[:2] == ["player-1", "player-2"], "partitions listed in order: %s" % names)
    first = driver.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")[0].text
    check("gs-1" in first and "2" in first, "player-1's row shows its 2 objects and its holder: %r" % first)
    check("server" in text("whoami"), "whoami says server: %r" % text("whoami"))
    open_partition("player-1")
    rows = {r.get_attribute("data-key"): r.text for r in driver.find_elements(By.CSS_SELECTOR, "#objects tbody tr")}
    check("(godot)" in rows.get("progress", "") and "Vector2" in rows.get("progress", ""), "progress decoded as a Godot Variant: %r" % rows.get("progress"))
    check("(json)" in rows.get("profile", "") and '"level"' in rows.get("profile", ""), "profile shown as JSON: %r" % rows.get("profile"))
    check("locked by gs-1" in text("lock"), "the lock's holder: %r" % text("lock"))
    check(not driver.find_element(By.ID, "break-lock").is_displayed(), "no break button for a server key")
    time.sleep(0.6)
    expiry1 = text("lock")
    time.sleep(1.2)
    check(text("lock") != expiry1, "the expiry counts down: %r then %r" % (expiry1, text("lock")))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#feed li")) >= 2)
    check(any("progress" in li.text for li in driver.find_elements(By.CSS_SELECTOR, "#feed li")), "the change feed lists progress")
    # The server panel's rates come from /metrics every 2 s.
    wait.until(lambda d: d.find_element(By.ID, "saves-rate").text not in ("", "–"))
    driver.save_screenshot(shots + "/console-partition.png")

    # An admin key: break the lock.
    sign_in(admin_key)
    check("admin" in text("whoami"), "whoami says admin: %r" % text("whoami"))
    driver.save_screenshot(shots + "/console-partitions.png")
    open_partition("player-1")
    button = driver.find_element(By.ID, "break-lock")
    check(button.is_displayed(), "an admin sees the break button")
    button.click()
    wait.until(lambda d: "unlocked" in d.find_element(By.ID, "lock").text)
    check(not driver.find_element(By.ID, "break-lock").is_displayed(), "no break button once unlocked")
except Exception as e:  # noqa: BLE001 - report whatever stopped the walk
    failures.append(repr(e))
    print("FAIL", repr(e), flush=True)
    try:
        driver.save_screenshot(shots + "/console-failure.png")
    except Exception:  # noqa: BLE001
        pass
finally:
    driver.quit()

if failures:
    sys.exit(1)
print("PASS", flush=True)
