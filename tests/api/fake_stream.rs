//! A fake DingTalk Stream gateway (docs/dingtalk-protocol.md §2) on 127.0.0.1: axum serves
//! `POST /v1.0/gateway/connections/open` and hands out single-use tickets; a second listener is
//! the WebSocket endpoint, which admits only an unused ticket. The test pushes frames on any
//! connection, sends `disconnect`, closes, drops or freezes sockets, refuses opens, and reads
//! back every open request, connection and ACK with the time it was seen.
//!
//! An optional probe runs when an ACK arrives, before it is recorded, so a test can observe the
//! database at the moment of the ACK (a message must be stored before it is acknowledged).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response as WsResponse,
};

use crate::support::robot_text;

/// Runs at each ACK; its number is kept with the ACK (e.g. the inbox row count).
pub type Probe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = i64> + Send>> + Send + Sync>;

/// One `open` call as received.
#[derive(Debug, Clone)]
pub struct OpenRecord {
    pub at: Instant,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    /// The JSON body (Null when it was not JSON).
    pub body: Value,
    /// The ticket handed out; None when the open was refused.
    pub ticket: Option<String>,
}

/// One accepted WebSocket connection, numbered from 0 in order of arrival.
#[derive(Debug, Clone)]
pub struct ConnRecord {
    pub ticket: String,
    pub opened_at: Instant,
    /// When the fake saw the socket end (closed by either side or dropped by the fake).
    pub closed_at: Option<Instant>,
}

/// A text frame the client sent (an ACK, in practice).
#[derive(Debug, Clone)]
pub struct AckRecord {
    pub conn: usize,
    pub frame: Value,
    pub probe: Option<i64>,
}

impl AckRecord {
    pub fn message_id(&self) -> &str {
        self.frame["headers"]["messageId"].as_str().unwrap_or("")
    }

    /// The ACK's `data`, parsed (it travels as a JSON string).
    pub fn data(&self) -> Value {
        let text = self.frame["data"].as_str().expect("ACK data is a string");
        serde_json::from_str(text).expect("ACK data is JSON")
    }
}

enum Control {
    Send(String),
    /// A Close frame, then the socket is dropped (the gateway ending a connection).
    Close,
    /// The TCP connection is dropped without a Close frame.
    Drop,
    /// The fake stops reading: no Pong, no ACK seen, the socket stays open.
    Freeze,
}

struct Inner {
    ws_url: String,
    refuse: AtomicUsize,
    next_ticket: AtomicUsize,
    rejected_tickets: AtomicUsize,
    issued: Mutex<HashSet<String>>,
    opens: Mutex<Vec<OpenRecord>>,
    conns: Mutex<Vec<ConnRecord>>,
    controls: Mutex<Vec<mpsc::UnboundedSender<Control>>>,
    acks: Mutex<Vec<AckRecord>>,
    probe: Mutex<Option<Probe>>,
}

