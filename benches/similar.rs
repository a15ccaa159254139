//! Similar past cases over 100,000 stored cases (docs/similar.md → Cost). One closed joint case
//! is driven through the engine to get a genuine case document; each synthetic case copies it
//! with an application of its own, made from one of the evaluation set's 40 past applications
//! (tests/fixtures/similar/past) with other places, names and numbers and a clause of another
//! application of the same topic, so the corpus has topic clusters and a long tail of rare
//! words as real cases do. Prints:
//!
//! 1. the time to seed the cases with their index documents;
//! 2. a top-3 query — the review card's, ranking plus the three summaries, and the ranking alone —
//!    for each of the evaluation's 25 queries, 20 times each: p50, p95 and max (goal ≤ 20 ms);
//! 3. how often the two-stage ranking's top 3 equals the exhaustive ranking's (every term, every
//!    case scored);
//! 4. the cost of keeping the index in step: a case written in its own transaction
//!    (`fsync`ed before it is answered, as the service commits) with and without its index document;
//! 5. the time `tiaochu migrate` takes to rebuild the whole index.
//!
//! Every query is timed twice: wall clock, and the CPU time of the querying thread (the query runs
//! on the calling thread: `Store::read_blocking`). On a shared machine the wall clock also counts
//! the time other processes held the CPU; the CPU time does not (docs/similar.md → Cost). The load
//! average is printed before and after the queries. A breakdown of the ranking's CPU time by what
//! it reads follows the figures.
//!
//! Plain `main`; run with `cargo bench --bench similar`. `-- --quick` stops after 2;
//! `-- --db PATH` keeps the seeded database at PATH and later runs start from a copy of it instead
//! of seeding again (`--rebuild` then rebuilds its index first, timed: for an index format change).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Value, json};
use tiaochu::calendar::{Calendar, WorkingHours};
use tiaochu::card_secrets::CardSecrets;
use tiaochu::casebook;
use tiaochu::dispatch::Dispatch;
use tiaochu::domain::{PersonId, TicketNo, UnitName};
use tiaochu::engine::{Engine, Outcome};
use tiaochu::parse::{Application, UnitMatcher, parse_application};
use tiaochu::roster::{Person, Role, Roster};
use tiaochu::settings::Settings;
use tiaochu::similar::{DocView, Index, IndexDoc, Params, Scope, Stats, rank};
use tiaochu::store::{NewCase, Store, StoreError};
use tiaochu::workflow::{Actor, Case, CoordinationAsk, HelpItem, Input, SatisfactionLevel};

const CASES: usize = 100_000;
/// Cases per write transaction while seeding.
const CHUNK: usize = 5_000;
const RUNS_PER_QUERY: usize = 20;
/// Single-case transactions timed with and without the index document.
const WRITES: usize = 300;

/// Places a copy may be moved to: the district's towns and streets.
const PLACES: [&str; 24] = [
    "长安镇",
    "碱滩镇",
    "甘浚镇",
    "党寨镇",
    "三闸镇",
    "靖安乡",
    "明永镇",
    "小满镇",
    "大满镇",
    "上秦镇",
    "沙井镇",
    "乌江镇",
    "梁家墩镇",
    "龙渠乡",
    "安阳乡",
    "新墩镇",
    "花寨乡",
    "平山湖乡",
    "西街",
    "南街",
    "北街",
    "东街",
    "火车站",
    "滨河新区",
];
/// Characters the names of compounds, villages and firms are made of.
const NAME_CHARS: &str = "金丰华祥瑞泰安康宁和顺兴隆盛鑫源宏达昌明德福寿嘉禾美景新城锦绣翠园河湾林苑欣怡馨雅居博远恒通天润春秋阳光丽都名府佳苑尚品御景龙腾凤凰紫荆玉兰桂香梅竹松柏";
const NAME_KINDS: [&str; 6] = ["小区", "村", "公司", "家园", "社区", "市场"];

/// xorshift64*: deterministic, so every run seeds the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("instant")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50, p95 and max of `samples`, in ms.
fn spread(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), at(0.95), at(1.0))
}

