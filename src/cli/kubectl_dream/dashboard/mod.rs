//! `kubectl dream dashboard`: the review pages, served by this binary on the reviewer's own
//! machine and talking to the API server with the reviewer's own credentials.
//!
//! Nothing is installed in the cluster and no new identity exists: every read and every
//! decision is a request the caller could make with `kubectl dream`, and the API server's
//! authorization and approval policy answer it as they would there.
//!
//! Reading order: [`read`] fetches what a page shows, [`views`] turns it into HTML (pure, with
//! [`markdown`], [`word_diff`] and [`chart`]), [`server`] routes requests through [`guard`]'s
//! checks, and [`live`] tells open pages when the cluster changed.

pub mod chart;
pub mod guard;
pub mod live;
pub mod markdown;
pub mod read;
pub mod server;
pub mod views;
pub mod word_diff;

use std::net::{IpAddr, SocketAddr};

use super::Session;

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// Port to listen on (0: any free port; the URL printed says which).
    #[arg(long, default_value_t = 3100)]
    pub port: u16,
    /// Address to listen on. Anything but loopback also needs --allow-remote: whoever reaches
    /// the page acts with your credentials.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// Allow an --address other than loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Show every namespace (the default is the namespace of -n or the context).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// The namespaces the dashboard shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

impl Scope {
    /// Whether a page about `namespace` belongs to this dashboard.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Scope::Namespace(n) => n == namespace,
            Scope::All => true,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Scope::Namespace(n) => format!("namespace {n}"),
            Scope::All => "all namespaces".to_string(),
        }
    }
}

/// Where to listen, once the flags are checked: loopback, or another address the caller
/// explicitly allowed (with the warning printed).
pub fn listen_address(args: &DashboardArgs) -> Result<SocketAddr, String> {
    if !args.address.is_loopback() && !args.allow_remote {
        return Err(format!(
            "--address {} is not a loopback address: anyone who reaches it would act with your credentials; add --allow-remote if that is what you want",
            args.address
        ));
    }
    Ok(SocketAddr::new(args.address, args.port))
}

/// Serves until SIGINT or SIGTERM. Prints the URL (and opens nothing).
pub(super) async fn run(session: Session, args: &DashboardArgs) -> Result<String, String> {
    let address = listen_address(args)?;
    let scope = if args.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(session.namespace.clone())
    };
    let user = session.whoami().await?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot tell the address listened on: {e}"))?;
    if !bound.ip().is_loopback() {
        eprintln!("warning: serving on {bound}, not loopback: whoever reaches it approves and rejects as {user}");
    }
    let cluster = read::Cluster::new(session.client, scope.clone());
    let state = server::State::new(cluster, user.clone(), bound)?;
    println!(
        "Serving the reverie dashboard for {} as {user} at {}",
        scope.describe(),
        state.guard.origin()
    );
    println!("Press Ctrl-C to stop.");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    server::serve(listener, state)
        .await
        .map_err(|e| format!("the dashboard stopped: {e}"))?;
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(address: &str, allow_remote: bool) -> DashboardArgs {
        DashboardArgs {
            port: 3100,
            address: address.parse().unwrap(),
            allow_remote,
            all_namespaces: false,
        }
    }

    #[test]
    fn only_loopback_unless_remote_is_allowed() {
        assert_eq!(
            listen_address(&args("127.0.0.1", false)).unwrap().to_string(),
            "127.0.0.1:3100"
        );
        assert_eq!(listen_address(&args("::1", false)).unwrap().to_string(), "[::1]:3100");
        let err = listen_address(&args("0.0.0.0", false)).unwrap_err();
        assert!(err.contains("--allow-remote"), "{err}");
        assert!(listen_address(&args("0.0.0.0", true)).is_ok());
    }

    #[test]
    fn a_namespace_scope_holds_only_its_namespace() {
        let team = Scope::Namespace("team".into());
        assert!(team.contains("team"));
        assert!(!team.contains("other"));
        assert!(Scope::All.contains("other"));
    }
}
