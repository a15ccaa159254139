//! Dispatch: turns what a decision says to people (rendered messages, cards) into outbox rows
//! holding the exact bytes the transport will send — DingTalk OpenAPI bodies in `http` and
//! `stream` mode, sandbox rows (shown on the local sandbox page) in `sandbox` mode. The engine
//! writes these rows in the decision's own transaction.
//!
//! A person without a DingTalk `staff_id` cannot be reached in DingTalk: their row is written
//! anyway and dead-lettered at once with the reason, so the admin sees what did not arrive.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::json;

use crate::card_secrets::CardSecrets;
use crate::dingtalk::api::Channel;
use crate::dingtalk::inbound::{ConversationKind, RobotMessage};
use crate::dingtalk::payload::{self, CardCallback, CardCreate, CardSpace, PayloadError};
use crate::messages::card::{CardContent, card_params};
use crate::messages::escape::md_text;
use crate::messages::notify::Rendered;
use crate::roster::Person;
use crate::settings::{DingtalkMode, DingtalkSettings};

/// One row to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub channel: Channel,
    pub target: String,
    pub payload: Vec<u8>,
    /// Set when the row cannot be delivered at all; the engine dead-letters it at once.
    pub undeliverable: Option<String>,
}

/// How messages leave, from `[dingtalk]`.
#[derive(Debug, Clone)]
pub struct Dispatch {
    mode: DingtalkMode,
    robot_code: String,
    card_template_id: String,
    card_callback_route_key: String,
    /// Makes the card instance ids unguessable (see [`CardSecrets::instance_id`]).
    card_secrets: CardSecrets,
}

impl Dispatch {
    pub fn from_settings(s: &DingtalkSettings, card_secrets: CardSecrets) -> Dispatch {
        // An internal app's robotCode is normally its AppKey (protocol reference §0).
        let robot_code = if s.robot_code.is_empty() {
            s.app_key.clone()
        } else {
            s.robot_code.clone()
        };
        Dispatch {
            mode: s.mode,
            robot_code,
            card_template_id: s.card_template_id.clone(),
            card_callback_route_key: s.card_callback_route_key.clone(),
            card_secrets,
        }
    }

    pub fn mode(&self) -> DingtalkMode {
        self.mode
    }

    /// The secrets card instance ids are made with; a tap's `outTrackId` is checked against them.
    pub fn card_secrets(&self) -> &CardSecrets {
        &self.card_secrets
    }

    pub fn robot_code(&self) -> &str {
        &self.robot_code
    }

    /// Whether cards go through the card platform (a template is configured) rather than as
    /// ActionCard messages whose buttons send text commands.
    pub fn uses_card_template(&self) -> bool {
        self.mode != DingtalkMode::Sandbox && !self.card_template_id.is_empty()
    }

    /// A notification to one person.
    pub fn message(&self, to: &Person, rendered: &Rendered) -> Outgoing {
        if self.mode == DingtalkMode::Sandbox {
            return sandbox(to.id(), rendered, None);
        }
        let Some(staff_id) = reachable(to) else {
            return unreachable(to, rendered, None);
        };
        match payload::batch_send_markdown(
            &self.robot_code,
            std::slice::from_ref(&staff_id),
            &rendered.title,
            &rendered.markdown,
        ) {
            Ok(body) => Outgoing {
                channel: Channel::RobotBatch,
                target: staff_id,
                payload: body,
                undeliverable: None,
            },
            Err(e) => dead(to, rendered, None, e.to_string()),
        }
    }

