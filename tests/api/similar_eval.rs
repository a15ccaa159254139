//! Retrieval quality of similar past cases on the evaluation set `tests/fixtures/similar/`
//! (40 past applications in 10 topics, 15 paraphrased queries; manifest.toml says what each
//! query should find). Every approach tried ranks the same past applications for the same
//! queries; the figures are printed (`cargo test --test api similar_eval -- --nocapture`) and
//! the chosen one — character-bigram BM25 with the units as a signal, what the service runs — is
//! held to the goal: every query's first result in its topic.
//!
//! The FTS5 trigram approach runs on SQLite's bundled FTS5 directly (an in-memory table), as a
//! deployment would use it: `trigram` tokenizer, OR of the query's trigrams, `bm25()`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use rusqlite::Connection;
use serde::Deserialize;
use tiaochu::parse::{Application, UnitMatcher, parse_application};
use tiaochu::similar::{IndexDoc, MemoryIndex, Params, Scope, rank, tokens::tokens};

static MATCHER: LazyLock<UnitMatcher> =
    LazyLock::new(|| UnitMatcher::new(&crate::support::shipped_roster()));

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

struct Set {
    /// (id, application), by id.
    past: Vec<(String, Application)>,
    queries: Vec<(QuerySpec, Application)>,
    topic_of: HashMap<String, String>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/similar")
}

fn parse_file(path: &Path) -> Application {
    let text = std::fs::read_to_string(path).expect("fixture text");
    let app = parse_application(&text, &MATCHER);
    assert!(
        app.ok,
        "{} must be a complete application: {:?}",
        path.display(),
        app.errors
    );
    app
}

fn load() -> Set {
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(dir().join("manifest.toml")).expect("manifest"))
            .expect("manifest parses");
    let mut past: Vec<(String, Application)> = std::fs::read_dir(dir().join("past"))
        .expect("past folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let id = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (id, parse_file(&p))
        })
        .collect();
    past.sort_by(|a, b| a.0.cmp(&b.0));
    let mut topic_of = HashMap::new();
    for (topic, ids) in &manifest.topics {
        for id in ids {
            topic_of.insert(id.clone(), topic.clone());
        }
    }
    let queries = manifest
        .query
        .into_iter()
        .map(|q| {
            let app = parse_file(&dir().join("queries").join(format!("{}.txt", q.file)));
            (q, app)
        })
        .collect();
    Set {
        past,
        queries,
        topic_of,
    }
}

/// Hit rates of one approach over the queries.
#[derive(Debug, Default)]
struct Figures {
    queries: usize,
    /// First result in the query's topic.
    top1: usize,
    /// Results among the first three in the topic (out of 3 × queries).
    top3_in_topic: usize,
    /// A `nearest` case first / among the first three.
    nearest1: usize,
    nearest3: usize,
    /// Queries whose first result is off topic, with what it was.
    misses: Vec<String>,
}

impl Figures {
    fn line(&self, name: &str) -> String {
        let q = self.queries as f64;
        format!(
            "{name:<34} top-1 {:>5.1}%  top-3 {:>5.1}%  nearest@1 {:>5.1}%  nearest@3 {:>5.1}%",
            100.0 * self.top1 as f64 / q,
            100.0 * self.top3_in_topic as f64 / (3.0 * q),
            100.0 * self.nearest1 as f64 / q,
            100.0 * self.nearest3 as f64 / q,
        )
    }
}

fn evaluate(set: &Set, ranked: impl Fn(&Application) -> Vec<String>) -> Figures {
    let mut f = Figures::default();
    for (spec, app) in &set.queries {
        let ids = ranked(app);
        let in_topic = |id: &String| set.topic_of.get(id).is_some_and(|t| *t == spec.topic);
        f.queries += 1;
        if ids.first().is_some_and(in_topic) {
            f.top1 += 1;
        } else {
            f.misses.push(format!("{} → {:?}", spec.file, ids.first()));
        }
        f.top3_in_topic += ids.iter().take(3).filter(|id| in_topic(id)).count();
        if ids.first().is_some_and(|id| spec.nearest.contains(id)) {
            f.nearest1 += 1;
        }
        if ids.iter().take(3).any(|id| spec.nearest.contains(id)) {
            f.nearest3 += 1;
        }
    }
    f
}

