#!/usr/bin/env python3
"""A whole joint-mediation case in the sandbox console, in headless Chromium.

Run by tests/api/sandbox_browser.rs against a real `tiaochu serve` (sandbox mode, a roster with
liaisons for 区人社局, 区住建局 and 区城市管理局). As different people it pastes an application,
watches a deadline breach after moving the clock, claims and decides the case, accepts as both
cooperating units, posts progress, completes the case and records satisfaction, asserting at
each step what that person sees. Screenshots go to the artifacts directory.

Usage: sandbox_case.py BASE_URL ARTIFACTS_DIR
Environment: CHROMIUM (default /usr/bin/chromium), CHROMEDRIVER (default /usr/bin/chromedriver).
"""

import os
import re
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE = sys.argv[1].rstrip("/")
ARTIFACTS = sys.argv[2]
T = "DH2026110300017"
WAIT = 20

APPLICATION = f"""工单编号：{T}
工单标题：反映某建筑公司拖欠薪资的问题
首接单位：区人社局
已采取措施：已向涉事建筑企业取得联系，核实拖欠薪资的基本情况，企业方承认存在拖欠行为。
办理难点：涉诉企业承接区城建公司项目，工程款拨付与住建审批相关，区人社局一家无法办理。
需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。"""

# The flags this machine needs (the environment notes, "Known to work"): without the
# background-networking ones Chromium keeps dialling out into a closed network.
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


def start_browser(profile):
    options = Options()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


class Console:
    """The sandbox page as one person at a time sees it."""

    def __init__(self, driver):
        self.d = driver
        self.shots = 0

    def wait(self, what, check, timeout=WAIT):
        """Waits until `check()` is truthy. The page redraws the chat when it changes, so an
        element found a moment ago may be gone: that is a retry, not a failure."""

        def attempt(_):
            try:
                return check()
            except StaleElementReferenceException:
                return None

        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.25).until(attempt)
        except TimeoutException:
            self.shot("failed")
            raise AssertionError(f"timed out waiting for {what}; chat:\n{self.chat_text()}")

    def shot(self, name):
        self.shots += 1
        path = os.path.join(ARTIFACTS, f"{self.shots:02d}-{name}.png")
        self.d.save_screenshot(path)

    def chat_text(self):
        return self.d.execute_script(
            "var c = document.getElementById('chat');"
            "return (c || document.body).innerText;"
        )

    def become(self, name):
        """Chooses `name` on the roster page, using its search box."""
        self.d.get(BASE + "/sandbox")
        search = self.d.find_element(By.ID, "search")
        search.send_keys(name)
        people = [
            a
            for a in self.d.find_elements(By.CSS_SELECTOR, "a.person")
            if a.is_displayed()
        ]
        match = [a for a in people if a.find_element(By.TAG_NAME, "b").text == name]
        assert len(match) == 1, f"search for {name} shows {[a.text for a in people]}"
        match[0].click()
        self.wait(f"the chat of {name}", lambda: self.d.find_element(By.ID, "me").text == name)
        self.wait("the chat to load", lambda: "正在加载" not in self.chat_text())

    def sees(self, *texts):
        """Waits until the chat shows every one of `texts`."""
        self.wait(f"{texts}", lambda: all(t in self.chat_text() for t in texts))

    def bot_messages(self):
        return self.d.execute_script(
            "return Array.from(document.querySelectorAll('.msg.bot')).map(m => m.innerText);"
        )

    def sees_message(self, *texts):
        """Waits until one robot message shows every one of `texts`; returns its text."""

        def found():
            for m in self.bot_messages():
                if all(t in m for t in texts):
                    return m
            return None

        return self.wait(f"a message with {texts}", found)

    def card(self, title):
        cards = [
            c
            for c in self.d.find_elements(By.CSS_SELECTOR, ".card")
            if title in c.find_element(By.CSS_SELECTOR, ".card-title").text
        ]
        assert len(cards) <= 1, f"a card updates in place, but {len(cards)} show {title}"
        return cards[0] if cards else None

    def card_shows(self, title, *texts):
        """Waits until the card titled `title` shows every one of `texts`; returns the card."""

        def found():
            c = self.card(title)
            return c if c is not None and all(t in c.text for t in texts) else None

        return self.wait(f"card {title} with {texts}", found)

    def buttons(self, title):
        """The labels of the card's buttons (retried while the chat redraws)."""

        def read():
            c = self.card(title)
            return [b.text for b in c.find_elements(By.CSS_SELECTOR, ".card-btn")] if c else []

        return self.wait(f"the buttons of {title}", lambda: (read(),))[0]

    def tap(self, title, label):
        def click():
            c = self.card(title)
            if c is None:
                return False
            for b in c.find_elements(By.CSS_SELECTOR, ".card-btn"):
                if b.text == label:
                    b.click()
                    return True
            return False

        self.wait(f"button {label} on {title}", click)

    def input_value(self):
        return self.d.find_element(By.ID, "input").get_attribute("value")

    def paste_and_send(self, text):
        """Puts `text` in the input box as a paste would (new lines and all), then Enter."""
        box = self.d.find_element(By.ID, "input")
        self.d.execute_script("arguments[0].value = arguments[1];", box, text)
        box.send_keys(Keys.ENTER)
        self.wait("the input box to clear after sending", lambda: self.input_value() == "")

    def type_and_send(self, text):
        box = self.d.find_element(By.ID, "input")
        box.clear()
        box.send_keys(text)
        box.send_keys(Keys.ENTER)
        self.wait("the input box to clear after sending", lambda: self.input_value() == "")

    def open_clock(self):
        panel = self.d.find_element(By.ID, "clock")
        if panel.get_attribute("open") is None:
            panel.find_element(By.TAG_NAME, "summary").click()
        self.wait("the clock", lambda: "…" not in self.d.find_element(By.ID, "clock-now").text)

    def close_clock(self):
        panel = self.d.find_element(By.ID, "clock")
        if panel.get_attribute("open") is not None:
            panel.find_element(By.TAG_NAME, "summary").click()

    def clock(self):
        return (
            self.d.find_element(By.ID, "clock-now").text,
            self.d.find_element(By.ID, "clock-working").text,
        )