    /// The answer to a robot message, routed back to its sender: in a group, through the
    /// message's session webhook while it is usable (@ the sender); otherwise in the sender's
    /// 1:1 chat with the robot — the roster `person` when known, else the sender's staff id. In
    /// the sandbox, the sender's console. `None` when there is no way back (no staff id outside
    /// a group). `received_at` stands in for a webhook expiry DingTalk did not state.
    pub fn reply(
        &self,
        message: &RobotMessage,
        received_at: Timestamp,
        person: Option<&Person>,
        rendered: &Rendered,
        now: Timestamp,
    ) -> Result<Option<Outgoing>, PayloadError> {
        let sender_id = message.sender_staff_id().unwrap_or_default().to_string();
        if self.mode == DingtalkMode::Sandbox {
            return Ok(Some(match person {
                Some(p) => self.message(p, rendered),
                None => sandbox(&sender_id, rendered, None),
            }));
        }
        if let Some(hook) = message.session_webhook().filter(|h| {
            h.usable_at(now) && message.conversation_kind() == Some(ConversationKind::Group)
        }) {
            let at: Vec<String> = Some(sender_id)
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect();
            return Ok(Some(Outgoing {
                channel: Channel::SessionReply,
                target: payload::session_target(
                    hook.url,
                    // Without a stated expiry, assume the shortest life seen (90 min after the
                    // message) less a margin: a late reply goes 1:1 instead of failing.
                    hook.expires_at
                        .unwrap_or(received_at + jiff::SignedDuration::from_mins(60)),
                ),
                payload: payload::session_reply_markdown(&rendered.title, &rendered.markdown, &at),
                undeliverable: None,
            }));
        }
        if let Some(p) = person {
            return Ok(Some(self.message(p, rendered)));
        }
        if sender_id.is_empty() {
            return Ok(None);
        }
        Ok(Some(Outgoing {
            channel: Channel::RobotBatch,
            target: sender_id.clone(),
            payload: payload::batch_send_markdown(
                &self.robot_code,
                std::slice::from_ref(&sender_id),
                &rendered.title,
                &rendered.markdown,
            )?,
            undeliverable: None,
        }))
    }

    /// A new card for one person. Without a template the card is an ActionCard whose buttons
    /// send the equivalent text commands (1:1 chat), or a plain message when it has no buttons.
    pub fn card(&self, card_key: &str, to: &Person, content: &CardContent) -> Outgoing {
        let rendered = card_as_message(content);
        if self.mode == DingtalkMode::Sandbox {
            return sandbox(to.id(), &rendered, Some((card_key, content)));
        }
        let Some(staff_id) = reachable(to) else {
            return unreachable(to, &rendered, Some((card_key, content)));
        };
        if self.uses_card_template() {
            let out_track_id = self.card_secrets.instance_id(card_key, &staff_id);
            let params = card_params(content);
            let callback =
                if self.mode == DingtalkMode::Stream || self.card_callback_route_key.is_empty() {
                    CardCallback::Stream
                } else {
                    CardCallback::Http {
                        route_key: &self.card_callback_route_key,
                    }
                };
            let body = payload::card_create(&CardCreate {
                template_id: &self.card_template_id,
                out_track_id: &out_track_id,
                robot_code: &self.robot_code,
                space: CardSpace::Robot { user_id: &staff_id },
                callback,
                params: &params,
                private: &BTreeMap::new(),
            });
            return Outgoing {
                channel: Channel::CardCreate,
                target: out_track_id,
                payload: body,
                undeliverable: None,
            };
        }
        let buttons: Vec<(&str, &str)> = content
            .buttons
            .iter()
            .take(payload::MAX_ACTION_CARD_BUTTONS)
            .map(|b| (b.label.as_str(), b.command.as_str()))
            .collect();
        let body = if buttons.is_empty() {
            payload::batch_send_markdown(
                &self.robot_code,
                std::slice::from_ref(&staff_id),
                &rendered.title,
                &rendered.markdown,
            )
        } else {
            payload::batch_send_action_card(
                &self.robot_code,
                std::slice::from_ref(&staff_id),
                &rendered.title,
                &rendered.markdown,
                &buttons,
            )
        };
        match body {
            Ok(body) => Outgoing {
                channel: Channel::RobotBatch,
                target: staff_id,
                payload: body,
                undeliverable: None,
            },
            Err(e) => dead(to, &rendered, Some((card_key, content)), e.to_string()),
        }
    }

