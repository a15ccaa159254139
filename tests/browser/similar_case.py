#!/usr/bin/env python3
"""Similar past cases on the inspector's review card (issue 18), in headless Chromium.

Run by tests/api/sandbox_browser.rs against a real `tiaochu serve` (sandbox mode, a roster with
liaisons for 区人社局, 区住建局 and 区城市管理局). The set-up drives a past case about unpaid wages
through the sandbox's own send route, as each person would type it: registered, decided joint
with 区住建局 and 区城市管理局, accepted, completed four working days later, rated and marked
typical. Then 王联络 pastes a new application about the same problem asking only for 区住建局,
and 孟艳秋's review card shows the past case and the unit that helped then. Screenshots go to the
artifacts directory; 02-inspector-sees-similar-cases.png is docs/sandbox-similar.png.

Usage: similar_case.py BASE_URL ARTIFACTS_DIR
Environment: CHROMIUM (default /usr/bin/chromium), CHROMEDRIVER (default /usr/bin/chromedriver).
"""

import json
import sys
import urllib.error
import urllib.request

from selenium.webdriver.common.by import By

from sandbox_case import APPLICATION, BASE, T, run

ARTIFACTS = sys.argv[2]
PAST = "DH2026100800021"
RS = "rs-liaison"
ZJ = "zj-liaison"
CG = "local:区城市管理局:钱联络"
MENG = "local:区12345热线:孟艳秋"

PAST_APPLICATION = f"""工单编号：{PAST}
工单标题：反映某劳务公司拖欠农民工工资的问题
首接单位：区人社局
已采取措施：已约谈劳务公司负责人，核实拖欠农民工工资的情况，企业以工程款未拨付为由拖延。
办理难点：工程款拨付与住建审批相关，工地现场需城管配合核查，区人社局一家无法办理。
需协调部门及事由：区住建局核查工程款拨付；区城市管理局协助现场核查。
请示分管领导相关情况：已向分管领导汇报，分管领导已同意。"""


def post(path, body):
    request = urllib.request.Request(
        BASE + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        assert response.status == 200, response.status
        return json.load(response)


def to_working_time():
    """Moves the sandbox clock to the next working period; already in one (the sandbox runs on
    the wall clock plus its offset, so it depends on when the test runs) is fine as it is."""
    try:
        post("/sandbox/clock", {"unit": "to_working", "amount": 0})
    except urllib.error.HTTPError as e:
        answer = json.load(e)
        if e.code != 400 or "已在工作时间内" not in answer.get("error", ""):
            raise


def say(person, text):
    post("/sandbox/send", {"as": person, "text": text})


def main():
    run(case, ARTIFACTS)


def case(c):
    # The past case, in working time so its deadlines count from then.
    to_working_time()
    say(RS, PAST_APPLICATION)
    say(MENG, f"审核 {PAST}")
    say(MENG, f"联合 {PAST} 区住建局：核查工程款拨付；区城市管理局：协助现场核查")
    say(ZJ, f"接受 {PAST} 联系人：赵建 职务：股长 电话：13900000000 协助：数据共享、政策解释")
    say(CG, f"接受 {PAST} 联系人：钱城 职务：股长 电话：13900000001 协助：现场核查")
    post("/sandbox/clock", {"unit": "working_days", "amount": 4})
    say(RS, f"办结 {PAST} 过程：联合约谈 措施：住建督促拨付工程款 群众反馈：工资已结清")
    say(MENG, f"满意度 {PAST} 满意")
    say(MENG, f"典型 {PAST} 人社牵头、住建督促拨款，一周内结清欠薪")
    c.become("孟艳秋")
    c.sees_message("已标记典型案例")
    c.shot("past-case-marked-typical")

    # The new application about the same problem asks only for 区住建局.
    c.become("王联络")
    c.paste_and_send(
        APPLICATION.replace(
            "需协调部门及事由：区住建局核查项目审批及工程款拨付；区城市管理局协助现场核查。",
            "需协调部门及事由：区住建局核查项目审批及工程款拨付。",
        )
    )
    c.sees_message("申请已登记", T)

    review = f"联合调处申请 {T}"
    c.become("孟艳秋")
    card = c.card_shows(
        review,
        "类似案例",
        PAST,
        "【典型】",
        "典型经验：人社牵头、住建督促拨款",
        "类似案例中协办过、本次未列出的单位：区城市管理局",
    )
    # The similar cases at the top of the phone screen, the card's title just above them.
    heading = [
        e for e in card.find_elements(By.TAG_NAME, "strong") if e.text.startswith("类似案例")
    ]
    assert heading, card.text
    c.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", heading[0])
    c.shot("inspector-sees-similar-cases")

    # The hotline asks for more; a liaison may not.
    c.type_and_send(f"相似 {T}")
    c.sees_message("最相似的往期案例", PAST)
    c.become("王联络")
    c.type_and_send(f"相似 {T}")
    c.sees_message("往期案例仅供区12345热线")
    c.shot("liaison-refused")


if __name__ == "__main__":
    main()