/// CPU time the calling thread has used (user and system): what a query costs whatever else the
/// machine runs.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Wall-clock and thread CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (wall, cpu) = (Instant::now(), thread_cpu());
    let out = f();
    (out, wall.elapsed(), thread_cpu().saturating_sub(cpu))
}

/// CPU time spent in each read of an [`Index`].
#[derive(Debug, Clone, Copy, Default)]
struct Reads {
    stats: Duration,
    doc_freqs: Duration,
    postings: Duration,
    postings_calls: usize,
    postings_read: usize,
    docs: Duration,
}

/// An index whose reads are timed: where a ranking's time goes.
struct Timed<'i, I> {
    inner: &'i I,
    reads: RefCell<Reads>,
}

impl<I: Index> Index for Timed<'_, I> {
    type Key = I::Key;
    type Error = I::Error;

    fn stats(&self) -> Result<Stats, I::Error> {
        let (out, _, cpu) = timed(|| self.inner.stats());
        self.reads.borrow_mut().stats += cpu;
        out
    }

    fn doc_freqs(&self, terms: &[&str]) -> Result<HashMap<String, u64>, I::Error> {
        let (out, _, cpu) = timed(|| self.inner.doc_freqs(terms));
        self.reads.borrow_mut().doc_freqs += cpu;
        out
    }

    fn postings(&self, term: &str, limit: usize) -> Result<Vec<I::Key>, I::Error> {
        let (out, _, cpu) = timed(|| self.inner.postings(term, limit));
        let mut reads = self.reads.borrow_mut();
        reads.postings += cpu;
        reads.postings_calls += 1;
        reads.postings_read += out.as_ref().map_or(0, Vec::len);
        out
    }

    fn visit_docs(
        &self,
        keys: &[I::Key],
        visit: &mut dyn FnMut(I::Key, DocView<'_>),
    ) -> Result<(), I::Error> {
        // The visitor scores each document as it is read: this is reading and scoring.
        let (out, _, cpu) = timed(|| self.inner.visit_docs(keys, visit));
        self.reads.borrow_mut().docs += cpu;
        out
    }
}

fn applications(dir: &str, matcher: &UnitMatcher) -> Vec<(String, Application)> {
    let mut out: Vec<(String, Application)> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("text");
            (name, parse_application(&text, matcher))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A closed joint case, driven through the engine: its document is the template.
fn template(engine: &Engine, app: Application) -> Value {
    let ticket = TicketNo::parse(app.ticket_no.as_deref().expect("ticket")).expect("ticket");
    let inspector = "local:区12345热线:孟艳秋";
    let steps: Vec<(&str, &str, Input)> = vec![
        (
            "rs",
            "2026-11-02T09:00:00+08:00",
            Input::Submit {
                application: tiaochu::workflow::Application::from_report(
                    &app,
                    &UnitMatcher::new(&engine.roster()),
                )
                .expect("complete"),
            },
        ),
        (inspector, "2026-11-02T09:05:00+08:00", Input::Claim),
        (
            inspector,
            "2026-11-02T09:30:00+08:00",
            Input::DecideJoint {
                units: vec![CoordinationAsk {
                    unit: UnitName::of(engine.roster().unit("区住建局").expect("unit")),
                    direction: "核查项目资金拨付".into(),
                }],
            },
        ),
        (
            "zj",
            "2026-11-02T10:00:00+08:00",
            Input::Accept {
                unit: UnitName::of(engine.roster().unit("区住建局").expect("unit")),
                contact_name: "张三".into(),
                position: "股长".into(),
                phone: "13900000000".into(),
                help: vec![HelpItem::SiteCheck, HelpItem::DataSharing],
            },
        ),
        (
            "rs",
            "2026-11-06T10:00:00+08:00",
            Input::Complete {
                process: "联合现场核查，约谈企业负责人".into(),
                measures: "督促企业分期支付拖欠工资".into(),
                citizen_feedback: "已收到全部工资，表示满意".into(),
            },
        ),
        (
            "local:区12345热线:李小燕",
            "2026-11-06T11:00:00+08:00",
            Input::Satisfaction {
                level: SatisfactionLevel::Satisfied,
            },
        ),
    ];
    for (who, when, input) in steps {
        let out = engine
            .handle_blocking(
                &ticket,
                input,
                Actor::Person(PersonId::parse(who).expect("person id")),
                at(when),
            )
            .expect("engine");
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
    }
    let row = engine
        .store()
        .read_blocking(move |r| r.case_by_ticket(&ticket))
        .expect("read")
        .remove(0);
    serde_json::from_str(&row.data_json).expect("json")
}

/// `text` moved to another place, with the names and numbers of its own.
fn vary(text: &str, rng: &mut Rng) -> String {
    let mut out = text.to_string();
    for place in PLACES {
        if out.contains(place) {
            out = out.replace(place, PLACES[rng.below(PLACES.len())]);
        }
    }
    let chars: Vec<char> = NAME_CHARS.chars().collect();
    while let Some(i) = out.find('某') {
        let name: String = (0..2).map(|_| chars[rng.below(chars.len())]).collect();
        let kind = NAME_KINDS[rng.below(NAME_KINDS.len())];
        out.replace_range(i..i + '某'.len_utf8(), &format!("{name}{kind}"));
    }
    out.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from(b'0' + rng.below(10) as u8)
            } else {
                c
            }
        })
        .collect()
}