    /// A message whose buttons send text commands (the onboarding chooser): in DingTalk an
    /// ActionCard whatever the card mode, since a template card's taps are looked up by case and
    /// this is about none; in the sandbox a card with the same buttons, keyed by `key`; plain
    /// markdown without buttons. At most [`payload::MAX_ACTION_CARD_BUTTONS`] buttons are sent.
    pub fn choice(&self, key: &str, to: &Person, content: &CardContent) -> Outgoing {
        let rendered = card_as_message(content);
        if self.mode == DingtalkMode::Sandbox {
            return sandbox(to.id(), &rendered, Some((key, content)));
        }
        let Some(staff_id) = reachable(to) else {
            return unreachable(to, &rendered, None);
        };
        let buttons: Vec<(&str, &str)> = content
            .buttons
            .iter()
            .take(payload::MAX_ACTION_CARD_BUTTONS)
            .map(|b| (b.label.as_str(), b.command.as_str()))
            .collect();
        let users = std::slice::from_ref(&staff_id);
        let body = if buttons.is_empty() {
            payload::batch_send_markdown(
                &self.robot_code,
                users,
                &rendered.title,
                &rendered.markdown,
            )
        } else {
            payload::batch_send_action_card(
                &self.robot_code,
                users,
                &rendered.title,
                &rendered.markdown,
                &buttons,
            )
        };
        match body {
            Ok(body) => Outgoing {
                channel: Channel::RobotBatch,
                target: staff_id,
                payload: body,
                undeliverable: None,
            },
            Err(e) => dead(to, &rendered, None, e.to_string()),
        }
    }

    /// The new content of a card already sent to `to`. ActionCard messages cannot be changed
    /// after sending, so without a template there is nothing to update (`None`): the decision's
    /// notifications tell people what happened.
    pub fn card_update(
        &self,
        card_key: &str,
        to: &Person,
        content: &CardContent,
    ) -> Option<Outgoing> {
        if self.mode == DingtalkMode::Sandbox {
            return Some(sandbox(
                to.id(),
                &card_as_message(content),
                Some((card_key, content)),
            ));
        }
        if !self.uses_card_template() {
            return None;
        }
        let staff_id = reachable(to)?;
        let out_track_id = self.card_secrets.instance_id(card_key, &staff_id);
        let body = payload::card_update(&out_track_id, &card_params(content));
        Some(Outgoing {
            channel: Channel::CardUpdate,
            target: out_track_id,
            payload: body,
            undeliverable: None,
        })
    }
}

/// Whether taps on template cards come back as HTTP callbacks (`POST /dingtalk/card/<segment>`):
/// `http` mode with a card template and a callback route key registered with DingTalk. In
/// Stream mode taps arrive over the socket, and without a template there are no taps (ActionCard
/// buttons send text commands), so then the HTTP card route does not exist at all.
pub fn card_callbacks_over_http(s: &DingtalkSettings) -> bool {
    s.mode == DingtalkMode::Http
        && !s.card_template_id.is_empty()
        && !s.card_callback_route_key.is_empty()
}

fn reachable(to: &Person) -> Option<String> {
    (to.reachable() && !to.departed).then(|| to.staff_id.clone())
}

/// A card as a markdown message: the body, then each line of the (plain-text) status in bold,
/// escaped, since it holds what people wrote (an objection reason, a contact line).
fn card_as_message(content: &CardContent) -> Rendered {
    let mut markdown = content.markdown.clone();
    for line in content
        .status
        .lines()
        .map(md_text)
        .filter(|l| !l.is_empty())
    {
        markdown.push_str(&format!("\n\n**{line}**"));
    }
    Rendered {
        title: content.title.clone(),
        markdown,
    }
}

/// A sandbox row's body for the console of `to` (a roster id, or a sender's staff id).
fn sandbox_body(to: &str, rendered: &Rendered, card: Option<(&str, &CardContent)>) -> Vec<u8> {
    let card = card.map(|(key, c)| json!({"key": key, "title": c.title, "markdown": c.markdown, "status": c.status, "buttons": c.buttons}));
    json!({"to": [to], "title": rendered.title, "text": rendered.markdown, "card": card})
        .to_string()
        .into_bytes()
}

