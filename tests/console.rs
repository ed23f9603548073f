//! The admin console in a real browser: Debian's Chromium, driven by playwright-core and
//! checked with axe (tests/browser/console.mjs; `bash scripts/install-browser.sh` installs
//! them), against the real binary in front of the mock gateway. Screenshots of every page at 1280×800 and
//! 390×844 land in `<target>/tmp/console-screenshots/`.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Where scripts/install-browser.sh put playwright-core.
fn browser_env() -> PathBuf {
    let dir = std::env::var_os("MEMGATE_BROWSER_ENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/memgate-browser"))
        })
        .expect("HOME or MEMGATE_BROWSER_ENV");
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .exists(),
        "{} has no playwright-core: run `bash scripts/install-browser.sh` (scripts/test.sh does)",
        dir.display()
    );
    dir
}

fn chromium() -> String {
    let path = std::env::var("MEMGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: run `bash scripts/install-browser.sh` (scripts/test.sh does)"
    );
    path
}

async fn dead_letters(mg: &Memgate) -> i64 {
    let (status, list) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/outbox?state=dead", None)
        .await;
    assert_eq!(status, 200, "{list}");
    list["total"].as_i64().unwrap()
}

/// A turn whose ingestion failed for good, for the operations page to send back.
async fn make_a_dead_letter(mg: &Memgate, mock: &MockGateway) {
    mg.create_session(ACME_ADMIN, "ledger").await;
    mock.set_embeddings_failing(true);
    let answer = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("ledger"), "The ledger closes on Fridays.", false),
        )
        .await;
    assert_eq!(answer.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while dead_letters(mg).await == 0 {
        assert!(Instant::now() < deadline, "the turn never died");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mock.set_embeddings_failing(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let browser_env = browser_env();
    let chromium = chromium();
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_WORKER__MAX_ATTEMPTS", "2")]).await;
    make_a_dead_letter(&mg, &mock).await;

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let script = format!("{}/tests/browser/console.mjs", env!("CARGO_MANIFEST_DIR"));
    let env = [
        ("ADMIN_URL", mg.admin.clone()),
        ("PROXY_URL", mg.proxy.clone()),
        ("ACME_ADMIN", ACME_ADMIN.to_string()),
        ("ACME_MEMBER", ACME_MEMBER.to_string()),
        ("GLOBEX_ADMIN", GLOBEX_ADMIN.to_string()),
        ("SCREENSHOTS", shots.display().to_string()),
        ("CHROMIUM", chromium),
        ("BROWSER_ENV", browser_env.display().to_string()),
    ];
    let mut node = Command::new("node");
    node.arg(script).envs(env);
    let lines = json_lines_of(
        node,
        "the browser run (bash scripts/install-browser.sh)",
        || format!("memgate's log:\n{}", mg.log()),
    )
    .await;
    let printed = format!("{lines:?}");
    assert_eq!(lines.last(), Some(&json!({"done": true})), "{printed}");
    let shots_taken: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("screenshot").is_some())
        .collect();
    for size in ["1280x800", "390x844"] {
        for page in [
            "signin",
            "sessions",
            "session-config",
            "session-facts",
            "session-history",
            "session-search",
            "session-graph",
            "usage",
            "operations",
        ] {
            let file = shots.join(format!("{size}-{page}.png"));
            let bytes = std::fs::read(&file)
                .unwrap_or_else(|e| panic!("{}: {e}\n{printed}", file.display()));
            assert!(
                bytes.starts_with(b"\x89PNG"),
                "{} is no PNG",
                file.display()
            );
        }
    }
    assert!(shots_taken.len() >= 18, "{printed}");

    // What the browser did, as the API sees it.
    let facts = mg.facts(ACME_ADMIN, "alice-console").await;
    assert!(
        facts
            .iter()
            .any(|f| f == "I prefer summaries under 200 words"),
        "{facts:?}"
    );
    assert!(
        !facts.iter().any(|f| f == "My team is in Singapore"),
        "{facts:?}"
    );
    let (_, session) = mg
        .api(
            "GET",
            Some(ACME_ADMIN),
            "/memory/session/alice-console",
            None,
        )
        .await;
    assert_eq!(session["config"]["max_facts"], 500);
    assert_eq!(session["config"]["placement"], "before_last_user");
    // The detectors left at the server's default are null, the one set is on.
    assert_eq!(
        session["config"]["redaction"],
        json!({"email": true, "phone": null, "card": null, "iban": null, "ip": null, "secret": null, "custom": []})
    );
    let (status, _) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/session/graph-demo", None)
        .await;
    assert_eq!(status, 404, "the console deleted the cognee session");
    assert_eq!(dead_letters(&mg).await, 0, "the dead letter went back");
    mg.wait_for_fact(ACME_ADMIN, "ledger", "The ledger closes on Fridays")
        .await;
    let log = mg.log();
    for key in [ACME_ADMIN, ACME_MEMBER, GLOBEX_ADMIN] {
        assert!(!log.contains(key), "memgate logged a key the console sent");
    }
}

/// The console's files carry the policy that keeps every other origin out, and are served
/// without a key; an unknown file is a 404 in the API's error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_assets_are_served_under_a_strict_policy() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    for (path, content_type) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/js/app.js", "text/javascript"),
        ("/ui/console.css", "text/css"),
    ] {
        let response = mg
            .http
            .get(format!("{}{path}", mg.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let policy = header("content-security-policy");
        assert!(policy.starts_with("default-src 'self'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        let etag = header("etag");
        let again = mg
            .http
            .get(format!("{}{path}", mg.admin))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let missing = mg
        .http
        .get(format!("{}/ui/js/missing.js", mg.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}