/// A clause of `text` (split at Chinese commas and semicolons).
fn clause(text: &str, rng: &mut Rng) -> String {
    let parts: Vec<&str> = text
        .split(['，', '；', '。'])
        .filter(|p| p.chars().count() > 3)
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    parts[rng.below(parts.len())].to_string()
}

/// Synthetic application `i` and its topic: a past application of the evaluation set, varied,
/// with a clause of another one of the same topic.
fn synthetic(past: &[(String, Application)], i: usize, rng: &mut Rng) -> (String, Application) {
    let base = &past[rng.below(past.len())];
    let topic = base.0.split('-').next().unwrap_or_default();
    let same: Vec<&(String, Application)> =
        past.iter().filter(|(n, _)| n.starts_with(topic)).collect();
    let other = &same[rng.below(same.len())].1;
    let mut app = base.1.clone();
    app.ticket_no = Some(format!("DH2025{i:09}"));
    app.title = vary(&app.title, rng);
    app.measures_taken = format!(
        "{}；{}。",
        vary(&app.measures_taken, rng),
        vary(&clause(&other.measures_taken, rng), rng)
    );
    app.difficulties = format!(
        "{}；{}。",
        vary(&app.difficulties, rng),
        vary(&clause(&other.difficulties, rng), rng)
    );
    app.coordination = vary(&app.coordination, rng);
    (topic.to_string(), app)
}

