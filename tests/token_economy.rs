//! A model reflector sees pre-mined candidates, never the raw lookback window: the prompt is at
//! least ten times smaller than the transcripts it summarises.

use reverie::dream::model::DreamSettings;
use reverie::dream::pass::{self, PassInput, PassOutcome, SessionRoot};
use reverie::dream::reflector::builtin::BuiltinReflector;
use reverie::dream::reflector::{ReflectRequest, full_window_tokens, prompt_tokens};
use reverie::memory::MemoryDocument;
use reverie_dev::synth::{SynthConfig, generate};

#[tokio::test]
async fn the_prompt_is_at_least_ten_times_smaller_than_the_window() {
    let dir = std::env::temp_dir().join(format!("reverie-token-economy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The default planted corpus (120 sessions), of which the lookback reviews the latest 50.
    let config = SynthConfig {
        seed: 5,
        ..SynthConfig::default()
    };
    generate(&config, &dir).unwrap();
    let settings = DreamSettings::defaults("2026-12-01T00:00:00Z".parse().unwrap());
    let memory = MemoryDocument::default();
    let outcome = pass::run(PassInput {
        agent: "support-bot",
        sessions: &[SessionRoot {
            agent: "support-bot",
            path: &dir,
            format: None,
        }],
        min_agents: 1,
        memory: &memory,
        settings: &settings,
        reflector: &BuiltinReflector,
        instructions: None,
        as_of_newest_session: true,
    })
    .await
    .unwrap();
    let PassOutcome::Proposal(proposal) = outcome else {
        panic!("the planted corpus yields a proposal")
    };
    let request = ReflectRequest {
        candidates: &proposal.candidates,
        memory: &memory,
        min_evidence: 3,
        max_tokens: 16_000,
        instructions: None,
    };
    let prompt = prompt_tokens(&request) as u64;
    let window = full_window_tokens(proposal.stats.bytes_read);
    println!(
        "prompt {prompt} tokens, full window {window} tokens, {:.1}x fewer",
        window as f64 / prompt as f64
    );
    assert!(prompt > 0);
    assert!(window >= 10 * prompt, "prompt {prompt} tokens vs window {window}");
    assert_eq!(proposal.stats.tokens_full_window, window);
    std::fs::remove_dir_all(dir).unwrap();
}
