//! The dashboard in a real browser: headless Chromium from Debian's
//! `chromium` package, driven through its `chromedriver` over WebDriver,
//! against the real server and PostgreSQL. `.ci/run` installs both with apt
//! when they are missing.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etl_tests::{TestApp, TestTenant};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(15);

/// A chromedriver process on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: apt-get install chromium chromium-driver (.ci/run does)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let listening = etl_store::test_support::poll_blocking(WAIT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(listening.is_some(), "chromedriver did not listen");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1800",
                         "--no-first-run", "--disable-extensions"],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn store(app: &TestApp, tenant: &TestTenant, id: usize) -> i64 {
    let body = json!({"integration_id": tenant.integration, "entity_type": "jira_issues",
        "raw_data": {"id": id.to_string(), "key": format!("D-{id}"), "fields": {"summary": "s"}}});
    let response = app
        .post_json("/api/v1/etl/raw-data/store", tenant, &body)
        .await;
    assert_eq!(response.status(), 201);
    etl_tests::json(response).await["record_id"]
        .as_i64()
        .expect("id")
}

/// Waits until `script` (a function body returning a value) returns
/// something other than null or false, and returns it.
async fn poll_js(browser: &Client, script: &str) -> Value {
    let value = etl_tests::poll_until(WAIT, || async {
        let value = browser.execute(script, vec![]).await.expect("script");
        (!(value.is_null() || value == Value::Bool(false))).then_some(value)
    })
    .await;
    value.unwrap_or_else(|| panic!("never true: {script}"))
}

async fn sign_in(browser: &Client, token: &str) {
    let input = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#sign-in:not([hidden]) #token"))
        .await
        .expect("the page asks for a token");
    input.send_keys(token).await.expect("typing");
    browser
        .find(Locator::Css("#sign-in button[type=submit]"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("click");
}

/// The number a dashboard cell shows, read as a person reads it ("1,234").
async fn cell(browser: &Client, selector: &str) -> i64 {
    let script =
        format!("const c = document.querySelector({selector:?}); return c ? c.textContent : null;");
    let text = poll_js(browser, &script).await;
    text.as_str()
        .expect("text")
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("{selector}: {text}"))
}

fn screenshot_path(name: &str) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&target).expect("target dir");
    target.join(name)
}

#[tokio::test]
async fn the_dashboard_shows_the_tenants_figures_and_replays_a_failure_group() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    let other = app.tenant("other");
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(store(&app, &acme, i).await);
    }
    let theirs = store(&app, &other, 101).await;
    // Failed as a client reports it, through the API.
    for (tenant, id) in ids[0..3]
        .iter()
        .map(|id| (&acme, *id))
        .chain([(&other, theirs)])
    {
        let response = app
            .authed(
                reqwest::Method::PUT,
                &format!("/api/v1/etl/raw-data/{id}/status"),
                tenant,
            )
            .json(&json!({"status": "failed", "error_details":
                {"code": "missing_field", "message": "fields.summary is missing"}}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
    }
    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.goto(&app.url("/dashboard")).await.expect("open");
    sign_in(&browser, &acme.token).await;

    // The counts are the tenant's, as SQL has them.
    let sql = |status: &str| {
        app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data WHERE tenant_id = {} AND processing_status = '{status}'",
            acme.id
        ))
    };
    let shown_failed = cell(
        &browser,
        "#raw-records td[data-kind=jira_issues][data-status=failed]",
    )
    .await;
    assert_eq!(shown_failed, sql("failed"));
    assert_eq!(shown_failed, 3);
    let shown_pending = cell(
        &browser,
        "#raw-records td[data-kind=jira_issues][data-status=pending]",
    )
    .await;
    assert_eq!(shown_pending, sql("pending"));
    assert_eq!(
        cell(
            &browser,
            "#raw-records td[data-kind=jira_issues][data-status=total]"
        )
        .await,
        7,
        "the other tenant's record is not counted"
    );
    // The failure group, with its sample and a Replay button a screen
    // reader can find by name.
    let group = poll_js(
        &browser,
        "const r = document.querySelector('#failures tr[data-code=missing_field]');
         return r ? [r.cells[0].textContent, r.cells[1].textContent, r.cells[2].textContent, r.cells[3].textContent] : null;",
    )
    .await;
    assert_eq!(
        group,
        json!([
            "jira_issues",
            "missing_field",
            "3",
            "fields.summary is missing"
        ])
    );
    let replay = browser
        .find(Locator::XPath(
            "//button[starts-with(@aria-label, 'Replay 3 failed jira_issues records with code missing_field')]",
        ))
        .await
        .expect("a Replay button named for its group");
    assert_eq!(replay.text().await.expect("text"), "Replay");
    let _ = std::fs::write(
        screenshot_path("dashboard.png"),
        browser.screenshot().await.expect("screenshot"),
    );
    replay.click().await.expect("replay");
    let left = etl_tests::poll_until(WAIT, || async { (sql("failed") == 0).then_some(()) }).await;
    assert!(left.is_some(), "the records left failed in PostgreSQL");
    assert_eq!(sql("processing"), 3, "queued for transform");
    let status = poll_js(
        &browser,
        "const s = document.getElementById('status').textContent; return s.includes('Replay queued') ? s : null;",
    )
    .await;
    assert!(
        status
            .as_str()
            .unwrap_or_default()
            .contains("3 jira_issues records in 1 job"),
        "{status}"
    );
    // The page refreshed itself: the group is gone, the job is listed.
    poll_js(
        &browser,
        "return document.querySelector('#failures tr[data-code]') === null;",
    )
    .await;
    poll_js(
        &browser,
        "return document.querySelectorAll('#recent tbody tr').length === 1;",
    )
    .await;
    // The replay's job waits (no worker here): the Jobs card gives its
    // age, and says no job runs.
    let ages = poll_js(
        &browser,
        "const w = document.getElementById('job-waiting-age').textContent;
         const r = document.getElementById('job-running-age').textContent;
         return w.endsWith(' s') ? [w, r] : null;",
    )
    .await;
    assert_eq!(ages[1], "—", "{ages}");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM raw_extraction_data WHERE tenant_id = {} AND processing_status = 'failed'",
            other.id
        )),
        1,
        "the other tenant's failure is untouched"
    );

    // Nothing left this origin, and the token is in this tab's
    // sessionStorage only: not in the URL, not in localStorage.
    let origin = app.url("");
    let elsewhere = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)
                 .filter(n => !n.startsWith(arguments[0]));",
            vec![json!(origin)],
        )
        .await
        .expect("resources");
    assert_eq!(elsewhere, json!([]), "requests to another origin");
    let url = browser.current_url().await.expect("url");
    assert!(
        !url.as_str().contains(&acme.token),
        "token in the URL: {url}"
    );
    let storage = browser
        .execute(
            "return [localStorage.length, document.cookie, Object.values(sessionStorage)];",
            vec![],
        )
        .await
        .expect("storage");
    assert_eq!(storage, json!([0, "", [acme.token.clone()]]));
    // A reload of the tab does not ask again.
    browser.refresh().await.expect("reload");
    poll_js(&browser, "return !document.getElementById('board').hidden;").await;
    assert!(browser
        .execute("return document.getElementById('sign-in').hidden;", vec![])
        .await
        .expect("form")
        .as_bool()
        .unwrap_or(false));
    let _ = std::fs::write(
        screenshot_path("dashboard-after-replay.png"),
        browser.screenshot().await.expect("screenshot"),
    );
    browser.close().await.expect("close");
    app.stop().await;
}