/// Times the review card's top-3 query for each of `queries`, `runs` times over, and prints the
/// wall clock and the thread CPU time (p50, p95, max), the load average before and after, and
/// where the ranking's CPU time goes.
fn query_costs(
    store: &Store,
    queries: &[(String, Application)],
    cal: &Calendar,
    runs: usize,
    when: &str,
) {
    let (mut card, mut card_cpu, mut ranking, mut ranking_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let load_before = load_average();
    for _ in 0..runs {
        for (_, app) in queries {
            let query = IndexDoc::from_application(app);
            let (_, wall, cpu) = timed(|| {
                store
                    .read_blocking(|r| {
                        casebook::similar(r, &query, None, Scope::All, 3, casebook::MIN_SHARED, cal)
                    })
                    .expect("similar")
            });
            card.push(wall);
            card_cpu.push(cpu);
            let (_, wall, cpu) = timed(|| {
                store
                    .read_blocking(|r| {
                        casebook::ranked(r, &query, None, Scope::All, 3, casebook::MIN_SHARED)
                    })
                    .expect("ranked")
            });
            ranking.push(wall);
            ranking_cpu.push(cpu);
        }
    }
    let load_after = load_average();
    println!(
        "top-3 for the review card (ranking + 3 summaries) {when}, {} queries × {runs} (goal ≤ 20 ms); load average {load_before} before, {load_after} after:",
        queries.len()
    );
    for (what, samples) in [
        ("wall clock", card),
        ("CPU time of the querying thread", card_cpu),
    ] {
        let (p50, p95, max) = spread(samples);
        println!("  {what}: p50 {p50:.2} ms, p95 {p95:.2} ms, max {max:.2} ms");
    }
    for (what, samples) in [
        ("ranking alone, wall clock", ranking),
        ("ranking alone, CPU time", ranking_cpu),
    ] {
        let (p50, p95, max) = spread(samples);
        println!("  {what}: p50 {p50:.2} ms, p95 {p95:.2} ms, max {max:.2} ms");
    }

    // Where the ranking's CPU time goes, summed over one round of the queries.
    let mut reads = Reads::default();
    let mut total = Duration::ZERO;
    for (_, app) in queries {
        let query = IndexDoc::from_application(app);
        let (r, _, cpu) = timed(|| {
            store
                .read_blocking(|r| -> Result<Reads, StoreError> {
                    let index = Timed {
                        inner: &r.similar_index(),
                        reads: RefCell::new(Reads::default()),
                    };
                    rank(&index, &query, &[], Scope::All, 9, &Params::default())?;
                    Ok(index.reads.into_inner())
                })
                .expect("rank")
        });
        total += cpu;
        reads.stats += r.stats;
        reads.doc_freqs += r.doc_freqs;
        reads.postings += r.postings;
        reads.postings_calls += r.postings_calls;
        reads.postings_read += r.postings_read;
        reads.docs += r.docs;
    }
    let n = queries.len() as f64;
    let per = |d: Duration| ms(d) / n;
    let rest = total.saturating_sub(reads.stats + reads.doc_freqs + reads.postings + reads.docs);
    println!(
        "  ranking CPU per query {:.2} ms: totals {:.2}, document frequencies {:.2}, postings {:.2} ({:.0} lookups reading {:.0} postings), reading and scoring the candidates {:.2}, the rest (transaction, counting postings, choosing candidates) {:.2}",
        per(total),
        per(reads.stats),
        per(reads.doc_freqs),
        per(reads.postings),
        reads.postings_calls as f64 / n,
        reads.postings_read as f64 / n,
        per(reads.docs),
        per(rest),
    );
}

/// Quality and CPU time of the ranking for other posting budgets and candidate counts
/// (`-- --tune`): what [`Params::default`] was chosen from.
fn tune(
    store: &Store,
    queries: &[(String, Application)],
    topics: &HashMap<String, String>,
    topic_of: &HashMap<i64, String>,
) {
    for posting_budget in [2_500, 5_000, 10_000, 20_000] {
        for candidates in [20, 40, 80] {
            let params = Params {
                posting_budget,
                candidates,
                ..Params::default()
            };
            let (mut first, mut top3, mut cpu) = (0, 0, Vec::new());
            for _ in 0..4 {
                for (name, app) in queries {
                    let query = IndexDoc::from_application(app);
                    let (hits, _, spent) = timed(|| {
                        store
                            .read_blocking(|r| {
                                rank(&r.similar_index(), &query, &[], Scope::All, 3, &params)
                            })
                            .expect("rank")
                    });
                    cpu.push(spent);
                    let in_topic = |k: &i64| topic_of.get(k) == Some(&topics[name]);
                    first += usize::from(hits.first().is_some_and(|h| in_topic(&h.key)));
                    top3 += hits.iter().filter(|h| in_topic(&h.key)).count();
                }
            }
            let (p50, p95, _) = spread(cpu);
            println!(
                "  budget {posting_budget}, {candidates} candidates: first result in topic {} of {}, {} of {} of the first three; ranking CPU p50 {p50:.2} ms, p95 {p95:.2} ms",
                first / 4,
                queries.len(),
                top3 / 4,
                3 * queries.len()
            );
        }
    }
}

fn main() {
    let shipped = Roster::load(Path::new("config/roster.toml")).expect("roster");
    let mut people = shipped.people().to_vec();
    people.push(Person::new(
        "王联络",
        "区人社局",
        "科员",
        vec![Role::Liaison],
        "rs",
        "",
    ));
    people.push(Person::new(
        "赵联络",
        "区住建局",
        "股长",
        vec![Role::Liaison],
        "zj",
        "",
    ));
    let roster = Roster::from_parts(shipped.units().to_vec(), people);
    let matcher = UnitMatcher::new(&roster);
    let calendar = || {
        Calendar::load_dir(Path::new("config/calendar"), WorkingHours::default()).expect("calendar")
    };
    let settings = Settings::load_with_env(None, Vec::new()).expect("settings");
    let args: Vec<String> = std::env::args().collect();
    let kept: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--db")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let reuse = kept.as_ref().is_some_and(|p| p.exists());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    if let (true, Some(kept)) = (reuse, &kept) {
        std::fs::copy(kept, &path).expect("copy of the kept database");
        println!("starting from a copy of {}", kept.display());
    }
    let store = Store::open(&path).expect("store");
    let engine = Engine::new(
        store.clone(),
        Arc::new(roster.clone()),
        Arc::new(calendar()),
        settings.sla,
        Dispatch::from_settings(&settings.dingtalk, CardSecrets::ephemeral()),
    );
    let past = applications("tests/fixtures/similar/past", &matcher);
    let queries = applications("tests/fixtures/similar/queries", &matcher);
    let wage = past
        .iter()
        .find(|(n, _)| n == "wage-01")
        .expect("wage-01")
        .1
        .clone();
    let doc = if reuse {
        let ticket = TicketNo::parse(wage.ticket_no.as_deref().expect("ticket")).expect("ticket");
        let row = store
            .read_blocking(move |r| r.case_by_ticket(&ticket))
            .expect("read")
            .remove(0);
        serde_json::from_str(&row.data_json).expect("json")
    } else {
        template(&engine, wage)
    };

    // 1. Seed.
    let mut rng = Rng(0x5EED_CA5E);
    let apps: Vec<(String, Application)> =
        (0..CASES).map(|i| synthetic(&past, i, &mut rng)).collect();
    let apps = Arc::new(apps);
    let mut topic_of: HashMap<i64, String> = HashMap::new();
    if reuse {
        let tickets: Vec<TicketNo> = apps
            .iter()
            .map(|(_, a)| TicketNo::parse(a.ticket_no.as_deref().expect("ticket")).expect("ticket"))
            .collect();
        let ids = store
            .read_blocking(move |r| -> Result<Vec<i64>, StoreError> {
                tickets
                    .iter()
                    .map(|t| Ok(r.case_by_ticket(t)?.remove(0).id))
                    .collect()
            })
            .expect("ids");
        topic_of.extend(ids.into_iter().zip(apps.iter().map(|(t, _)| t.clone())));
        if args.iter().any(|a| a == "--rebuild") {
            let t = Instant::now();
            let n = store.write_blocking(casebook::rebuild).expect("rebuild");
            println!(
                "rebuild of the whole index (tiaochu migrate): {n} cases in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
    } else {
        let seeding = Instant::now();
        for chunk in 0..CASES.div_ceil(CHUNK) {
            let doc = doc.clone();
            let apps = Arc::clone(&apps);
            let ids = store
                .write_blocking(move |tx| -> Result<_, StoreError> {
                    let mut ids = Vec::with_capacity(CHUNK);
                    for i in chunk * CHUNK..((chunk + 1) * CHUNK).min(CASES) {
                        let (topic, app) = &apps[i];
                        let case_no = format!("TC-2025-{:06}", i + 1);
                        let ticket = app.ticket_no.clone().expect("ticket");
                        let first = app.first_unit.clone().expect("first unit");
                        let mut d = doc.clone();
                        d["case_no"] = json!(case_no);
                        d["ticket_no"] = json!(ticket);
                        d["first_unit"] = json!(first);
                        d["application"] = json!(app);
                        let case: Case = serde_json::from_value(d.clone()).expect("case document");
                        let id = tx.insert_case(&NewCase {
                            case_no: &case.case_no,
                            ticket_no: &case.ticket_no,
                            first_unit: &case.first_unit,
                            urgent: false,
                            state: "closed",
                            data_json: &d.to_string(),
                            created_at: at("2025-06-01T09:00:00+08:00"),
                        })?;
                        casebook::sync(tx, id, None, &case)?;
                        ids.push((id, topic.clone()));
                    }
                    Ok(ids)
                })
                .expect("seed");
            topic_of.extend(ids);
        }
        println!(
            "seeded {CASES} cases with their index documents in {:.1} s ({CHUNK} a transaction)",
            seeding.elapsed().as_secs_f64()
        );
        if let Some(kept) = &kept {
            store.backup_to(kept).expect("keep the seeded database");
            println!("kept the seeded database at {}", kept.display());
        }
    }

    // 2. Query latency: wall clock and the querying thread's CPU time.
    let cal = calendar();
    query_costs(
        &store,
        &queries,
        &cal,
        RUNS_PER_QUERY,
        &format!("over {CASES} cases as seeded ({CHUNK} a transaction)"),
    );

    // Quality at this size: each synthetic case's topic is that of the application it was made
    // from.
    let topics: HashMap<String, String> = toml::from_str::<toml::Table>(
        &std::fs::read_to_string("tests/fixtures/similar/manifest.toml").expect("manifest"),
    )
    .expect("manifest")["query"]
        .as_array()
        .expect("queries")
        .iter()
        .map(|q| {
            (
                q["file"].as_str().expect("file").to_string(),
                q["topic"].as_str().expect("topic").to_string(),
            )
        })
        .collect();
    let (mut first_in_topic, mut top3_in_topic, mut shown, mut firsts) = (0, 0, 0, Vec::new());
    for (name, app) in &queries {
        let query = IndexDoc::from_application(app);
        let hits = store
            .read_blocking(move |r| {
                rank(
                    &r.similar_index(),
                    &query,
                    &[],
                    Scope::All,
                    3,
                    &Params::default(),
                )
            })
            .expect("rank");
        let topic = &topics[name];
        let in_topic = |k: &i64| topic_of.get(k) == Some(topic);
        first_in_topic += usize::from(hits.first().is_some_and(|h| in_topic(&h.key)));
        top3_in_topic += hits.iter().filter(|h| in_topic(&h.key)).count();
        if let Some(h) = hits.first() {
            firsts.push(h.score);
            shown += usize::from(h.shared >= casebook::MIN_SHARED);
        }
    }
    firsts.sort_by(f64::total_cmp);
    println!(
        "at {CASES} cases: first result in the query's topic for {first_in_topic} of {} queries, {top3_in_topic} of {} of the first three; first result's score min {:.3}, median {:.3}; {shown} queries have a case over the display floor",
        queries.len(),
        3 * queries.len(),
        firsts.first().copied().unwrap_or(0.0),
        firsts.get(firsts.len() / 2).copied().unwrap_or(0.0),
    );

    if args.iter().any(|a| a == "--tune") {
        tune(&store, &queries, &topics, &topic_of);
    }
    if args.iter().any(|a| a == "--quick") {
        return;
    }

    // 3. The two stages against every term and every case.
    let exhaustive = Params {
        posting_budget: usize::MAX,
        candidates: usize::MAX,
        ..Params::default()
    };
    let (mut same, mut overlap, mut exact_first_in_topic, mut ratios) = (0, 0, 0, Vec::new());
    let t = Instant::now();
    for (name, app) in &queries {
        let query = IndexDoc::from_application(app);
        let (fast, full) = store
            .read_blocking(move |r| -> Result<_, StoreError> {
                let index = r.similar_index();
                Ok((
                    rank(&index, &query, &[], Scope::All, 3, &Params::default())?,
                    rank(&index, &query, &[], Scope::All, 3, &exhaustive)?,
                ))
            })
            .expect("rank");
        if let (Some(f), Some(e)) = (fast.first(), full.first()) {
            ratios.push(f.score / e.score);
            exact_first_in_topic += usize::from(topic_of.get(&e.key) == Some(&topics[name]));
        }
        let fast: Vec<i64> = fast.iter().map(|h| h.key).collect();
        let full: Vec<i64> = full.iter().map(|h| h.key).collect();
        same += usize::from(fast == full);
        overlap += fast.iter().filter(|k| full.contains(k)).count();
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "two-stage vs exhaustive (every term, every case; {:.0} ms a query): first result in topic {first_in_topic} vs {exact_first_in_topic} of {}; the two-stage first result scores {:.3}–{:.3} of the exhaustive one (median {:.3}); top 3 identical for {same} queries, {overlap} of {} cases shared",
        ms(t.elapsed()) / queries.len() as f64,
        queries.len(),
        ratios.first().copied().unwrap_or(0.0),
        ratios.last().copied().unwrap_or(0.0),
        ratios.get(ratios.len() / 2).copied().unwrap_or(0.0),
        3 * queries.len(),
    );

    // 4. Keeping the index in step with case writes.
    let mut rng = Rng(0xC0FF_EE00);
    let (mut with_index, mut without, mut sync_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..2 * WRITES {
        let (_, app) = synthetic(&past, CASES + n, &mut rng);
        let mut d = doc.clone();
        let case_no = format!("TC-2026-{:06}", n + 1);
        d["case_no"] = json!(case_no);
        d["ticket_no"] = json!(app.ticket_no);
        d["application"] = json!(app);
        let indexed = n % 2 == 0;
        let t = Instant::now();
        // The closure runs on the store's writer thread: its CPU time there is what the index
        // document costs, whatever the commit's fsync and the machine's load add.
        let cpu = store
            .write_blocking(move |tx| -> Result<_, StoreError> {
                let case: Case = serde_json::from_value(d.clone()).expect("case document");
                let id = tx.insert_case(&NewCase {
                    case_no: &case.case_no,
                    ticket_no: &case.ticket_no,
                    first_unit: &case.first_unit,
                    urgent: false,
                    state: "submitted",
                    data_json: &d.to_string(),
                    created_at: at("2026-06-01T09:00:00+08:00"),
                })?;
                if !indexed {
                    return Ok(Duration::ZERO);
                }
                let (synced, _, cpu) = timed(|| casebook::sync(tx, id, None, &case));
                synced?;
                Ok(cpu)
            })
            .expect("write");
        if indexed {
            sync_cpu.push(cpu);
            with_index.push(t.elapsed());
        } else {
            without.push(t.elapsed());
        }
    }
    let (w50, w95, _) = spread(with_index);
    let (b50, b95, _) = spread(without);
    println!(
        "a new case in its own transaction: p50 {w50:.2} ms with its index document, {b50:.2} ms without (+{:.2} ms); p95 {w95:.2} / {b95:.2} ms",
        w50 - b50
    );
    let (s50, s95, smax) = spread(sync_cpu);
    println!(
        "  the index document alone (casebook::sync), CPU time of the writer thread: p50 {s50:.2} ms, p95 {s95:.2} ms, max {smax:.2} ms"
    );
    query_costs(
        &store,
        &queries,
        &cal,
        RUNS_PER_QUERY,
        &format!(
            "after {} more cases written one a transaction, as the service writes them",
            2 * WRITES
        ),
    );

    // 5. Rebuild.
    let t = Instant::now();
    let n = store.write_blocking(casebook::rebuild).expect("rebuild");
    println!(
        "rebuild of the whole index (tiaochu migrate): {n} cases in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    query_costs(
        &store,
        &queries,
        &cal,
        RUNS_PER_QUERY,
        "after the rebuild (its inverted index merged into one segment)",
    );
}