/// The running fake; its listeners stop when it is dropped.
pub struct FakeStream {
    /// `http://127.0.0.1:<port>`: the `api_base` to configure.
    pub api_base: String,
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeStream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeStream {
    pub async fn start() -> FakeStream {
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind open");
        let ws = TcpListener::bind("127.0.0.1:0").await.expect("bind ws");
        let api_base = format!("http://{}", http.local_addr().expect("addr"));
        let inner = Arc::new(Inner {
            ws_url: format!("ws://{}/connect", ws.local_addr().expect("addr")),
            refuse: AtomicUsize::new(0),
            next_ticket: AtomicUsize::new(0),
            rejected_tickets: AtomicUsize::new(0),
            issued: Mutex::new(HashSet::new()),
            opens: Mutex::new(Vec::new()),
            conns: Mutex::new(Vec::new()),
            controls: Mutex::new(Vec::new()),
            acks: Mutex::new(Vec::new()),
            probe: Mutex::new(None),
        });
        let router = axum::Router::new()
            .route("/v1.0/gateway/connections/open", post(open))
            .with_state(Arc::clone(&inner));
        let serve = tokio::spawn(async move {
            let _ = axum::serve(http, router).await;
        });
        let accept_inner = Arc::clone(&inner);
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = ws.accept().await {
                tokio::spawn(serve_socket(Arc::clone(&accept_inner), tcp));
            }
        });
        FakeStream {
            api_base,
            inner,
            tasks: vec![serve, accept],
        }
    }

    /// The next `n` open calls answer 503.
    pub fn refuse_next_opens(&self, n: usize) {
        self.inner.refuse.store(n, Ordering::SeqCst);
    }

    pub fn set_ack_probe(&self, probe: Probe) {
        *self.inner.probe.lock().expect("lock") = Some(probe);
    }

    /// Handshakes refused because the ticket was unknown or already used.
    pub fn rejected_tickets(&self) -> usize {
        self.inner.rejected_tickets.load(Ordering::SeqCst)
    }

    pub fn opens(&self) -> Vec<OpenRecord> {
        self.inner.opens.lock().expect("lock").clone()
    }

    pub fn conns(&self) -> Vec<ConnRecord> {
        self.inner.conns.lock().expect("lock").clone()
    }

    pub fn acks(&self) -> Vec<AckRecord> {
        self.inner.acks.lock().expect("lock").clone()
    }

    /// ACKs for frame `message_id`, in arrival order.
    pub fn acks_for(&self, message_id: &str) -> Vec<AckRecord> {
        self.acks()
            .into_iter()
            .filter(|a| a.message_id() == message_id)
            .collect()
    }

    fn control(&self, conn: usize, control: Control) {
        let controls = self.inner.controls.lock().expect("lock");
        // The socket task may have ended already; a control sent to it is then moot.
        let _ = controls
            .get(conn)
            .expect("no such connection")
            .send(control);
    }

    /// Pushes a text frame on connection `conn`.
    pub fn send(&self, conn: usize, frame: String) {
        self.control(conn, Control::Send(frame));
    }

    pub fn close(&self, conn: usize) {
        self.control(conn, Control::Close);
    }

    pub fn drop_socket(&self, conn: usize) {
        self.control(conn, Control::Drop);
    }

    pub fn freeze(&self, conn: usize) {
        self.control(conn, Control::Freeze);
    }

    /// Polls `check` every 10 ms until it yields a value; panics after `within`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        check: impl Fn(&FakeStream) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(value) = check(self) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; opens {}, conns {:?}, acks {:?}",
                self.opens().len(),
                self.conns(),
                self.acks()
                    .iter()
                    .map(|a| (a.conn, a.message_id().to_string()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until connection number `conn` (from 0) is established; returns its record.
    pub async fn connection(&self, conn: usize) -> ConnRecord {
        self.wait_for(&format!("connection {conn}"), Duration::from_secs(5), |f| {
            f.conns().get(conn).cloned()
        })
        .await
    }

    /// Waits until `n` ACKs for `message_id` arrived; returns them.
    pub async fn acked(&self, message_id: &str, n: usize) -> Vec<AckRecord> {
        self.wait_for(
            &format!("{n} ACK(s) of {message_id}"),
            Duration::from_secs(5),
            |f| {
                let acks = f.acks_for(message_id);
                (acks.len() >= n).then_some(acks)
            },
        )
        .await
    }
}

async fn open(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let refused = inner
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    // Characters that must be percent-encoded in the query, to check the client encodes.
    let ticket = (!refused).then(|| {
        format!(
            "tk+{}/=&?",
            inner.next_ticket.fetch_add(1, Ordering::SeqCst)
        )
    });
    inner.opens.lock().expect("lock").push(OpenRecord {
        at: Instant::now(),
        accept: header("accept"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        ticket: ticket.clone(),
    });
    match ticket {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"code": "ServiceUnavailable", "message": "try later"})),
        )
            .into_response(),
        Some(ticket) => {
            inner.issued.lock().expect("lock").insert(ticket.clone());
            axum::Json(json!({"endpoint": inner.ws_url, "ticket": ticket})).into_response()
        }
    }
}

fn ticket_of(request: &Request) -> Option<String> {
    request.uri().query()?.split('&').find_map(|pair| {
        let value = pair.strip_prefix("ticket=")?;
        percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .ok()
            .map(|t| t.into_owned())
    })
}