def run(case_steps, artifacts):
    """Drives one browser case in a fresh headless Chromium profile."""
    os.makedirs(artifacts, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiaochu-chromium-") as profile:
        driver = start_browser(profile)
        try:
            case_steps(Console(driver))
        finally:
            driver.quit()
    print("browser case: every step passed")


def main():
    run(case, ARTIFACTS)


def case(c):
    review = f"联合调处申请 {T}"

    # 王联络 (区人社局 liaison) starts in working time, so deadlines count from now on.
    c.become("王联络")
    c.sees("还没有消息")
    c.open_clock()
    if c.clock()[1] != "工作时间":
        c.d.find_element(By.ID, "to-working").click()
        c.wait("working time", lambda: c.clock()[1] == "工作时间")
    assert not c.d.find_element(By.ID, "to-working").is_displayed()
    c.close_clock()
    c.d.find_element(By.CSS_SELECTOR, "[data-send='模板']").click()
    c.sees_message("联合调处申请模板", "工单编号：DH*****")
    c.paste_and_send(APPLICATION)
    receipt = c.sees_message("申请已登记", T)
    assert re.search(r"TC-\d{4}-0001", receipt), receipt
    assert "拟协调单位：区住建局、区城市管理局" in receipt, receipt
    mine = [m.text for m in c.d.find_elements(By.CSS_SELECTOR, ".msg.me")]
    assert any("工单标题：反映某建筑公司拖欠薪资的问题" in m for m in mine), mine
    c.shot("liaison-submits")

    # 孟艳秋 (inspector) has the review card; a working day later the 1-hour review clock has
    # been breached and the scheduler says so at once.
    c.become("孟艳秋")
    c.card_shows(review, "首接单位：区人社局", "开始审核")
    assert c.buttons(review) == ["开始审核"], c.buttons(review)
    before = c.clock()[0]
    c.open_clock()
    c.d.find_element(By.CSS_SELECTOR, "[data-advance='working_days']").click()
    c.wait("the clock to move", lambda: c.clock()[0] != before)
    assert "已拨快" in c.d.find_element(By.ID, "clock-moved").text
    c.sees_message("已超过期限", "启动审核")
    c.close_clock()
    c.shot("inspector-breach-after-a-working-day")

    # Claiming needs no arguments: the button sends at once and the card updates in place.
    c.tap(review, "开始审核")
    c.card_shows(review, "孟艳秋（区12345热线）", "开始审核")
    c.wait(
        "the decision buttons",
        lambda: c.buttons(review) == ["联合调处", "独立办理", "退回补充", "提请市级协调"],
    )
    meta = c.wait(
        "the card's header",
        lambda: c.card(review).find_element(By.XPATH, "..").find_element(By.CSS_SELECTOR, ".meta").text,
    )
    assert "已更新" in meta, meta
    c.shot("inspector-claims")

    # Deciding needs the directions: the button only fills the input box.
    c.tap(review, "联合调处")
    filled = c.input_value()
    assert filled == f"联合 {T} 区住建局：协同方向及重点；区城市管理局：协同方向及重点", filled
    c.paste_and_send(f"联合 {T} 区住建局：核查项目审批及工程款拨付；区城市管理局：协助现场核查")
    c.card_shows(review, "决定联合调处（区住建局、区城市管理局）")
    c.wait("no buttons after the decision", lambda: c.buttons(review) == [])
    c.shot("inspector-decides-joint")

    # The other inspector sees who claimed and decided, without buttons.
    c.become("李德艳")
    c.card_shows(review, "孟艳秋（区12345热线）", "决定联合调处")
    assert c.buttons(review) == [], c.buttons(review)

    # 赵联络 (区住建局) accepts: the button fills the form of the command, he writes the contact.
    coordination_zj = f"协办请求 区住建局 · {T}"
    c.become("赵联络")
    c.card_shows(coordination_zj, "协同方向及重点：核查项目审批及工程款拨付")
    assert c.buttons(coordination_zj) == ["接受协办", "提出异议"], c.buttons(coordination_zj)
    c.shot("cooperating-unit-gets-request")
    c.tap(coordination_zj, "接受协办")
    assert c.input_value().startswith(f"接受 {T} 联系人："), c.input_value()
    c.paste_and_send(f"接受 {T} 联系人：赵建 职务：股长 电话：13900000000 协助：现场核查、政策解释")
    c.card_shows(coordination_zj, "赵联络（区住建局）", "接受协办，联系人 赵建")
    c.wait("no buttons after accepting", lambda: c.buttons(coordination_zj) == [])

    # 钱联络 (区城市管理局): markup typed into the chat is shown as text, never run.
    coordination_cg = f"协办请求 区城市管理局 · {T}"
    c.become("钱联络")
    probe = "<img src=x onerror=\"document.title='pwned'\"><b>粗体</b>"
    c.type_and_send(probe)
    c.sees(probe)
    assert c.d.title != "pwned" and not c.d.find_elements(By.CSS_SELECTOR, "#chat img, #chat b")
    c.tap(coordination_cg, "接受协办")
    c.paste_and_send(f"接受 {T} 联系人：钱城 职务：科长 电话：13900000001 协助：现场核查")
    c.sees_message("联合处置开始", "区人社局")

    # 王联络 gets every contact in one message and posts progress by typing the command.
    c.become("王联络")
    contacts = c.sees_message("配合单位联系人已齐")
    for expected in ["赵建", "13900000000", "钱城", "13900000001"]:
        assert expected in contacts, contacts
    c.shot("first-unit-gets-contacts")
    c.type_and_send(f"进展 {T} 已约谈企业负责人，承诺本周内付清")

    c.become("赵联络")
    c.sees_message("办理进展", "已约谈企业负责人，承诺本周内付清")
    c.shot("cooperating-unit-sees-progress")

    c.become("王联络")
    c.type_and_send(f"办结 {T} 过程：联合约谈 措施：督促企业足额支付 群众反馈：诉求人表示满意")

    c.become("孟艳秋")
    c.sees_message("已办结", "诉求人表示满意")
    c.type_and_send(f"满意度 {T} 满意")
    c.sees_message("已结案", "群众满意度：满意")

    c.become("王联络")
    c.sees_message("已结案", "群众满意度：满意")
    c.type_and_send(f"查询 {T}")
    c.sees_message("已结案", "办理经过")
    c.shot("first-unit-case-closed")


if __name__ == "__main__":
    main()
