#!/usr/bin/env python3
"""Conformance: DingTalk's official Python Stream SDK (PyPI `dingtalk-stream`, the version
docs/dingtalk-protocol.md §14 read: 0.24.3) against tiaochu's fake Stream gateway
(tests/api/fake_stream.rs). Run by the Rust test
`stream::the_official_python_sdk_acks_the_fakes_robot_message_and_card_callback`, which pushes
one robot message and one card callback and checks the SDK's ACKs on the fake's side.

The SDK opens its connection at DINGTALK_OPENAPI_ENDPOINT (read when the module is imported),
so the variable is set before the import. The script answers the robot message with the SDK's
plain OK and the card callback with a card update, prints what the SDK parsed as one JSON line
on stdout and exits 0; it exits 1 if both did not arrive within --timeout seconds.
"""

import argparse
import asyncio
import json
import os
import signal
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True, help="the fake's http://127.0.0.1:port")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    # Whatever the SDK does, never outlive the test that started us.
    signal.alarm(int(args.timeout) + 10)

    os.environ["DINGTALK_OPENAPI_ENDPOINT"] = args.api_base
    import dingtalk_stream  # noqa: E402  (the endpoint is read at import time)
    from dingtalk_stream import AckMessage, CallbackHandler, ChatbotHandler, ChatbotMessage
    from dingtalk_stream.card_callback import CardCallbackMessage

    report = {}
    done = asyncio.Event()

    def record(key, value):
        report[key] = value
        if "robot" in report and "card" in report:
            done.set()

    class Robot(ChatbotHandler):
        async def process(self, callback):
            message = ChatbotMessage.from_dict(callback.data)
            record("robot", {
                "message_id": message.message_id,
                "text": message.get_text_list(),
                "sender_staff_id": message.sender_staff_id,
                "conversation_type": message.conversation_type,
            })
            return AckMessage.STATUS_OK, "OK"

    class Card(CallbackHandler):
        async def process(self, callback):
            message = CardCallbackMessage.from_dict(callback.data)
            private = message.content.get("cardPrivateData", {})
            record("card", {
                "out_track_id": message.card_instance_id,
                "user_id": message.user_id,
                "action_ids": private.get("actionIds"),
                "params": private.get("params"),
            })
            return AckMessage.STATUS_OK, {
                "cardUpdateOptions": {"updateCardDataByKey": True},
                "cardData": {"cardParamMap": {"status": "已同意"}},
            }

    client = dingtalk_stream.DingTalkStreamClient(
        dingtalk_stream.Credential(args.client_id, args.client_secret))
    # The SDK finds its local IP by routing a UDP socket towards a public address; the fake is on
    # loopback, so skip that lookup.
    client.get_host_ip = lambda: "127.0.0.1"
    client.register_callback_handler(ChatbotMessage.TOPIC, Robot())
    client.register_callback_handler(CallbackHandler.TOPIC_CARD_CALLBACK, Card())

    async def run() -> bool:
        asyncio.create_task(client.start())
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except asyncio.TimeoutError:
            return False
        # The SDK sends each ACK right after process() returns; let the last one leave.
        await asyncio.sleep(0.5)
        return True

    # DingTalkStreamClient.start() catches CancelledError and reconnects, so it cannot be
    # cancelled: run until our own coroutine is done, then leave without tearing the loop down.
    ok = asyncio.new_event_loop().run_until_complete(run())
    print(json.dumps(report, ensure_ascii=False), flush=True)
    if not ok:
        print("timed out waiting for the robot message and the card callback",
              file=sys.stderr, flush=True)
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
