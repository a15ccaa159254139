//! `tiaochu serve`: runs the service in the foreground until ctrl-c or SIGTERM (what `podman
//! stop`, `docker stop` and, by default, systemd send), both a graceful stop. Sets up logging
//! (`[log] format`: text or JSON lines), binds `[server] listen`, opens the database and says in
//! Chinese where it listens and how DingTalk reaches it. In sandbox mode the clock is an
//! [`OffsetClock`] the sandbox clock panel moves, and the console's address is printed first,
//! since it is what an evaluator opens.
//!
//! An existing database file of zero bytes is refused (a restore that copied nothing must not
//! start an empty service); `serve --init` makes it a new database on purpose. A missing file is
//! created, so the first start needs no extra step.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::app::App;
use crate::clock::{Clock, OffsetClock, SystemClock};
use crate::settings::{DingtalkMode, LogFormat, Settings};
use crate::store::{ServiceLock, Store, is_empty_file};

#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// 数据库文件存在但为空（0 字节）时，将其初始化为新数据库（默认拒绝启动，以免恢复失败后在空库上运行）
    #[arg(long)]
    pub init: bool,
}

/// Serves until ctrl-c or SIGTERM; 0 on a clean stop. Start-up failures (address in use,
/// database unopenable or empty, missing secret) come back as errors with a Chinese message (exit
/// status 2).
pub fn run(settings: &Settings, args: &ServeArgs) -> anyhow::Result<i32> {
    if args.init {
        initialise_empty(settings)?;
    }
    // RUST_LOG overrides; a subscriber installed earlier (tests) is kept.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: in a file or the journal they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing::subscriber::set_global_default(log_subscriber(
        settings.log.format,
        filter,
        ansi,
        std::io::stderr,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("无法启动异步运行时")?;
    runtime.block_on(serve(settings.clone()))
}

/// `--init`: makes an existing empty database file a new database, holding the service lock so
/// a running service is never touched. Anything else (missing file, a database) is left to the
/// normal start.
fn initialise_empty(settings: &Settings) -> anyhow::Result<()> {
    let path = &settings.store.path;
    if !is_empty_file(path) {
        return Ok(());
    }
    let lock = ServiceLock::acquire(path).context("服务无法启动")?;
    let store = Store::open_initialising(path)
        .with_context(|| format!("无法初始化数据库 {}", path.display()))?;
    println!(
        "已将空的数据库文件 {} 初始化为新数据库（结构版本 {}）",
        path.display(),
        store.migration_report().after
    );
    drop(store);
    drop(lock);
    Ok(())
}

/// The subscriber `serve` logs through, writing to `writer`: `text` is the readable default,
/// `json` one object per line with the event's fields at the top level and the enclosing spans
/// (their ids: message, inbox row, case) under `spans`. `ansi` colours the text lines; only for a
/// terminal.
pub fn log_subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<i32> {
    let listen = settings.server.listen;
    let db = settings.store.path.clone();
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!("无法监听地址 {listen}（端口已被占用，或地址无效？请检查 [server] listen）")
    })?;
    // Only the sandbox may move time; a DingTalk deployment runs on the system clock alone.
    let clock: Arc<dyn Clock> = match settings.dingtalk.mode {
        DingtalkMode::Sandbox => Arc::new(OffsetClock::new()),
        DingtalkMode::Http | DingtalkMode::Stream => Arc::new(SystemClock),
    };
    let stop = stop_signal().context("无法监听停止信号（SIGTERM）")?;
    let app = App::build(settings, listener, clock).context("服务无法启动")?;

    println!("tiaochu 已启动，监听 http://{}", app.address());
    if app.mode() == DingtalkMode::Sandbox {
        println!(
            "沙盒控制台：http://{}/sandbox （在浏览器中打开，选择身份即可体验全流程）",
            app.address()
        );
    }
    println!("数据库：{}", db.display());
    println!("{}", mode_line(app.mode()));
    println!("健康检查：GET /healthz；按 Ctrl-C 停止");

    let shutdown = app.shutdown_handle();
    tokio::spawn(async move {
        match stop.await {
            Ok(signal) => {
                tracing::info!(signal, "stop signal received; finishing in-flight requests");
                eprintln!("收到停止信号（{signal}），正在停止（等待处理中的请求完成）…");
                shutdown.trigger();
            }
            Err(e) => eprintln!("无法监听 Ctrl-C（{e}），只能通过结束进程来停止服务"),
        }
    });
    app.run_until_stopped().await?;
    tracing::info!("stopped in order");
    println!("tiaochu 已停止");
    Ok(0)
}

/// Resolves with the name of the first stop signal: SIGINT (ctrl-c) or SIGTERM. SIGTERM's
/// handler is installed when this is called (before the service is built), so from then on a
/// SIGTERM is a graceful stop, not the default immediate death.
fn stop_signal()
-> std::io::Result<impl Future<Output = std::io::Result<&'static str>> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.map(|()| "SIGINT"),
            _ = term.recv() => Ok("SIGTERM"),
        }
    })
}

fn mode_line(mode: DingtalkMode) -> &'static str {
    match mode {
        DingtalkMode::Sandbox => {
            "运行模式：沙盒（sandbox）。未配置钉钉凭据，消息只在沙盒控制台显示；钉钉回调接口 /dingtalk/robot 已关闭"
        }
        DingtalkMode::Http => "运行模式：钉钉 HTTP 回调，机器人消息接收地址 POST /dingtalk/robot",
        DingtalkMode::Stream => {
            "运行模式：钉钉 Stream，通过 WebSocket 接收机器人消息和卡片回调；HTTP 回调接口已关闭"
        }
    }
}