/// SPEC §7.4: the Flow card shows the tenant's figures of the last 30
/// days as `GET /flow-metrics` answers them, in units a person reads.
#[tokio::test]
async fn the_flow_card_shows_the_last_30_days_as_a_person_reads_them() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    let other = app.tenant("other");
    let github = app.create_integration(acme.id, "github", true);
    // Lead times of 1 h, 2 h and 3 days, resolved in the window; one
    // resolved 40 days ago and another tenant's, both left out.
    for (tenant, integration, key, lead_hours, resolved_days_ago) in [
        (acme.id, acme.integration, "F-1", 1, 1),
        (acme.id, acme.integration, "F-2", 2, 2),
        (acme.id, acme.integration, "F-3", 72, 3),
        (acme.id, acme.integration, "F-4", 500, 40),
        (other.id, other.integration, "F-5", 900, 1),
    ] {
        app.execute(&format!(
            "INSERT INTO work_items (tenant_id, integration_id, external_id, key, summary, source_created_at, resolved_at)
             VALUES ({tenant}, {integration}, '{key}', '{key}', 's',
                     now() - interval '{resolved_days_ago} days' - interval '{lead_hours} hours',
                     now() - interval '{resolved_days_ago} days')"
        ));
    }
    // One merged pull request: coding 30 min, pickup 5 h, review 2 days.
    app.execute(&format!(
        "INSERT INTO pull_requests (tenant_id, integration_id, external_id, repository, number, state,
                                    first_commit_at, source_created_at, first_review_at, merged_at)
         VALUES ({tenant}, {github}, '1', 'acme/shop', 1, 'merged',
                 now() - interval '10 days' - interval '30 minutes', now() - interval '10 days',
                 now() - interval '10 days' + interval '5 hours',
                 now() - interval '8 days' + interval '5 hours')",
        tenant = acme.id
    ));
    let api = etl_tests::json(app.get_as("/api/v1/etl/flow-metrics", &acme).await).await;
    assert_eq!(api["work_items"]["count"], 3, "{api}");
    assert_eq!(api["work_items"]["lead_time_s"]["p50"], 7200.0);

    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.goto(&app.url("/dashboard")).await.expect("open");
    sign_in(&browser, &acme.token).await;
    let rows = poll_js(
        &browser,
        "const rows = [...document.querySelectorAll('#flow tbody tr')];
         return rows.length === 5 ? rows.map(r => [r.dataset.figure, ...[...r.cells].slice(1).map(c => c.textContent)]) : null;",
    )
    .await;
    assert_eq!(
        rows,
        json!([
            // p85 and p95 interpolate between 2 h and 3 days: 51 h and 65 h.
            ["lead_time_s", "2 h", "2.1 days", "2.7 days"],
            ["cycle_time_s", "—", "—", "—"],
            ["coding_time_s", "30 min", "30 min", "30 min"],
            ["pickup_time_s", "5 h", "5 h", "5 h"],
            ["review_time_s", "2 days", "2 days", "2 days"],
        ])
    );
    // Each cell holds the API's figure.
    let seconds = browser
        .execute(
            "return [...document.querySelectorAll('#flow tr[data-figure=lead_time_s] td')].map(c => Number(c.dataset.seconds));",
            vec![],
        )
        .await
        .expect("cells");
    let shown: Vec<f64> = serde_json::from_value(seconds).expect("numbers");
    let answered: Vec<f64> = ["p50", "p85", "p95"]
        .iter()
        .map(|p| {
            api["work_items"]["lead_time_s"][p]
                .as_f64()
                .expect("a figure")
        })
        .collect();
    assert_eq!(shown, answered);
    let summary = poll_js(
        &browser,
        "return document.getElementById('flow-summary').textContent;",
    )
    .await;
    assert_eq!(
        summary,
        "3 work items resolved and 1 pull request merged in the last 30 days"
    );
    let _ = std::fs::write(
        screenshot_path("dashboard-flow.png"),
        browser.screenshot().await.expect("screenshot"),
    );
    browser.close().await.expect("close");
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_says_when_the_token_is_wrong_or_expired() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.goto(&app.url("/dashboard")).await.expect("open");
    // Not a token at all: said before anything is sent.
    sign_in(&browser, "hunter2").await;
    let notice = poll_js(
        &browser,
        "const n = document.getElementById('notice'); return n.hidden ? null : n.textContent;",
    )
    .await;
    assert!(
        notice.as_str().unwrap_or_default().contains("not a token"),
        "{notice}"
    );
    // Signed with another secret.
    let forged = etl_http::auth::JwtKeys::new(&etl_http::auth::JwtSecret::new(
        "another-secret-of-at-least-32-bytes!",
    ))
    .issue("intruder", acme.id, chrono::Duration::hours(1));
    sign_in(&browser, &forged).await;
    let notice = poll_js(
        &browser,
        "const n = document.getElementById('notice'); return n.textContent.includes('refused') ? n.textContent : null;",
    )
    .await;
    assert!(
        notice.as_str().unwrap_or_default().contains("signature"),
        "{notice}"
    );
    // Expired.
    let expired = app.keys.sign(&etl_domain::Claims {
        sub: "svc".into(),
        tenant_id: acme.id,
        exp: chrono::Utc::now().timestamp() - 60,
    });
    sign_in(&browser, &expired).await;
    let notice = poll_js(
        &browser,
        "const n = document.getElementById('notice'); return n.textContent.includes('expired') ? n.textContent : null;",
    )
    .await;
    assert!(
        notice.as_str().unwrap_or_default().contains("refused"),
        "{notice}"
    );
    // A refused token is not kept.
    let kept = browser
        .execute(
            "return sessionStorage.length + localStorage.length;",
            vec![],
        )
        .await
        .expect("storage");
    assert_eq!(kept, json!(0));
    // No token: the page asks for one and shows no figures.
    assert!(browser
        .execute("return document.getElementById('board').hidden;", vec![])
        .await
        .expect("board")
        .as_bool()
        .unwrap_or(false));
    browser.close().await.expect("close");
    app.stop().await;
}

/// SPEC §5: `GET /docs` is interactive documentation of the served
/// document, and loads nothing from another host.
#[tokio::test]
async fn the_docs_page_lists_every_operation_and_loads_nothing_from_elsewhere() {
    let app = TestApp::spawn().await;
    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.goto(&app.url("/docs")).await.expect("open /docs");
    // Swagger UI renders one block per operation of the document.
    let operations = poll_js(
        &browser,
        "const n = document.querySelectorAll('.opblock').length; return n > 20 ? n : null;",
    )
    .await;
    let document: Value = etl_tests::json(app.get("/api/v1/etl/openapi.json").await).await;
    let declared: usize = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |ops| ops.len()))
        .sum();
    assert_eq!(operations.as_u64(), Some(declared as u64));
    let origin = app.url("");
    let elsewhere = browser
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name)
                 .filter(u => !u.startsWith(arguments[0]));",
            vec![json!(origin.trim_end_matches('/'))],
        )
        .await
        .expect("resources");
    assert_eq!(elsewhere, json!([]), "loaded from another host");
    let _ = std::fs::write(
        screenshot_path("docs.png"),
        browser.screenshot().await.expect("screenshot"),
    );
    browser.close().await.expect("close");
    app.stop().await;
}
