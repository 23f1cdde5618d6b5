//! A real browser for the dashboard's tests: Debian's Chromium, headless, driven over
//! WebDriver by its ChromeDriver (both from `e2e/peers/install-chromium.sh`), and the
//! `kubectl dream dashboard` process it looks at.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{TIMEOUT, free_port, kubectl_dream_bin, reverie_bin};

/// Flags Chromium needs here: headless as root, and no calls home (a closed network refuses
/// them, many at a time).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// A headless Chromium session; ChromeDriver is killed when dropped.
pub struct Browser {
    pub client: Client,
    _driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts ChromeDriver (`$CHROMEDRIVER_BIN`, else `/usr/bin/chromedriver`) and a session of
    /// Chromium (`$CHROMIUM_BIN`, else `/usr/bin/chromium`) with a fresh profile.
    pub async fn start() -> Result<Self> {
        let driver_bin = std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port()?;
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {driver_bin} (install it with e2e/peers/install-chromium.sh)"))?;
        let profile = std::env::temp_dir().join(format!("reverie-e2e-chromium-{port}"));
        let _ = std::fs::remove_dir_all(&profile);
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        // ChromeDriver listens a moment after it starts: retry the session until it answers.
        let mut last_error = String::new();
        let connected = crate::within(TIMEOUT, async {
            loop {
                match ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await
                {
                    Ok(client) => return client,
                    Err(e) => last_error = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        let client = connected.map_err(|_| anyhow!("no Chromium session from {driver_bin}: {last_error}"))?;
        Ok(Self {
            client,
            _driver: driver,
            profile,
        })
    }

    /// The text of the first element matching `css`, waiting for it to appear.
    pub async fn text(&self, css: &str) -> Result<String> {
        match self.client.wait().at_most(TIMEOUT).for_element(Locator::Css(css)).await {
            Ok(element) => Ok(element.text().await?),
            Err(e) => {
                let url = self
                    .client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                let body = self
                    .client
                    .execute("return document.body ? document.body.innerText : '';", vec![])
                    .await
                    .unwrap_or_default();
                bail!(
                    "waiting for {css} on {url}: {e}; the page reads: {}",
                    body.as_str().unwrap_or_default()
                )
            }
        }
    }

    /// Clicks the first element `locator` finds, waiting for it to appear.
    pub async fn click(&self, locator: Locator<'_>) -> Result<()> {
        let element = self.client.wait().at_most(TIMEOUT).for_element(locator).await?;
        element.click().await?;
        Ok(())
    }

    /// Waits until the text of `css` satisfies `ready` (the page changes it by itself, without
    /// a reload); returns that text.
    pub async fn wait_text(&self, css: &str, ready: impl Fn(&str) -> bool) -> Result<String> {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;";
        let mut last = String::new();
        let found = crate::within(TIMEOUT, async {
            loop {
                let value = self.client.execute(script, vec![json!(css)]).await?;
                last = value.as_str().unwrap_or_default().to_string();
                if ready(&last) {
                    return Ok::<_, anyhow::Error>(last.clone());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        match found {
            Ok(text) => text,
            Err(_) => bail!("{css} never got there; it last read {last:?}"),
        }
    }

    /// How often the page swapped in fresh content by itself (its live updates).
    pub async fn refreshes(&self) -> Result<u64> {
        let value = self
            .client
            .execute("return Number(document.body.dataset.refreshes || 0);", vec![])
            .await?;
        Ok(value.as_u64().unwrap_or_default())
    }

    /// Saves a PNG of the window to the test output, `$REVERIE_SCREENSHOTS` (else
    /// `<target>/e2e-screenshots`); returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let dir = std::env::var("REVERIE_SCREENSHOTS").map_or_else(
            |_| {
                reverie_bin()
                    .parent()
                    .and_then(|debug| debug.parent())
                    .map_or_else(|| PathBuf::from("target"), PathBuf::from)
                    .join("e2e-screenshots")
            },
            PathBuf::from,
        );
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await?)?;
        eprintln!("screenshot: {}", path.display());
        Ok(path)
    }

    /// Ends the browser session.
    pub async fn close(self) -> Result<()> {
        self.client.close().await?;
        let _ = std::fs::remove_dir_all(&self.profile);
        Ok(())
    }
}

/// `kubectl dream dashboard` running as a child process; killed when dropped.
pub struct Dashboard {
    pub url: String,
    _child: Child,
}

impl Dashboard {
    /// Starts the dashboard on a free port with `args` (e.g. `-n NS --as USER`) and waits for
    /// the URL it prints.
    pub async fn start(args: &[&str]) -> Result<Self> {
        let bin = kubectl_dream_bin();
        let mut child = Command::new(&bin)
            .args(["dashboard", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = crate::within(TIMEOUT, lines.next_line())
            .await??
            .ok_or_else(|| anyhow!("the dashboard exited before printing its URL"))?;
        let url = first
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .ok_or_else(|| anyhow!("no URL in the dashboard's first line: {first}"))?
            .to_string();
        // Keep reading stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { url, _child: child })
    }
}
