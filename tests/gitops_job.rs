//! `spec.output.git` in the DreamSchedule API and in the dream Job: the token reaches the pod
//! from the Secret as an environment variable, the SSH key as read-only files, the settings as
//! `reverie dream --git-…` flags that parse back into the same settings.

use clap::Parser;
use k8s_openapi::api::batch::v1::Job;
use serde_json::{Value, json};

use reverie::api::dream_schedule::{ForgeType, Output};
use reverie::api::{Agent, DreamSchedule};
use reverie::cli::{Cli, Command};
use reverie::controller::dream_job::{PassPlan, Trigger, build};
use reverie::gitops::{self, SSH_KEY_DIR, TOKEN_ENV, USERNAME_ENV};
use reverie_api::test_support::{AgentBuilder, DreamScheduleBuilder};

/// Schedule `nightly` of agent `support` writing to `output`.
fn schedule(output: Value) -> DreamSchedule {
    DreamScheduleBuilder::new("nightly")
        .namespace("team")
        .uid("u-1")
        .cron("@daily")
        .spec(|spec| spec.output = serde_json::from_value(output).unwrap())
        .build()
}

fn agent() -> Agent {
    AgentBuilder::new("support")
        .namespace("team")
        .uid("uid-support")
        .sessions_host_path("/data/s")
        .build()
}

fn job(schedule: &DreamSchedule) -> Job {
    let support = agent();
    let plan = PassPlan {
        target: &support,
        pool: &[&support],
        min_agents: 1,
    };
    build(schedule, &plan, &Trigger::Now("x".into()), "reverie:test").unwrap()
}

fn pod(job: &Job) -> Value {
    serde_json::to_value(job).unwrap()["spec"]["template"]["spec"].clone()
}

fn command(job: &Job) -> Vec<String> {
    serde_json::from_value(pod(job)["containers"][0]["command"].clone()).unwrap()
}

fn flag(command: &[String], name: &str) -> Option<String> {
    let at = command.iter().position(|a| a == name)?;
    command.get(at + 1).cloned()
}

#[test]
fn the_default_output_is_the_cluster_and_adds_nothing_to_the_job() {
    let plain: DreamSchedule = serde_json::from_value(json!({
        "apiVersion": "reverie.dev/v1alpha1", "kind": "DreamSchedule",
        "metadata": {"name": "nightly", "namespace": "team", "uid": "u-1"},
        "spec": {"schedule": "@daily", "agents": {"names": ["support"]}}
    }))
    .unwrap();
    assert_eq!(plain.spec.output, Output::default());
    assert!(matches!(plain.spec.output, Output::Cluster(_)));
    let job = job(&plain);
    assert!(!command(&job).iter().any(|a| a.starts_with("--git")));
    assert!(
        pod(&job)["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["name"] != "git-work")
    );
}

#[test]
fn an_https_repository_gets_the_token_from_the_secret_and_a_writable_tmp() {
    let schedule = schedule(json!({"git": {
        "repository": "https://github.com/acme/agents.git",
        "authSecretRef": {"name": "git-credentials"},
        "forge": {"type": "github"},
        "author": {"name": "Dreamer", "email": "dreamer@example.com"}
    }}));
    let job = job(&schedule);
    let command = command(&job);
    assert_eq!(
        flag(&command, "--git-repository").as_deref(),
        Some("https://github.com/acme/agents.git")
    );
    assert_eq!(flag(&command, "--git-branch").as_deref(), Some("main"));
    assert_eq!(flag(&command, "--git-path").as_deref(), Some("memory-proposals"));
    assert_eq!(flag(&command, "--git-forge").as_deref(), Some("github"));
    assert_eq!(flag(&command, "--git-ssh-key-dir"), None);
    let pod = pod(&job);
    let env = pod["containers"][0]["env"].as_array().unwrap();
    let from = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))["valueFrom"]["secretKeyRef"]
            .clone()
    };
    assert_eq!(
        from(TOKEN_ENV),
        json!({"name": "git-credentials", "key": "token", "optional": true})
    );
    assert_eq!(
        from(USERNAME_ENV),
        json!({"name": "git-credentials", "key": "username", "optional": true})
    );
    assert!(env.iter().all(|e| e.get("value").is_none()), "no credential inlined");
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["name"] == "git-work" && v["emptyDir"].is_object())
    );
    assert!(volumes.iter().all(|v| v["name"] != "git-ssh"), "no SSH key for https");
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "git-work" && m["mountPath"] == "/tmp")
    );
    assert_eq!(
        pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true,
        "the clone goes to the /tmp volume, the root stays read-only"
    );
}

