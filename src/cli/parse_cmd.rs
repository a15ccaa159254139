//! `tiaochu parse [--json] [FILE|-]`: the application parser offline, on the configured roster,
//! exactly as the robot runs it (docs/spec.md → `tiaochu parse --json`). Used to check what an
//! application will produce before it is sent, and by the fixture checker.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::messages::application::{render_incomplete, render_preview};
use crate::parse::{UnitMatcher, parse_application};
use crate::roster::Roster;
use crate::settings::Settings;

#[derive(clap::Args, Debug)]
pub struct ParseArgs {
    /// 申请文本文件；省略或 "-" 表示从标准输入读取
    pub file: Option<PathBuf>,
    /// 输出 JSON（字段见 docs/spec.md），而不是给联络员的中文回复
    #[arg(long)]
    pub json: bool,
}

/// Prints the parsed application (one JSON object with `--json`, else the Chinese reply).
/// Exit 0 when complete, 1 when not; an unreadable or non-UTF-8 input or a bad roster is an
/// `Err`, which the caller reports on stderr with exit status 2.
pub fn run(settings: &Settings, args: &ParseArgs) -> anyhow::Result<i32> {
    let roster = Roster::load(&settings.roster.path)?;
    let text = read_input(args.file.as_deref())?;
    let app = parse_application(&text, &UnitMatcher::new(&roster));
    let output = if args.json {
        serde_json::to_string_pretty(&app).context("无法输出 JSON")?
    } else if app.ok {
        render_preview(&app)
    } else {
        render_incomplete(&app)
    };
    // A reader that stops early (`| head`) is not an error of ours.
    if let Err(e) = writeln!(std::io::stdout().lock(), "{output}")
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("无法写出结果");
    }
    Ok(if app.ok { 0 } else { 1 })
}

/// The application in `file` (standard input when `None` or "-") as UTF-8 text without a BOM.
pub(crate) fn read_input(file: Option<&Path>) -> anyhow::Result<String> {
    let (bytes, origin) = match file.filter(|p| p.as_os_str() != "-") {
        Some(path) => (
            std::fs::read(path).with_context(|| format!("无法读取申请文件 {}", path.display()))?,
            path.display().to_string(),
        ),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("无法读取标准输入")?;
            (bytes, "标准输入".to_string())
        }
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        anyhow::anyhow!(
            "“{origin}”不是 UTF-8 编码的文本（第 {} 个字节起无法解码）：请另存为 UTF-8 编码后重试",
            e.utf8_error().valid_up_to() + 1
        )
    })
}