async fn serve_socket(inner: Arc<Inner>, tcp: TcpStream) {
    let mut admitted: Option<String> = None;
    // The callback's signature, large error included, is tungstenite's.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: WsResponse| -> Result<WsResponse, ErrorResponse> {
        let ticket = ticket_of(request);
        let valid = ticket
            .as_ref()
            .is_some_and(|t| inner.issued.lock().expect("lock").remove(t));
        if valid {
            admitted = ticket;
            Ok(response)
        } else {
            inner.rejected_tickets.fetch_add(1, Ordering::SeqCst);
            let mut refusal = ErrorResponse::new(Some("invalid ticket".into()));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            Err(refusal)
        }
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
        return;
    };
    let Some(ticket) = admitted else {
        return;
    };
    let (tx, mut controls) = mpsc::unbounded_channel();
    let conn = {
        // Both locks in one order everywhere, so the index is the same in both lists.
        let mut conns = inner.conns.lock().expect("lock");
        let mut senders = inner.controls.lock().expect("lock");
        conns.push(ConnRecord {
            ticket,
            opened_at: Instant::now(),
            closed_at: None,
        });
        senders.push(tx);
        conns.len() - 1
    };
    let (mut sink, mut stream) = socket.split();
    let mut frozen = false;
    loop {
        tokio::select! {
            control = controls.recv() => match control {
                Some(Control::Send(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Control::Close) => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                Some(Control::Drop) | None => break,
                Some(Control::Freeze) => frozen = true,
            },
            next = stream.next(), if !frozen => match next {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    let probe = inner.probe.lock().expect("lock").clone();
                    let probe = match probe {
                        Some(p) => Some(p().await),
                        None => None,
                    };
                    inner.acks.lock().expect("lock").push(AckRecord {
                        conn,
                        frame,
                        probe,
                    });
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                // Pings are answered by tungstenite while reading.
                Some(Ok(_)) => {}
            },
        }
    }
    if let Some(record) = inner.conns.lock().expect("lock").get_mut(conn) {
        record.closed_at = Some(Instant::now());
    }
}

/// A robot message frame (§2.3) carrying a text message with `msg_id`.
pub fn robot_frame(message_id: &str, msg_id: &str, text: &str) -> String {
    let data = robot_text(msg_id, "user001", text, crate::support::START_MS)
        .with("conversationId", "cidStream==")
        .with("senderNick", "测试联络员")
        .with("robotCode", "ding-stream-app");
    callback_frame(message_id, "/v1.0/im/bot/messages/get", &data)
}

/// A card action callback frame (§6.4, §10.3): `user` pressed `action_id` with `params`.
pub fn card_frame(
    message_id: &str,
    out_track_id: &str,
    user: &str,
    action_id: &str,
    params: Value,
) -> String {
    let content = json!({"cardPrivateData": {"actionIds": [action_id], "params": params}});
    let data = json!({
        "outTrackId": out_track_id,
        "corpId": "dingcorp",
        "userId": user,
        "type": "actionCallback",
        "spaceType": "IM_GROUP",
        "spaceId": "cidStream==",
        "extension": "{}",
        "content": content.to_string(),
    });
    callback_frame(message_id, "/v1.0/card/instances/callback", &data)
}

pub fn callback_frame(message_id: &str, topic: &str, data: &impl std::fmt::Display) -> String {
    json!({
        "specVersion": "1.0",
        "type": "CALLBACK",
        "headers": {
            "appId": "app-1", "connectionId": "conn-1", "contentType": "application/json",
            "messageId": message_id, "time": "1690106592000", "topic": topic,
        },
        "data": data.to_string(),
    })
    .to_string()
}

/// A SYSTEM frame (`ping` or `disconnect`) with `data`.
pub fn system_frame(message_id: &str, topic: &str, data: &Value) -> String {
    json!({
        "specVersion": "1.0",
        "type": "SYSTEM",
        "headers": {"topic": topic, "messageId": message_id, "contentType": "application/json",
                    "time": "1690106592000"},
        "data": data.to_string(),
    })
    .to_string()
}

/// An organisation EVENT frame as the gateway pushes it (§2.3; the contact events' Stream pages):
/// topic `*`, the `event*` headers, and `data` `{"timeStamp": "…", "userId": [...]}` as a JSON
/// string.
pub fn event_frame(
    message_id: &str,
    event_type: &str,
    event_id: &str,
    user_ids: &[&str],
) -> String {
    let data = json!({"timeStamp": "1780000000000", "userId": user_ids});
    json!({
        "specVersion": "1.0",
        "type": "EVENT",
        "headers": {
            "appId": "app-1", "connectionId": "conn-1", "contentType": "application/json",
            "messageId": message_id, "time": "1780000000000", "topic": "*",
            "eventType": event_type, "eventId": event_id, "eventCorpId": "dingcorp",
            "eventBornTime": "1780000000000", "eventUnifiedAppId": "unified-app-1",
        },
        "data": data.to_string(),
    })
    .to_string()
}
