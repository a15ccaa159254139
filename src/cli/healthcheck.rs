//! `tiaochu healthcheck`: asks the running service's `GET /healthz` and turns the answer into an
//! exit status, for container health checks and monitoring scripts that have no HTTP client.

use std::time::Duration;

use crate::settings::Settings;

/// Exit 0 when the service answers 200 (its store works), 1 otherwise.
pub fn run(settings: &Settings) -> anyhow::Result<i32> {
    // A wildcard listen address is reached through loopback.
    let mut listen = settings.server.listen;
    if listen.ip().is_unspecified() {
        listen.set_ip(match listen {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{listen}/healthz");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let response = client.get(&url).send().await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    match outcome {
        Ok((status, body)) if status.is_success() => {
            println!("{body}");
            Ok(0)
        }
        Ok((status, body)) => {
            eprintln!("服务不健康（HTTP {}）：{body}", status.as_u16());
            Ok(1)
        }
        Err(e) => {
            eprintln!("无法连接 {url}：{e}");
            Ok(1)
        }
    }
}