fn sandbox(to: &str, rendered: &Rendered, card: Option<(&str, &CardContent)>) -> Outgoing {
    Outgoing {
        channel: Channel::Sandbox,
        target: to.to_string(),
        payload: sandbox_body(to, rendered, card),
        undeliverable: None,
    }
}

fn dead(
    to: &Person,
    rendered: &Rendered,
    card: Option<(&str, &CardContent)>,
    reason: String,
) -> Outgoing {
    Outgoing {
        channel: Channel::RobotBatch,
        target: to.id().to_string(),
        payload: sandbox_body(to.id(), rendered, card),
        undeliverable: Some(reason),
    }
}

fn unreachable(to: &Person, rendered: &Rendered, card: Option<(&str, &CardContent)>) -> Outgoing {
    let reason = if to.departed {
        format!(
            "{}（{}）已从钉钉组织离职，不再发送；请该单位分管领导设置接替人员",
            to.name, to.unit
        )
    } else {
        format!(
            "{}（{}）未配置钉钉 staff_id，无法发送；请管理员在名单中补充",
            to.name, to.unit
        )
    };
    dead(to, rendered, card, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::Role;
    use crate::settings::Settings;

    fn dispatch(mode: &str) -> Dispatch {
        let env = [
            ("TIAOCHU_DINGTALK__MODE".to_string(), mode.to_string()),
            (
                "TIAOCHU_DINGTALK__APP_KEY".to_string(),
                "dingapp".to_string(),
            ),
            ("TIAOCHU_DINGTALK__APP_SECRET".to_string(), "s".to_string()),
        ];
        let settings = Settings::load_with_env(None, env).expect("settings");
        Dispatch::from_settings(&settings.dingtalk, CardSecrets::ephemeral())
    }

    fn message(kind: &str, staff_id: &str, expires_ms: i64) -> RobotMessage {
        let body = json!({
            "msgId": "m1", "msgtype": "text", "text": {"content": "帮助"},
            "conversationType": kind, "senderStaffId": staff_id,
            "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=s1",
            "sessionWebhookExpiredTime": expires_ms, "createAt": 1_790_000_000_000_i64,
        });
        RobotMessage::from_json(body.to_string().as_bytes()).expect("message")
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).expect("instant")
    }

    #[test]
    fn a_reply_goes_back_the_way_the_message_came() {
        let d = dispatch("http");
        let person = Person::new(
            "王联络",
            "区人社局",
            "科员",
            vec![Role::Liaison],
            "rs-1",
            "",
        );
        let rendered = Rendered {
            title: "帮助".into(),
            markdown: "x".into(),
        };
        let (received, expires) = (1_790_000_000_000, 1_790_005_000_000);
        let group = message("2", "rs-1", expires);
        let reply = |m: &RobotMessage, p: Option<&Person>, now: i64| {
            d.reply(m, at(received), p, &rendered, at(now))
                .expect("payload")
        };

        // A group message while its session webhook lives: answered in the group.
        let out = reply(&group, Some(&person), received + 1_000).expect("routed");
        assert_eq!(out.channel, Channel::SessionReply);
        // After the webhook expired: 1:1 to the roster person instead of failing.
        let out = reply(&group, Some(&person), expires + 1).expect("routed");
        assert_eq!(
            (out.channel, out.target.as_str()),
            (Channel::RobotBatch, "rs-1")
        );
        // A 1:1 message from someone not in the roster: to the sender's staff id.
        let out = reply(&message("1", "u-9", expires), None, received).expect("routed");
        assert_eq!(
            (out.channel, out.target.as_str()),
            (Channel::RobotBatch, "u-9")
        );
        // No staff id outside a group: no way back.
        assert!(reply(&message("1", "", expires), None, received).is_none());
        // The sandbox answers on the sender's console, whatever the conversation.
        let sandbox = dispatch("sandbox");
        let out = sandbox
            .reply(&group, at(received), None, &rendered, at(received))
            .expect("payload")
            .expect("routed");
        assert_eq!(
            (out.channel, out.target.as_str()),
            (Channel::Sandbox, "rs-1")
        );
    }
}