#[test]
fn an_ssh_repository_mounts_the_key_read_only() {
    let schedule = schedule(json!({"git": {
        "repository": "ssh://git@gitlab.example.com:2222/platform/agents.git",
        "branch": "develop",
        "path": "clusters/prod/memory",
        "authSecretRef": {"name": "git-ssh"},
        "forge": {"type": "gitlab", "project": "platform/agents"}
    }}));
    let job = job(&schedule);
    let command = command(&job);
    assert_eq!(flag(&command, "--git-ssh-key-dir").as_deref(), Some(SSH_KEY_DIR));
    assert_eq!(flag(&command, "--git-branch").as_deref(), Some("develop"));
    assert_eq!(
        flag(&command, "--git-forge-project").as_deref(),
        Some("platform/agents")
    );
    let pod = pod(&job);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "git-ssh")
        .cloned()
        .unwrap();
    assert_eq!(volume["secret"], json!({"secretName": "git-ssh", "defaultMode": 0o400}));
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "git-ssh")
        .cloned()
        .unwrap();
    assert_eq!(mount["mountPath"], SSH_KEY_DIR);
    assert_eq!(mount["readOnly"], true);
}

#[test]
fn the_job_flags_parse_back_into_the_schedule_settings() {
    let schedule = schedule(json!({"git": {
        "repository": "https://gitea.example.com/acme/agents.git",
        "branch": "memory",
        "path": "proposals",
        "authSecretRef": {"name": "git"},
        "forge": {"type": "gitea", "apiUrl": "https://gitea.example.com/api/v1", "project": "acme/agents"},
        "author": {"name": "Dreamer", "email": "dreamer@example.com"}
    }}));
    let Output::Git(mut expected) = schedule.spec.output.clone() else {
        panic!("git output")
    };
    let cli = Cli::try_parse_from(command(&job(&schedule))).unwrap();
    let Command::Dream(args) = cli.command else {
        panic!("the Job runs `reverie dream`")
    };
    let target = reverie::cli::dream::git_target(&args).unwrap().unwrap();
    expected.auth_secret_ref = None;
    assert_eq!(target.output, expected);
    assert_eq!(args.git_token_env, TOKEN_ENV);
    assert_eq!(args.git_username_env, USERNAME_ENV);
}

#[test]
fn bad_flags_are_refused_before_the_pass() {
    let cli = Cli::try_parse_from([
        "reverie",
        "dream",
        "--agent",
        "team/support",
        "--sessions",
        "/s",
        "--git-repository",
        "git@github.com:acme/agents.git",
        "--git-forge",
        "github",
    ])
    .unwrap();
    let Command::Dream(args) = cli.command else { panic!() };
    assert_eq!(args.git_forge, ForgeType::GitHub);
    let error = reverie::cli::dream::git_target(&args).unwrap_err();
    assert!(error.contains("--git-repository"), "{error}");
    assert!(Cli::try_parse_from(["reverie", "dream", "--sessions", "/s", "--git-forge", "bitbucket"]).is_err());
}

#[test]
fn the_crd_documents_the_output() {
    let crd = serde_json::to_value(reverie::api::all_crds()[1].clone()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    let git = &spec["output"]["properties"]["git"];
    assert!(git["description"].as_str().unwrap().contains("pull request"));
    for field in ["repository", "branch", "path", "authSecretRef", "forge", "author"] {
        assert!(git["properties"][field]["description"].is_string(), "{field}");
    }
    assert_eq!(git["required"], json!(["repository"]));
    let forge_types = &git["properties"]["forge"]["properties"]["type"]["enum"];
    assert_eq!(forge_types, &json!(["github", "gitlab", "gitea", "none"]));
    assert!(gitops::validate(&Output::default()).is_empty());
}
