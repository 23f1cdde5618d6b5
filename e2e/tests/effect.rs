//! Lesson effect in the cluster: a dream proposes two lessons, a reviewer approves them, later
//! sessions arrive labelled with the memory revision the agent ran with, and the next pass
//! records the effect of each lesson in its proposal, proposes archiving the one that did not
//! help, and exports the agent's lessons by verdict.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use reverie::api::effect::EffectVerdict;
use reverie::api::memory_proposal::ChangeOp;
use reverie::api::{Agent, DreamSchedule, MemoryProposal};
use reverie_api::test_support::DreamScheduleBuilder;
use reverie_dev::effect::{FIXED_TOOL, RECURRING_TOOL, write_sessions};
use reverie_e2e::{
    OperatorProcess, TestNamespace, apply, client, dream_now, dreaming_agent, first_pass, install_crds, wait_digest,
    wait_for, wait_revision,
};
use serde_json::json;

#[tokio::test]
async fn the_next_pass_measures_the_approved_lessons_and_proposes_archiving_the_one_that_did_not_help() {
    let client = client().await;
    install_crds(&client).await.unwrap();
    let ns = TestNamespace::create(&client, "effect").await.unwrap();
    let operator = OperatorProcess::start(&ns.name, "effect").await.unwrap();
    let agents = ns.api::<Agent>();
    let schedules = ns.api::<DreamSchedule>();
    let proposals = ns.api::<MemoryProposal>();
    let sessions = std::env::temp_dir().join(format!("reverie-e2e-{}-sessions", ns.name));
    let _ = std::fs::remove_dir_all(&sessions);
    // Sixty sessions run with revision 1, each mistake in 24 of them.
    write_sessions(&sessions, 0, 60, 1, false).unwrap();
    apply(&agents, &dreaming_agent("support", &sessions)).await.unwrap();
    wait_revision(&agents, "support", 1).await.unwrap();
    let schedule = DreamScheduleBuilder::new("nightly")
        .agents(&["support"])
        .spec(|spec| {
            spec.lookback.sessions = 60;
            spec.curation.effect.archive_ineffective_after = 40;
        })
        .build();
    apply(&schedules, &schedule).await.unwrap();

    // The first pass learns both mistakes; a reviewer approves: revision 2 holds them.
    let first = first_pass(&schedules, "nightly", "support").await.unwrap();
    let learned = first.proposal.clone().expect("a proposal with the two lessons");
    let proposal = proposals.get(&learned).await.unwrap();
    let lesson_from = |tool: &str| {
        proposal
            .spec
            .changes
            .iter()
            .find(|c| {
                c.op == ChangeOp::Add
                    && c.evidence
                        .as_ref()
                        .and_then(|e| e.pattern.as_ref())
                        .is_some_and(|p| p.tool.as_deref() == Some(tool))
            })
            .and_then(|c| c.id.clone())
            .unwrap_or_else(|| panic!("a lesson from {tool}, with its pattern: {:?}", proposal.spec.changes))
    };
    let (fixed, recurring) = (lesson_from(FIXED_TOOL), lesson_from(RECURRING_TOOL));
    assert!(proposal.spec.effects.is_empty(), "nothing to measure before any lesson");
    let digest = wait_digest(&proposals, &learned).await.unwrap();
    let approve = json!({"spec": {"approval": {"decision": "Approved", "reviewer": "ana", "digest": digest}}});
    proposals
        .patch(&learned, &PatchParams::default(), &Patch::Merge(&approve))
        .await
        .unwrap();
    wait_revision(&agents, "support", 2).await.unwrap();

    // Sixty later sessions ran with revision 2: the address mistake is gone, the e-mail one is
    // as frequent as before. Their start times say nothing: they are dated before the
    // approval, so only their revision puts them after the lessons.
    write_sessions(&sessions, 60, 60, 2, true).unwrap();
    dream_now(&schedules, "nightly", "2").await.unwrap();
    let first_job = first.job.clone();
    let second = wait_for(
        &schedules,
        "nightly",
        "the second pass finished",
        move |s: Option<&DreamSchedule>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|status| status.last_runs.iter().find(|r| r.agent == "support"))
                .is_some_and(|r| r.job != first_job && r.result == "Succeeded")
        },
    )
    .await
    .unwrap();
    let run = second
        .status
        .unwrap()
        .last_runs
        .into_iter()
        .find(|r| r.agent == "support")
        .unwrap();
    let measured = proposals
        .get(
            run.proposal
                .as_deref()
                .expect("a proposal that archives the idle lesson"),
        )
        .await
        .unwrap();
    let effect_of = |id: &str| {
        measured
            .spec
            .effects
            .iter()
            .find(|e| e.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("the effect of {id}: {:?}", measured.spec.effects))
    };
    let helped = effect_of(&fixed);
    assert_eq!(helped.verdict, EffectVerdict::Effective, "{helped:?}");
    assert_eq!(helped.adopted_revision, Some(2));
    assert_eq!((helped.before.sessions, helped.before.occurrences), (60, 24));
    assert_eq!((helped.after.sessions, helped.after.occurrences), (60, 0));
    assert!(
        helped.summary.starts_with("cut its mistake from 40% to 0% of sessions"),
        "{}",
        helped.summary
    );
    let idle = effect_of(&recurring);
    assert_eq!(idle.verdict, EffectVerdict::NoEffect, "{idle:?}");
    let archive = measured
        .spec
        .changes
        .iter()
        .find(|c| c.op == ChangeOp::Archive && c.id.as_deref() == Some(recurring.as_str()))
        .unwrap_or_else(|| panic!("the idle lesson proposed for archive: {:?}", measured.spec.changes));
    assert!(
        archive
            .rationale
            .as_deref()
            .unwrap_or_default()
            .starts_with("no-effect: did not move its mistake"),
        "{archive:?}"
    );
    assert!(
        !measured
            .spec
            .changes
            .iter()
            .any(|c| c.op == ChangeOp::Archive && c.id.as_deref() == Some(fixed.as_str())),
        "the lesson that helped is kept"
    );
    // The laptop command, on the same sessions and the memory the cluster holds, agrees.
    let memory = ns.api::<ConfigMap>().get("support-memory").await.unwrap();
    let memory_file = sessions.with_extension("memory.yaml");
    std::fs::write(&memory_file, &memory.data.unwrap()["memory.yaml"]).unwrap();
    let laptop = std::process::Command::new(reverie_e2e::reverie_bin())
        .args(["effect", "--output", "json", "--sessions"])
        .arg(&sessions)
        .arg("--memory")
        .arg(&memory_file)
        .output()
        .unwrap();
    assert!(laptop.status.success(), "{}", String::from_utf8_lossy(&laptop.stderr));
    let laptop: serde_json::Value = serde_json::from_slice(&laptop.stdout).unwrap();
    for lesson in laptop["lessons"].as_array().unwrap() {
        let in_cluster = effect_of(lesson["id"].as_str().unwrap());
        let side = |s: &reverie::api::effect::EffectSide| json!([s.sessions, s.occurrences]);
        assert_eq!(
            (
                json!(in_cluster.verdict),
                side(&in_cluster.before),
                side(&in_cluster.after)
            ),
            (
                lesson["verdict"].clone(),
                json!([lesson["before"]["sessions"], lesson["before"]["occurrences"]]),
                json!([lesson["after"]["sessions"], lesson["after"]["occurrences"]])
            ),
            "{lesson}"
        );
        assert_eq!(lesson["adopted"]["revision"], 2);
    }
    let _ = std::fs::remove_file(&memory_file);

    // The gauges are set right after the run is recorded: wait for them.
    let series = |verdict: &str| {
        format!(
            "reverie_lessons{{namespace=\"{}\",agent=\"support\",verdict=\"{verdict}\"}}",
            ns.name
        )
    };
    let gauges = async {
        while operator.metric(&series("effective")).await.unwrap() != 1.0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    reverie_e2e::within(reverie_e2e::TIMEOUT, gauges).await.unwrap();
    assert_eq!(operator.metric(&series("no-effect")).await.unwrap(), 1.0);
    assert_eq!(operator.metric(&series("regressed")).await.unwrap(), 0.0);
    drop(operator);
    ns.delete().await.unwrap();
    let _ = std::fs::remove_dir_all(&sessions);
}
