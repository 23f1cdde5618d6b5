//! Tests of whole passes over synthetic session directories: single-agent and collective.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;
use crate::dream::model::PatternKind;
use crate::dream::reflector::builtin::BuiltinReflector;

/// A directory removed when the test ends; unique per test and per call.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("reverie-pass-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn path(&self, agent: &str) -> PathBuf {
        self.0.join(agent)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Pattern A: a failing lookup whose error carries advice (ids vary, the pattern does not).
const A_ERROR: &str = "account {n} not found: use the billing id, not the email";
/// Pattern B: a rule a reviewer keeps stating.
const B_RULE: &str = "Please never schedule calls before 10am.";

/// Writes session `id` of `agent` under `dir/agent/relative`: a greeting, then pattern A and/or B.
fn write_session(dir: &TempDir, agent: &str, relative: &str, id: &str, day: u32, a: bool, b: bool) {
    let path = dir.path(agent).join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut lines = vec![
        format!(r#"{{"type":"session","id":"{id}","agent":"{agent}","started":"2026-11-{day:02}T10:00:00Z"}}"#),
        r#"{"type":"message","role":"user","text":"Hello, can you help me with my account?"}"#.to_string(),
        r#"{"type":"message","role":"assistant","text":"Of course."}"#.to_string(),
    ];
    if a {
        let error = A_ERROR.replace("{n}", &(1000 + day).to_string());
        lines.push(r#"{"type":"tool_call","name":"lookup_account","input":{"email":"a@b.c"}}"#.to_string());
        lines.push(format!(
            r#"{{"type":"tool_result","name":"lookup_account","ok":false,"error":"{error}"}}"#
        ));
    }
    if b {
        lines.push(format!(
            r#"{{"type":"feedback","from":"reviewer","rating":-1,"text":"{B_RULE}"}}"#
        ));
    }
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Three agents that all name their sessions `s-1`, `s-2`, …:
/// - `alpha`: A in s-1, s-2; two sessions without a pattern; s-1 stored a second time;
/// - `beta`: A in s-1, s-2; one session without;
/// - `gamma`: B in s-1 … s-4 (enough sessions, but one agent only).
fn three_agents(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    write_session(&dir, "alpha", "s-1.jsonl", "s-1", 1, true, false);
    write_session(&dir, "alpha", "s-2.jsonl", "s-2", 2, true, false);
    write_session(&dir, "alpha", "s-3.jsonl", "s-3", 3, false, false);
    write_session(&dir, "alpha", "s-4.jsonl", "s-4", 4, false, false);
    // The same session again (say, copied into an archive folder): counted once, per agent.
    write_session(&dir, "alpha", "archive/s-1.jsonl", "s-1", 1, true, false);
    write_session(&dir, "beta", "s-1.jsonl", "s-1", 5, true, false);
    write_session(&dir, "beta", "s-2.jsonl", "s-2", 6, true, false);
    write_session(&dir, "beta", "s-3.jsonl", "s-3", 7, false, false);
    for i in 1..=4 {
        write_session(
            &dir,
            "gamma",
            &format!("s-{i}.jsonl"),
            &format!("s-{i}"),
            7 + i,
            false,
            true,
        );
    }
    dir
}

fn settings() -> DreamSettings {
    DreamSettings {
        lookback_sessions: 50,
        max_age: None,
        label_selector: Vec::new(),
        min_evidence: 3,
        max_tokens: 16_000,
        stale_after: Duration::from_secs(30 * 86_400),
        ..DreamSettings::defaults("2026-12-01T00:00:00Z".parse().unwrap())
    }
}

async fn pass(roots: &[SessionRoot<'_>], min_agents: u32, settings: &DreamSettings) -> PassOutcome {
    let memory = MemoryDocument::default();
    run(PassInput {
        agent: "team",
        sessions: roots,
        min_agents,
        memory: &memory,
        settings,
        reflector: &BuiltinReflector,
        instructions: None,
        as_of_newest_session: true,
    })
    .await
    .expect("the pass runs")
}

fn proposal(outcome: PassOutcome) -> Proposal {
    match outcome {
        PassOutcome::Proposal(proposal) => *proposal,
        other => panic!("expected a proposal, got {other:?}"),
    }
}

fn roots<'a>(dir: &'a [(&'a str, PathBuf)]) -> Vec<SessionRoot<'a>> {
    dir.iter()
        .map(|(agent, path)| SessionRoot {
            agent,
            path,
            format: None,
        })
        .collect()
}

fn agent_dirs(dir: &TempDir, agents: &[&'static str]) -> Vec<(&'static str, PathBuf)> {
    agents.iter().map(|agent| (*agent, dir.path(agent))).collect()
}

fn pattern_a(proposal: &Proposal) -> Option<&Candidate> {
    proposal
        .candidates
        .iter()
        .find(|c| c.kind == PatternKind::Mistake && c.tool.as_deref() == Some("lookup_account"))
}

fn pattern_b(proposal: &Proposal) -> Option<&Candidate> {
    proposal.candidates.iter().find(|c| c.kind == PatternKind::Preference)
}

#[tokio::test]
async fn a_collective_pass_proposes_only_patterns_of_enough_agents() {
    let dir = three_agents("min-agents-2");
    let dirs = agent_dirs(&dir, &["alpha", "beta", "gamma"]);
    let proposal = proposal(pass(&roots(&dirs), 2, &settings()).await);

    let a = pattern_a(&proposal).expect("A recurs in two agents");
    assert_eq!(a.evidence.count, 4, "distinct sessions, over both agents");
    assert_eq!(a.agents, 2);
    assert!(pattern_b(&proposal).is_none(), "B recurs in one agent only");
    assert_eq!(proposal.candidates.len(), 1, "{:?}", proposal.candidates);

    let collective = proposal.stats.collective.as_ref().expect("collective stats");
    assert_eq!(
        collective,
        &CollectiveStats {
            agents: 3,
            min_agents: 2,
            below_agent_threshold: 1,
        }
    );
    // alpha 4 (its duplicate dropped), beta 3, gamma 4.
    assert_eq!(proposal.stats.sessions_reviewed, 11);
    assert!(
        proposal.summary.starts_with(
            "Reviewed 11 sessions pooled from 3 agents. A pattern had to recur in at least 2 agents: \
             1 pattern with enough sessions did not. "
        ),
        "{}",
        proposal.summary
    );
    // The lesson's evidence counts the same distinct sessions, under agent-qualified ids.
    assert_eq!(proposal.changes.len(), 1);
    let (_, entry) = proposal.result.entries().next().expect("the lesson was added");
    assert_eq!(entry.evidence.count, 4);
    assert!(
        entry
            .evidence
            .sessions
            .iter()
            .all(|s| s.starts_with("alpha/") || s.starts_with("beta/"))
    );
}

#[tokio::test]
async fn with_min_agents_one_every_pattern_with_enough_sessions_is_proposed() {
    let dir = three_agents("min-agents-1");
    let dirs = agent_dirs(&dir, &["alpha", "beta", "gamma"]);
    let proposal = proposal(pass(&roots(&dirs), 1, &settings()).await);

    let a = pattern_a(&proposal).expect("A");
    let b = pattern_b(&proposal).expect("B");
    assert_eq!((a.evidence.count, a.agents), (4, 2));
    assert_eq!((b.evidence.count, b.agents), (4, 1));
    assert_eq!(proposal.candidates.len(), 2, "{:?}", proposal.candidates);
    assert_eq!(proposal.stats.collective.as_ref().unwrap().below_agent_threshold, 0);
    assert!(
        proposal
            .summary
            .starts_with("Reviewed 11 sessions pooled from 3 agents. "),
        "{}",
        proposal.summary
    );
    assert_eq!(proposal.changes.len(), 2);
}

#[tokio::test]
async fn session_ids_colliding_across_agents_count_separately() {
    let dir = three_agents("colliding-ids");
    let dirs = agent_dirs(&dir, &["alpha", "beta", "gamma"]);
    let proposal = proposal(pass(&roots(&dirs), 2, &settings()).await);

    // alpha/s-1, alpha/s-2, beta/s-1, beta/s-2: four sessions, although only two ids; alpha's
    // s-1 stored twice is still one session. Examples come from both agents.
    let a = pattern_a(&proposal).unwrap();
    assert_eq!(a.evidence.count, 4);
    assert_eq!(a.evidence.sessions, ["alpha/s-1", "alpha/s-2", "beta/s-1", "beta/s-2"]);
    let duplicates: Vec<&str> = proposal
        .stats
        .files_skipped
        .iter()
        .filter(|f| f.reason.starts_with("duplicate of session"))
        .map(|f| f.reason.as_str())
        .collect();
    assert_eq!(duplicates, ["duplicate of session s-1: counted once"]);
    // Pooled without the agent threshold, the collision still does not merge sessions.
    let proposal = self::proposal(pass(&roots(&dirs), 1, &settings()).await);
    assert_eq!(pattern_a(&proposal).unwrap().evidence.count, 4);
}

#[tokio::test]
async fn the_lookback_selects_each_agents_most_recent_sessions() {
    let dir = three_agents("lookback");
    let dirs = agent_dirs(&dir, &["alpha", "beta", "gamma"]);
    let settings = DreamSettings {
        lookback_sessions: 3,
        ..settings()
    };
    let proposal = proposal(pass(&roots(&dirs), 2, &settings).await);
    // Three per agent. The nine most recent of the pool would leave out alpha's s-1 and s-2, and
    // A with them (two sessions); per agent, alpha still contributes its s-2.
    assert_eq!(proposal.stats.sessions_reviewed, 9);
    let a = pattern_a(&proposal).expect("A: alpha/s-2, beta/s-1, beta/s-2");
    assert_eq!(a.evidence.sessions, ["alpha/s-2", "beta/s-1", "beta/s-2"]);
    assert!(pattern_b(&proposal).is_none());
    assert_eq!(proposal.stats.collective.as_ref().unwrap().below_agent_threshold, 1);
}

#[tokio::test]
async fn roots_of_one_agent_are_one_agent() {
    let dir = three_agents("same-agent");
    let dirs = [("alpha", dir.path("alpha")), ("alpha", dir.path("beta"))];
    let settings = DreamSettings {
        min_evidence: 2,
        ..settings()
    };
    let proposal = proposal(pass(&roots(&dirs), 1, &settings).await);
    // One agent: no collective stats, ids as they are, and duplicates dropped across its roots:
    // beta's s-1, s-2 and s-3 are alpha's sessions again.
    assert!(proposal.stats.collective.is_none());
    assert_eq!(proposal.stats.sessions_reviewed, 4);
    let a = pattern_a(&proposal).unwrap();
    assert_eq!((a.evidence.count, a.agents), (2, 1));
    assert_eq!(a.evidence.sessions, ["s-1", "s-2"]);
    assert!(
        proposal.summary.starts_with("Reviewed 4 sessions. "),
        "{}",
        proposal.summary
    );
}

#[tokio::test]
async fn a_single_root_pass_mines_exactly_what_the_miner_does_alone() {
    let dir = TempDir::new("single");
    for i in 1..=3 {
        write_session(
            &dir,
            "solo",
            &format!("a-{i}.jsonl"),
            &format!("a-{i}"),
            i,
            true,
            i == 1,
        );
    }
    for i in 1..=4 {
        write_session(
            &dir,
            "solo",
            &format!("b/b-{i}.jsonl"),
            &format!("b-{i}"),
            3 + i,
            false,
            true,
        );
    }
    write_session(&dir, "solo", "copy/a-2.jsonl", "a-2", 2, true, false);
    let root = dir.path("solo");
    let proposal = proposal(
        pass(
            &[SessionRoot {
                agent: "solo",
                path: &root,
                format: None,
            }],
            1,
            &settings(),
        )
        .await,
    );

    // The same selection, streamed through a plain single-agent miner, as before pooling existed.
    let mut read = ReadStats::default();
    let sessions = select_recent(&[(root.as_path(), None)], &settings(), &mut read).unwrap();
    let mut miner = Miner::new(crate::dream::signals::MineSettings::new(settings().min_evidence));
    stream(&sessions, &mut miner, &mut read);
    let mined = miner.finish();
    assert_eq!(mined.candidates.len(), 2, "{:?}", mined.candidates);
    assert_eq!(proposal.candidates, mined.candidates);
    assert_eq!(proposal.stats.below_threshold, mined.stats.below_threshold);
    assert_eq!(proposal.stats.sessions_reviewed, 7);
    assert_eq!(proposal.stats.files_found, 8);
    assert_eq!(proposal.stats.files_skipped, read.files_skipped);
    assert_eq!(pattern_a(&proposal).unwrap().evidence.sessions, ["a-1", "a-2", "a-3"]);

    // Nothing collective shows: no stats, no agent counts, ids as the sessions name them.
    assert!(proposal.stats.collective.is_none());
    let json = serde_json::to_value(&proposal.stats).unwrap();
    assert!(json.get("collective").is_none(), "{json}");
    for candidate in &proposal.candidates {
        assert_eq!(candidate.agents, 1);
        assert!(serde_json::to_value(candidate).unwrap().get("agents").is_none());
    }
    assert!(
        proposal.summary.starts_with("Reviewed 7 sessions. "),
        "{}",
        proposal.summary
    );
}

#[tokio::test]
async fn a_collective_pass_over_no_sessions_says_so() {
    let dir = TempDir::new("empty");
    for agent in ["alpha", "beta"] {
        fs::create_dir_all(dir.path(agent)).unwrap();
    }
    let dirs = agent_dirs(&dir, &["alpha", "beta"]);
    match pass(&roots(&dirs), 2, &settings()).await {
        PassOutcome::NoSessions(stats) => {
            assert_eq!(stats.collective.unwrap().agents, 2);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_missing_agent_root_fails_the_pass() {
    let dir = three_agents("missing");
    let dirs = agent_dirs(&dir, &["alpha", "nobody"]);
    let memory = MemoryDocument::default();
    let error = run(PassInput {
        agent: "team",
        sessions: &roots(&dirs),
        min_agents: 2,
        memory: &memory,
        settings: &settings(),
        reflector: &BuiltinReflector,
        instructions: None,
        as_of_newest_session: true,
    })
    .await
    .unwrap_err();
    assert!(
        matches!(error, PassError::Sessions(SessionsError::NotFound { .. })),
        "{error}"
    );
}