/// The service's ranking over an in-memory index of `docs`.
fn bm25_ranking(set: &Set, doc: impl Fn(&Application) -> IndexDoc, params: Params) -> Figures {
    let mut index = MemoryIndex::default();
    for (_, app) in &set.past {
        index.add(doc(app));
    }
    evaluate(set, |app| {
        rank(&index, &doc(app), &[], Scope::All, 3, &params)
            .expect("in memory")
            .into_iter()
            .map(|h| set.past[h.key].0.clone())
            .collect()
    })
}

fn units(app: &Application) -> Vec<String> {
    app.first_unit
        .iter()
        .chain(&app.requested_units)
        .cloned()
        .collect()
}

fn body(app: &Application) -> String {
    format!(
        "{}\n{}\n{}",
        app.measures_taken, app.difficulties, app.coordination
    )
}

/// SQLite FTS5 with the `trigram` tokenizer: the title and the rest in two columns (title
/// weighted 2 in `bm25()`, as the bigram ranking counts it twice), queried with the OR of every
/// trigram of the query's text. `unit_weight` scales the score like the service's unit signal.
fn fts5_trigram(set: &Set, unit_weight: f64) -> Figures {
    let conn = Connection::open_in_memory().expect("memory db");
    conn.execute_batch("CREATE VIRTUAL TABLE past USING fts5(title, body, tokenize = 'trigram')")
        .expect("FTS5 with the trigram tokenizer is bundled");
    for (i, (_, app)) in set.past.iter().enumerate() {
        conn.execute(
            "INSERT INTO past (rowid, title, body) VALUES (?1, ?2, ?3)",
            rusqlite::params![i as i64, app.title, body(app)],
        )
        .expect("insert");
    }
    evaluate(set, |app| {
        let text = format!("{}\n{}", app.title, body(app));
        let mut grams: Vec<String> = Vec::new();
        for run in text.split(|c: char| !is_word_char(c)) {
            let chars: Vec<char> = run.chars().collect();
            for w in chars.windows(3) {
                let g: String = w.iter().collect();
                if !grams.contains(&g) {
                    grams.push(g);
                }
            }
        }
        if grams.is_empty() {
            return Vec::new();
        }
        let query = grams
            .iter()
            .map(|g| format!("\"{g}\""))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut stmt = conn
            .prepare("SELECT rowid, -bm25(past, 2.0, 1.0) FROM past WHERE past MATCH ?1")
            .expect("prepare");
        let q_units: HashSet<String> = units(app).into_iter().collect();
        let mut scored: Vec<(usize, f64)> = stmt
            .query_map([query], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?)))
            .expect("query")
            .map(|r| {
                let (i, s) = r.expect("row");
                let i = i as usize;
                let d_units: HashSet<String> = units(&set.past[i].1).into_iter().collect();
                let union = q_units.union(&d_units).count().max(1) as f64;
                let j = q_units.intersection(&d_units).count() as f64 / union;
                (i, s * (1.0 + unit_weight * j))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
            .into_iter()
            .take(3)
            .map(|(i, _)| set.past[i].0.clone())
            .collect()
    })
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Single characters instead of bigrams: what tokenising buys.
fn unigram_doc(app: &Application) -> IndexDoc {
    let text = format!("{}\n{}\n{}", app.title, app.title, body(app));
    IndexDoc {
        terms: text
            .chars()
            .filter(|c| c.is_alphabetic())
            .map(|c| c.to_string())
            .collect(),
        units: units(app),
        ..IndexDoc::default()
    }
}

/// Bigrams alone: the service's tokens without the single characters.
fn bigram_doc(app: &Application) -> IndexDoc {
    let mut doc = IndexDoc::from_application(app);
    doc.terms.retain(|t| t.chars().count() != 1 || t.is_ascii());
    doc
}

#[test]
fn the_evaluation_set_is_as_documented() {
    let set = load();
    let topics: HashSet<&String> = set.topic_of.values().collect();
    assert!(set.past.len() >= 30, "{} past applications", set.past.len());
    assert!(topics.len() >= 8, "{} topics", topics.len());
    assert!(set.queries.len() >= 10, "{} queries", set.queries.len());
    for (id, _) in &set.past {
        assert!(
            set.topic_of.contains_key(id),
            "{id} has no topic in the manifest"
        );
    }
    for (spec, _) in &set.queries {
        for id in &spec.nearest {
            assert_eq!(
                set.topic_of.get(id),
                Some(&spec.topic),
                "{}: nearest {id} is not in its topic",
                spec.file
            );
        }
    }
}

#[test]
fn the_chosen_ranking_puts_every_query_first_in_its_topic() {
    let set = load();
    let chosen = bm25_ranking(&set, IndexDoc::from_application, Params::default());
    println!("{}", chosen.line("unigram + bigram BM25 + units (chosen)"));
    assert!(
        chosen.misses.is_empty(),
        "first result off topic: {:?}",
        chosen.misses
    );
    assert_eq!(chosen.nearest3, chosen.queries, "{}", chosen.line("chosen"));
    // Floors a little under the measured figures (docs/similar.md), to catch a regression.
    assert!(
        chosen.top3_in_topic * 10 >= chosen.queries * 3 * 7,
        "{}",
        chosen.line("chosen")
    );
    assert!(
        chosen.nearest1 * 10 >= chosen.queries * 9,
        "{}",
        chosen.line("chosen")
    );
}

/// Where the display floor (`casebook::MIN_SHARED`) falls: the lowest share of word pairs of a
/// query's first result against the shares of the off-topic cases among the first five.
#[test]
fn the_display_floor_keeps_the_first_results_and_drops_strangers() {
    let set = load();
    let mut index = MemoryIndex::default();
    for (_, app) in &set.past {
        index.add(IndexDoc::from_application(app));
    }
    let (mut lowest_first, mut off_topic) = (f64::MAX, Vec::new());
    for (spec, app) in &set.queries {
        let hits = rank(
            &index,
            &IndexDoc::from_application(app),
            &[],
            Scope::All,
            5,
            &Params::default(),
        )
        .expect("in memory");
        lowest_first = lowest_first.min(hits[0].shared);
        for h in &hits {
            if set.topic_of.get(&set.past[h.key].0) != Some(&spec.topic) {
                off_topic.push(h.shared);
            }
        }
    }
    off_topic.sort_by(|a, b| b.total_cmp(a));
    let floor = tiaochu::casebook::MIN_SHARED;
    let dropped = off_topic.iter().filter(|s| **s < floor).count();
    println!(
        "display floor {floor:.2} of the word pairs: lowest first result {lowest_first:.3}; off-topic among the first five: highest {:.3}, {dropped} of {} below the floor",
        off_topic.first().copied().unwrap_or(0.0),
        off_topic.len()
    );
    assert!(lowest_first >= floor, "a first result would be hidden");
    assert!(
        dropped * 3 >= off_topic.len(),
        "the floor drops too few strangers"
    );
    // Two applications about different problems share almost no wording.
    let pair = |a: &str, b: &str| {
        let doc = |id: &str| {
            IndexDoc::from_application(&set.past.iter().find(|p| p.0 == id).expect("case").1)
        };
        tiaochu::similar::shared_pairs(&doc(a), &doc(b))
    };
    assert!(pair("medical-01", "wage-01") < floor);
    assert!(pair("wage-03", "wage-01") >= floor);
}

#[test]
fn comparison_of_the_approaches_tried() {
    let set = load();
    let no_units = Params {
        unit_weight: 0.0,
        ..Params::default()
    };
    let rows = [
        (
            "unigram + bigram BM25 + units (chosen)",
            bm25_ranking(&set, IndexDoc::from_application, Params::default()),
        ),
        (
            "unigram + bigram BM25, text only",
            bm25_ranking(&set, IndexDoc::from_application, no_units),
        ),
        (
            "bigram BM25 + units",
            bm25_ranking(&set, bigram_doc, Params::default()),
        ),
        ("FTS5 trigram bm25()", fts5_trigram(&set, 0.0)),
        (
            "FTS5 trigram bm25() + units",
            fts5_trigram(&set, Params::default().unit_weight),
        ),
        (
            "unigram BM25 + units",
            bm25_ranking(&set, unigram_doc, Params::default()),
        ),
    ];
    println!(
        "similar-case evaluation: {} past applications, {} queries",
        set.past.len(),
        set.queries.len()
    );
    for (name, f) in &rows {
        println!("{}", f.line(name));
        for miss in &f.misses {
            println!("    off topic: {miss}");
        }
    }
    // The chosen approach is at least as good as every other one tried, on the goal's measure.
    let chosen = &rows[0].1;
    for (name, f) in &rows[1..] {
        assert!(
            chosen.top1 >= f.top1,
            "{name} beats the chosen approach at top-1"
        );
    }
    // Sanity of the harness: the bigram tokeniser sees the words the topics turn on.
    assert!(tokens("拖欠农民工工资").contains(&"工资".to_string()));
}
