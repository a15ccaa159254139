//! Who may read the dashboard, and the one-time login links the robot hands out for it (看板).
//! The link is minted in the same store transaction as the inbox's answer, so this lives beside
//! the decisions rather than in `http`, which only serves the pages the link opens.

use jiff::{SignedDuration, Timestamp};

use crate::calendar::Calendar;
use crate::messages::notify::Rendered;
use crate::roster::{Person, Role};
use crate::store::{StoreError, Tx, new_secret, secret_hash};

/// How long a login link works after it is sent, in minutes.
pub const LINK_MINUTES: i64 = 10;

/// How long a session lasts after login, in hours.
pub const SESSION_HOURS: i64 = 8;

/// The roles that may read the dashboard (issue 7: hotline head, inspectors, supervisors and
/// group leaders; admins run the service): those who may read the statistics.
pub const VIEWER_ROLES: [Role; 5] = crate::workflow::STATISTICS_ROLES;

/// Whether `person` may read the dashboard.
pub fn may_view(person: &Person) -> bool {
    VIEWER_ROLES.iter().any(|r| person.has_role(*r))
}

/// The 看板 reply: for a viewer, stores a new one-time link in `tx` and returns the message
/// carrying it (`{base_url}/dashboard/login?token=…`, valid [`LINK_MINUTES`] minutes); for anyone
/// else, a refusal naming who may log in. Only the token's hash is stored.
pub fn login_reply(
    tx: &Tx<'_>,
    person: &Person,
    base_url: &str,
    calendar: &Calendar,
    now: Timestamp,
) -> Result<Rendered, StoreError> {
    if !may_view(person) {
        let roles: Vec<&str> = VIEWER_ROLES.iter().map(|r| r.label()).collect();
        return Ok(Rendered {
            title: "无法登录数据看板".to_string(),
            markdown: format!(
                "数据看板仅供{}使用。如需查看，请联系区12345热线管理员。",
                roles.join("、")
            ),
        });
    }
    let token = new_secret()?;
    let expires = now + SignedDuration::from_mins(LINK_MINUTES);
    tx.insert_login_token(&secret_hash(&token), person.id(), now, expires)?;
    let link = format!(
        "{}/dashboard/login?token={token}",
        base_url.trim_end_matches('/')
    );
    Ok(Rendered {
        title: "数据看板登录链接".to_string(),
        markdown: format!(
            "#### 数据看板登录链接\n\n{link}\n\n链接 {LINK_MINUTES} 分钟内有效（至 {}），仅可使用一次；请勿转发。登录后 {SESSION_HOURS} 小时内无需再次登录。",
            calendar.display(expires)
        ),
    })
}
