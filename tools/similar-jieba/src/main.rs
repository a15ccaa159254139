//! Ranks the evaluation set of tests/fixtures/similar/ with jieba word segmentation instead of
//! character bigrams — the same BM25, unit signal and two-stage ranking as the service
//! (`tiaochu::similar::rank`) — and prints the hit rates in the form of
//! `cargo test --test api similar_eval -- --nocapture`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use jieba_rs::Jieba;
use serde::Deserialize;
use tiaochu::parse::{Application, UnitMatcher, parse_application};
use tiaochu::roster::Roster;
use tiaochu::similar::{IndexDoc, MemoryIndex, Params, Scope, rank};

#[derive(Deserialize)]
struct Manifest {
    topics: BTreeMap<String, Vec<String>>,
    query: Vec<QuerySpec>,
}

#[derive(Deserialize)]
struct QuerySpec {
    file: String,
    topic: String,
    nearest: Vec<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() {
    let started = std::time::Instant::now();
    let jieba = Jieba::new();
    eprintln!("jieba dictionary loaded in {:?}", started.elapsed());
    let matcher = UnitMatcher::new(&Roster::load(&root().join("config/roster.toml")).expect("roster"));
    let dir = root().join("tests/fixtures/similar");
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(dir.join("manifest.toml")).expect("manifest"))
            .expect("manifest parses");
    let parse = |p: &Path| parse_application(&std::fs::read_to_string(p).expect("text"), &matcher);
    let mut past: Vec<(String, Application)> = std::fs::read_dir(dir.join("past"))
        .expect("past")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| (p.file_stem().expect("stem").to_string_lossy().into_owned(), parse(&p)))
        .collect();
    past.sort_by(|a, b| a.0.cmp(&b.0));
    let topic_of: HashMap<&str, &str> = manifest
        .topics
        .iter()
        .flat_map(|(t, ids)| ids.iter().map(move |id| (id.as_str(), t.as_str())))
        .collect();

    for (name, search_mode) in [("jieba cut + BM25 + units", false), ("jieba cut_for_search + BM25 + units", true)] {
        let words = |text: &str| -> Vec<String> {
            let cut = if search_mode { jieba.cut_for_search(text, true) } else { jieba.cut(text, true) };
            cut.into_iter()
                .map(|t| t.word)
                .filter(|w| w.chars().any(char::is_alphabetic))
                .map(str::to_lowercase)
                .collect()
        };
        let doc = |app: &Application| {
            let mut terms = words(&app.title);
            terms.extend(words(&app.title));
            for t in [&app.measures_taken, &app.difficulties, &app.coordination] {
                terms.extend(words(t));
            }
            IndexDoc { terms, ..IndexDoc::from_application(app) }
        };
        let mut index = MemoryIndex::default();
        for (_, app) in &past {
            index.add(doc(app));
        }
        let (mut top1, mut top3, mut n1, mut n3) = (0, 0, 0, 0);
        for q in &manifest.query {
            let app = parse(&dir.join("queries").join(format!("{}.txt", q.file)));
            let ids: Vec<&str> = rank(&index, &doc(&app), &[], Scope::All, 3, &Params::default())
                .expect("in memory")
                .into_iter()
                .map(|h| past[h.key].0.as_str())
                .collect();
            let in_topic = |id: &&str| topic_of.get(id).is_some_and(|t| *t == q.topic);
            if ids.first().is_some_and(in_topic) {
                top1 += 1;
            } else {
                println!("    off topic: {} → {:?}", q.file, ids.first());
            }
            top3 += ids.iter().filter(|id| in_topic(id)).count();
            n1 += usize::from(ids.first().is_some_and(|id| q.nearest.iter().any(|n| n == id)));
            n3 += usize::from(ids.iter().any(|id| q.nearest.iter().any(|n| n == id)));
        }
        let q = manifest.query.len() as f64;
        println!(
            "{name:<34} top-1 {:>5.1}%  top-3 {:>5.1}%  nearest@1 {:>5.1}%  nearest@3 {:>5.1}%",
            100.0 * top1 as f64 / q,
            100.0 * top3 as f64 / (3.0 * q),
            100.0 * n1 as f64 / q,
            100.0 * n3 as f64 / q,
        );
    }
}
