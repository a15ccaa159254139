#!/usr/bin/env python3
"""Conformance: request bodies built by DingTalk's official OpenAPI models (PyPI
`alibabacloud-dingtalk`, the version docs/dingtalk-protocol.md §14 read: 2.2.65). Run by the
Rust test `conformance_models::official_model_bodies_are_accepted_by_the_fake_like_ours`.

Reads a JSON list of messages on stdin — each `{"name", "kind", ...inputs}`, the same inputs
the Rust test gives our own payload builders — builds each with the SDK's model class as a
DingTalk developer would (msgParam as `json.dumps` of the template's fields, as DingTalk's docs
show), validates it with the model's own `validate()`, and prints one JSON object on stdout:
`{"sdk_version": "...", "bodies": {name: request.to_map()}}`. The Rust test POSTs the bodies to
the fake and compares them with ours. Exits 2 on an unknown kind or a model that does not
validate, with the reason on stderr.
"""

import json
import sys
import urllib.parse
from importlib import metadata

from alibabacloud_dingtalk.card_1_0 import models as card
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth2
from alibabacloud_dingtalk.robot_1_0 import models as robot


def dtmd(command):
    # §6.5: every byte but RFC 3986 unreserved characters is percent-encoded.
    return "dtmd://dingtalkclient/sendMessage?content=" + urllib.parse.quote(command, safe="")


def msg_param(m):
    key = m["msg_key"]
    if key == "sampleText":
        param = {"content": m["content"]}
    elif key == "sampleMarkdown":
        param = {"title": m["title"], "text": m["text"]}
    elif key == "sampleActionCard":
        (label, command), = m["buttons"]
        param = {"title": m["title"], "text": m["text"], "singleTitle": label,
                 "singleURL": dtmd(command)}
    elif key.startswith("sampleActionCard"):
        param = {"title": m["title"], "text": m["text"]}
        for i, (label, command) in enumerate(m["buttons"], start=1):
            param[f"actionTitle{i}"] = label
            param[f"actionURL{i}"] = dtmd(command)
    else:
        raise ValueError(f"unknown msgKey {key}")
    return json.dumps(param, ensure_ascii=False)


def card_create(m):
    request = card.CreateAndDeliverRequest(
        card_template_id=m["template_id"],
        out_track_id=m["out_track_id"],
        card_data=card.CreateAndDeliverRequestCardData(card_param_map=m["params"]),
        user_id_type=1,
    )
    if m.get("private"):
        request.private_data = {
            user: card.PrivateDataValue(card_param_map=params)
            for user, params in m["private"].items()
        }
    if m.get("callback_route_key"):
        request.callback_type = "HTTP"
        request.callback_route_key = m["callback_route_key"]
    else:
        request.callback_type = "STREAM"
    if "group" in m:
        request.open_space_id = "dtv1.card//IM_GROUP." + m["group"]
        request.im_group_open_space_model = card.CreateAndDeliverRequestImGroupOpenSpaceModel(
            support_forward=False)
        deliver = card.CreateAndDeliverRequestImGroupOpenDeliverModel(robot_code=m["robot_code"])
        if m.get("at"):
            deliver.at_user_ids = m["at"]
        if m.get("recipients"):
            deliver.recipients = m["recipients"]
        request.im_group_open_deliver_model = deliver
    else:
        request.open_space_id = "dtv1.card//IM_ROBOT." + m["user"]
        request.im_robot_open_space_model = card.CreateAndDeliverRequestImRobotOpenSpaceModel(
            support_forward=False)
        request.im_robot_open_deliver_model = card.CreateAndDeliverRequestImRobotOpenDeliverModel(
            space_type="IM_ROBOT", robot_code=m["robot_code"])
    return request


def build(m):
    kind = m["kind"]
    if kind == "token":
        return oauth2.GetAccessTokenRequest(app_key=m["app_key"], app_secret=m["app_secret"])
    if kind == "batch_send":
        return robot.BatchSendOTORequest(robot_code=m["robot_code"], user_ids=m["user_ids"],
                                         msg_key=m["msg_key"], msg_param=msg_param(m))
    if kind == "group_send":
        return robot.OrgGroupSendRequest(robot_code=m["robot_code"],
                                         open_conversation_id=m["open_conversation_id"],
                                         msg_key=m["msg_key"], msg_param=msg_param(m))
    if kind == "card_create":
        return card_create(m)
    if kind == "card_update":
        return card.UpdateCardRequest(
            out_track_id=m["out_track_id"],
            card_data=card.UpdateCardRequestCardData(card_param_map=m["params"]),
            card_update_options=card.UpdateCardRequestCardUpdateOptions(
                update_card_data_by_key=True, update_private_data_by_key=False),
            user_id_type=1,
        )
    raise ValueError(f"unknown kind {kind}")


def main():
    messages = json.load(sys.stdin)
    bodies = {}
    for m in messages:
        try:
            request = build(m)
            request.validate()
        except Exception as e:  # noqa: BLE001  (any failure is reported to the Rust test)
            print(f"{m.get('name')}: {type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(2)
        bodies[m["name"]] = request.to_map()
    json.dump({"sdk_version": metadata.version("alibabacloud-dingtalk"), "bodies": bodies},
              sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
