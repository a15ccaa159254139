#!/usr/bin/env python3
"""The web dashboard in headless Chromium, logged in through the robot's one-time link.

Run by tests/api/dashboard.rs against the service in sandbox mode with one registered case. As
an inspector it sends 看板 in the sandbox chat, reads the link the robot answers with, opens it
and presses 登录; then checks the overview (the three target rates and the inline-SVG charts),
the case list and the case's timeline, and that the used link no longer works. Screenshots go
to the artifacts directory.

Usage: dashboard_case.py BASE_URL ARTIFACTS_DIR PERSON_ID CASE_NO
Environment: CHROMIUM (default /usr/bin/chromium), CHROMEDRIVER (default /usr/bin/chromedriver).
"""

import os
import re
import sys
import tempfile
from urllib.parse import quote

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE = sys.argv[1].rstrip("/")
ARTIFACTS = sys.argv[2]
PERSON = sys.argv[3]
CASE_NO = sys.argv[4]
WAIT = 20

# The same flags as the sandbox case: without the background-networking ones Chromium keeps
# dialling out into a closed network. A phone-sized window: the dashboard must read there.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=430,932",
]

shots = 0


def shot(d, name):
    global shots
    shots += 1
    d.save_screenshot(os.path.join(ARTIFACTS, f"{shots:02d}-{name}.png"))


def wait(d, what, check):
    def attempt(_):
        try:
            return check()
        except StaleElementReferenceException:
            return None

    try:
        return WebDriverWait(d, WAIT, poll_frequency=0.25).until(attempt)
    except TimeoutException:
        shot(d, "failed")
        raise AssertionError(f"timed out waiting for {what}; page:\n{d.find_element(By.TAG_NAME, 'body').text}")


def body(d):
    return d.find_element(By.TAG_NAME, "body").text


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    options = Options()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
        d = webdriver.Chrome(service=service, options=options)
        try:
            run(d)
        finally:
            d.quit()
    print("every step passed")


def run(d):
    # Without a session the dashboard shows only how to log in.
    d.get(BASE + "/dashboard")
    wait(d, "the login hint", lambda: "向机器人发送“看板”" in body(d))
    assert CASE_NO not in d.page_source
    shot(d, "not-logged-in")

    # 看板 in the sandbox chat; the robot answers 1:1 with the link.
    d.get(BASE + "/sandbox?as=" + quote(PERSON, safe=""))
    box = wait(d, "the chat input", lambda: d.find_element(By.ID, "input"))
    box.send_keys("看板")
    box.send_keys(Keys.ENTER)
    link = wait(
        d,
        "the login link in the chat",
        lambda: re.search(r"https?://\S+/dashboard/login\?token=[0-9a-f]{64}", body(d)),
    ).group(0)
    shot(d, "link-in-chat")

    d.get(link)
    wait(d, "the login button", lambda: d.find_element(By.ID, "login")).click()
    wait(d, "the overview", lambda: "概览" in d.title and "指标与目标" in body(d))
    text = body(d)
    for label in ["办结率", "响应率", "满意率", "目标 100%", "目标 ≥ 90%", "申请登记"]:
        assert label in text, f"overview lacks {label}"
    for chart in ["chart-rates", "chart-trend", "chart-response"]:
        assert d.find_elements(By.ID, chart), f"overview lacks the {chart} chart"
    shot(d, "overview")

    d.get(BASE + "/dashboard/units?sort=submitted&desc=1")
    wait(d, "the unit table", lambda: "区人社局" in d.find_element(By.ID, "units").text)
    shot(d, "units")

    d.get(BASE + "/dashboard/cases")
    wait(d, "the case list", lambda: CASE_NO in d.find_element(By.ID, "cases").text)
    shot(d, "cases")
    d.find_element(By.LINK_TEXT, CASE_NO).click()
    timeline = wait(d, "the timeline", lambda: d.find_element(By.ID, "timeline")).text
    for fact in ["办理经过", "提交申请", "期限"]:
        assert fact in timeline, f"timeline lacks {fact}:\n{timeline}"
    shot(d, "timeline")

    # The link was spent: opening it again and pressing 登录 is refused.
    d.delete_all_cookies()
    d.get(link)
    wait(d, "the login button", lambda: d.find_element(By.ID, "login")).click()
    wait(d, "the refusal", lambda: "已使用" in body(d))
    shot(d, "link-spent")


if __name__ == "__main__":
    main()
