//! `tiaochu similar [--json] [--top N] [--corpus DIR] [FILE|-]`: the past cases most like an
//! application, read with the robot's parser. From the database's cases by default; with
//! `--corpus DIR`, the past cases are the application files `DIR/*.txt`, each named by its file
//! name without `.txt` — how retrieval quality is evaluated offline (docs/similar.md).
//!
//! The ranking is the service's ([`crate::similar::rank`]) without its display floor
//! ([`crate::casebook::MIN_SHARED`]): every case sharing a term is listed, best first, so an
//! evaluation sees the whole order.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::parse_cmd::read_input;
use crate::engine::decode;
use crate::messages::similar::entry;
use crate::parse::{Application, UnitMatcher, parse_application};
use crate::roster::Roster;
use crate::settings::Settings;
use crate::similar::{IndexDoc, MemoryIndex, Params, Scope, rank, summarize};
use crate::store::{Store, StoreError};

#[derive(clap::Args, Debug)]
pub struct SimilarArgs {
    /// 申请文本文件；省略或 "-" 表示从标准输入读取
    pub file: Option<PathBuf>,
    /// 输出 JSON：{"similar": [{"id", "case_no", "ticket_no", "title", "score", "units"}]}
    #[arg(long)]
    pub json: bool,
    /// 列出最相似的前 N 个
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,
    /// 以目录中的申请文件（*.txt，文件名即编号）作为往期案例，而不是数据库中的案件
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,
}

/// The `--json` output.
#[derive(Debug, Serialize)]
struct Output<'a> {
    similar: &'a [Found],
}

/// One past case in the `--json` output.
#[derive(Debug, Serialize)]
struct Found {
    /// The case number for a stored case, the file name without `.txt` for a corpus file.
    id: String,
    case_no: Option<String>,
    ticket_no: Option<String>,
    title: String,
    /// Share of the application's score against itself, 0–1.
    score: f64,
    units: Vec<String>,
    /// The Chinese summary the text output prints.
    #[serde(skip)]
    text: String,
}

/// Prints the most similar past cases. Exit 0; 1 when the input has nothing to compare (no
/// title, measures, difficulties or coordination text); an unreadable input, roster, corpus or
/// database is an `Err` (exit 2).
pub fn run(settings: &Settings, args: &SimilarArgs) -> anyhow::Result<i32> {
    let roster = Roster::load(&settings.roster.path)?;
    let matcher = UnitMatcher::new(&roster);
    let text = read_input(args.file.as_deref())?;
    let app = parse_application(&text, &matcher);
    let query = IndexDoc::from_application(&app);
    if query.terms.is_empty() {
        eprintln!(
            "没有可比较的内容：申请中没有识别到工单标题、已采取措施、办理难点或需协调部门及事由。{}",
            app.errors.join("；")
        );
        return Ok(1);
    }
    let found = match &args.corpus {
        Some(dir) => from_corpus(dir, &matcher, &query, args)?,
        None => from_store(settings, &query, args.top)?,
    };
    let output = if args.json {
        serde_json::to_string_pretty(&Output { similar: &found }).context("无法输出 JSON")?
    } else if found.is_empty() {
        "没有找到相似的往期案例".to_string()
    } else {
        let title = if app.title.is_empty() {
            "本申请".to_string()
        } else {
            format!("“{}”", app.title)
        };
        let lines: Vec<String> = found.iter().map(|f| f.text.clone()).collect();
        format!("与{title}最相似的往期案例：\n{}", lines.join("\n"))
    };
    if let Err(e) = writeln!(std::io::stdout().lock(), "{output}")
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("无法写出结果");
    }
    Ok(0)
}

fn score(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

fn from_corpus(
    dir: &Path,
    matcher: &UnitMatcher,
    query: &IndexDoc,
    args: &SimilarArgs,
) -> anyhow::Result<Vec<Found>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("无法读取往期案例目录 {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("无法读取往期案例目录 {}", dir.display()))?;
    files.retain(|p| p.extension().is_some_and(|x| x == "txt") && p.is_file());
    files.sort();
    // The application itself, when it is one of the corpus files, is not its own neighbour.
    let own = args
        .file
        .as_deref()
        .filter(|p| p.as_os_str() != "-")
        .and_then(|p| p.canonicalize().ok());
    let mut index = MemoryIndex::default();
    let mut past: Vec<(String, Application)> = Vec::with_capacity(files.len());
    let mut exclude = Vec::new();
    for path in &files {
        let text = read_input(Some(path))?;
        let app = parse_application(&text, matcher);
        let key = index.add(IndexDoc::from_application(&app));
        if own.is_some() && path.canonicalize().ok() == own {
            exclude.push(key);
        }
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        past.push((id, app));
    }
    let hits = rank(
        &index,
        query,
        &exclude,
        Scope::All,
        args.top,
        &Params::default(),
    )
    .unwrap_or_else(|never| match never {});
    Ok(hits
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let (id, app) = &past[h.key];
            let units = IndexDoc::from_application(app).units;
            let shown_units = if units.is_empty() {
                String::new()
            } else {
                format!("（{}）", units.join("、"))
            };
            Found {
                text: format!(
                    "{}. {id} {} · 相似度 {}%{shown_units}",
                    i + 1,
                    app.title,
                    (h.score * 100.0).round()
                ),
                id: id.clone(),
                case_no: None,
                ticket_no: app.ticket_no.clone(),
                title: app.title.clone(),
                score: score(h.score),
                units,
            }
        })
        .collect())
}

fn from_store(settings: &Settings, query: &IndexDoc, top: usize) -> anyhow::Result<Vec<Found>> {
    let path = &settings.store.path;
    if !path.exists() {
        anyhow::bail!(
            "数据库文件 {} 不存在：请检查配置 [store] path，或用 --corpus 目录 比较申请文件",
            path.display()
        );
    }
    let calendar = settings.load_calendar()?;
    let store = Store::open(path).with_context(|| format!("无法打开数据库 {}", path.display()))?;
    let query = query.clone();
    let found = store.read_blocking(move |r| -> Result<_, StoreError> {
        let index = r.similar_index();
        let hits = rank(&index, &query, &[], Scope::All, top, &Params::default())?;
        let mut out = Vec::with_capacity(hits.len());
        for (i, hit) in hits.into_iter().enumerate() {
            let (Some(row), Some(doc)) = (r.case(hit.key)?, r.similar_doc(hit.key)?) else {
                continue;
            };
            let case =
                decode(&row).map_err(|e| crate::store::StoreError::BadData(e.to_string()))?;
            out.push(Found {
                text: entry(i + 1, &summarize(&case, &calendar)),
                id: row.case_no.to_string(),
                case_no: Some(row.case_no.into()),
                ticket_no: Some(row.ticket_no.into()),
                title: case.application.title.clone(),
                score: score(hit.score),
                units: doc.units,
            });
        }
        Ok(out)
    })?;
    Ok(found)
}
