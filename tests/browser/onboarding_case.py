#!/usr/bin/env python3
"""Onboarding the liaisons in the sandbox console, in headless Chromium at phone width.

Run by tests/api/sandbox_browser.rs against a real `tiaochu serve` (sandbox mode, the shipped
roster plus two staff members of 区住建局 without a role). The hotline head starts it with the
`启动 名单` shortcut; 区住建局's leader gets the chooser card and taps a person, and the
chooser under the chat then marks the new liaison; the head reads `名单 进度`. Screenshots
go to the artifacts directory (docs/onboarding-*.png are these).

Usage: onboarding_case.py BASE_URL ARTIFACTS_DIR
Environment: CHROMIUM, CHROMEDRIVER as for sandbox_case.py.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sandbox_case as sb  # noqa: E402  (reads the same BASE_URL and ARTIFACTS_DIR)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

ASK = "请指定本单位联络员"


def case(c):
    # 李小燕, the hotline head, has the onboarding shortcuts under the chat.
    c.become("李小燕")
    c.d.find_element(By.CSS_SELECTOR, "[data-send='启动 名单']").click()
    started = c.sees_message("个单位的分管领导指定联络员", "区住建局")
    assert "个单位已有联络员" in started, started
    c.shot("head-starts")

    # 保国钰 (区住建局's leader): the chooser card lists the unit's people, a button each.
    c.become("保国钰")
    c.card_shows(ASK, "赵建华", "孙丽")
    assert c.buttons(ASK) == ["设为联络员：赵建华", "设为联络员：孙丽"], c.buttons(ASK)
    c.shot("leader-chooser")
    c.tap(ASK, "设为联络员：赵建华")
    c.sees_message("调整了区住建局的名单", "赵建华（区住建局）设为联络员")
    c.shot("leader-chose")

    # The chooser under the chat (for a leader whose card is gone, or who was never asked)
    # lists the same people, the new liaison marked.
    c.become("保国钰")
    chooser = c.d.find_element(By.ID, "liaison-chooser")
    options = [o.text for o in Select(chooser.find_element(By.NAME, "name")).options]
    assert options == ["赵建华（现联络员）", "孙丽"], options

    # The head reads the progress: 区住建局 done, the others waiting, by name.
    c.become("李小燕")
    c.d.find_element(By.CSS_SELECTOR, "[data-send='名单 进度']").click()
    progress = c.sees_message("已指定 1 个单位", "区住建局：联络员 赵建华")
    assert "等待中" in progress, progress
    c.shot("head-progress")


def main():
    os.makedirs(sb.ARTIFACTS, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiaochu-chromium-") as profile:
        driver = sb.start_browser(profile)
        try:
            case(sb.Console(driver))
        finally:
            driver.quit()
    print("browser case: every step passed")


if __name__ == "__main__":
    main()
