//! SPEC §7.4's reads of flow: `GET /flow-metrics` against PostgreSQL's own
//! `percentile_cont` over the same rows, its window and filters, and its
//! refusals; `GET /pull-requests/{id}` for the token's tenant only;
//! `GET /work-items/{id}`'s bounded list of changes.

use etl_tests::{json, TestApp, TestTenant};
use serde_json::{json, Value};

/// Work items and pull requests of `tenant`, with figures spread over
/// minutes to weeks, resolved or merged over the last 40 days; some
/// without a figure.
fn fill(app: &TestApp, tenant: &TestTenant, github: i32, rows: u32) {
    let (id, jira) = (tenant.id, tenant.integration);
    app.execute(&format!(
        "INSERT INTO work_items (tenant_id, integration_id, external_id, key, project_key, summary,
                                 source_created_at, first_in_progress_at, resolved_at)
         SELECT {id}, {jira}, 'w' || g, 'K-' || g, CASE WHEN g % 2 = 0 THEN 'EVEN' ELSE 'ODD' END, 's',
                timestamptz '2024-06-01' - (g * 7919 % 100000) * interval '1 minute',
                CASE WHEN g % 5 = 0 THEN NULL
                     ELSE timestamptz '2024-06-01' - (g * 104729 % 30000) * interval '1 minute' END,
                timestamptz '2024-06-01' + (g % 40) * interval '1 day' + (g % 7) * interval '1 second'
           FROM generate_series(1, {rows}) AS g"
    ));
    app.execute(&format!(
        "INSERT INTO pull_requests (tenant_id, integration_id, external_id, repository, number, state,
                                    first_commit_at, source_created_at, first_review_at, merged_at)
         SELECT {id}, {github}, 'p' || g, CASE WHEN g % 3 = 0 THEN 'o/a' ELSE 'o/b' END, g, 'merged',
                timestamptz '2024-06-01' - (g * 31 % 5000) * interval '1 minute',
                timestamptz '2024-06-01',
                CASE WHEN g % 4 = 0 THEN NULL
                     ELSE timestamptz '2024-06-01' + (g * 17 % 3000) * interval '1 minute' END,
                timestamptz '2024-06-01' + (g % 40) * interval '1 day' + interval '3 days'
           FROM generate_series(1, {rows}) AS g"
    ));
}

/// What PostgreSQL computes for the same window and filters.
fn expected(
    app: &TestApp,
    tenant: i32,
    since: &str,
    until: &str,
    project: &str,
    repository: &str,
) -> Value {
    let p = |column: &str| {
        format!(
            "(SELECT jsonb_build_object('p50', v[1], 'p85', v[2], 'p95', v[3])
                FROM (SELECT percentile_cont(ARRAY[0.5, 0.85, 0.95]) WITHIN GROUP (ORDER BY {column}) AS v
                        FROM %TABLE% WHERE %WHERE%) AS x)"
        )
    };
    let items = format!(
        "tenant_id = {tenant} AND resolved_at >= '{since}' AND resolved_at < '{until}' AND ({project} IS NULL OR project_key = {project})"
    );
    let pulls = format!(
        "tenant_id = {tenant} AND merged_at >= '{since}' AND merged_at < '{until}' AND ({repository} IS NULL OR repository = {repository})"
    );
    let of = |column: &str, table: &str, filter: &str| {
        p(column)
            .replace("%TABLE%", table)
            .replace("%WHERE%", filter)
    };
    app.query_json(&format!(
        "jsonb_build_object(
            'work_items', jsonb_build_object(
                'count', (SELECT count(*) FROM work_items WHERE {items}),
                'lead_time_s', {lead}, 'cycle_time_s', {cycle}),
            'pull_requests', jsonb_build_object(
                'count', (SELECT count(*) FROM pull_requests WHERE {pulls}),
                'coding_time_s', {coding}, 'pickup_time_s', {pickup}, 'review_time_s', {review}))",
        lead = of("lead_time_s", "work_items", &items),
        cycle = of("cycle_time_s", "work_items", &items),
        coding = of("coding_time_s", "pull_requests", &pulls),
        pickup = of("pickup_time_s", "pull_requests", &pulls),
        review = of("review_time_s", "pull_requests", &pulls),
    ))
}

/// Both as numbers: JSON from PostgreSQL writes 7200, the API 7200.0.
fn same(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            (a - b).abs() <= 1e-6 * a.abs().max(1.0)
        }
        _ => got == want,
    }
}

#[tokio::test]
async fn flow_metrics_are_postgresqls_percentiles_over_the_window_and_filters() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    let other = app.tenant("other");
    let github = app.create_integration(acme.id, "github", true);
    let theirs = app.create_integration(other.id, "github", true);
    fill(&app, &acme, github, 500);
    fill(&app, &other, theirs, 300);
    for (query, since, until, project, repository) in [
        ("since=2024-06-05T00:00:00Z&until=2024-06-25T00:00:00Z", "2024-06-05T00:00:00Z", "2024-06-25T00:00:00Z", "NULL", "NULL"),
        // Both ends as rows have them: `since` in, `until` out.
        ("since=2024-06-03T00:00:00Z&until=2024-06-10T00:00:00.000001Z", "2024-06-03T00:00:00Z", "2024-06-10T00:00:00.000001Z", "NULL", "NULL"),
        ("since=2024-06-01T00:00:00%2B02:00&until=2024-07-30T00:00:00Z&project_key=EVEN&repository=o/a", "2024-05-31T22:00:00Z", "2024-07-30T00:00:00Z", "'EVEN'", "'o/a'"),
    ] {
        let got = json(app.get_as(&format!("/api/v1/etl/flow-metrics?{query}"), &acme).await).await;
        let want = expected(&app, acme.id, since, until, project, repository);
        assert!(same(&got, &want), "{query}:\n got {got}\nwant {want}");
        assert!(got["work_items"]["count"].as_i64().unwrap_or(0) > 0, "{query}: {got}");
        assert!(got["pull_requests"]["review_time_s"]["p50"].is_number(), "{got}");
    }
    // Nothing in the window: counts 0, every percentile null.
    let empty = json(
        app.get_as(
            "/api/v1/etl/flow-metrics?since=2020-01-01T00:00:00Z&until=2020-02-01T00:00:00Z",
            &acme,
        )
        .await,
    )
    .await;
    let none = json!({"p50": null, "p85": null, "p95": null});
    assert_eq!(
        empty,
        json!({"work_items": {"count": 0, "lead_time_s": none, "cycle_time_s": none},
               "pull_requests": {"count": 0, "coding_time_s": none, "pickup_time_s": none, "review_time_s": none}})
    );
    // The default window is the last 30 days: these rows are from 2024.
    let recent = json(app.get_as("/api/v1/etl/flow-metrics", &acme).await).await;
    assert_eq!(recent["work_items"]["count"], 0);
    assert_eq!(recent["pull_requests"]["count"], 0);
    app.stop().await;
}

#[tokio::test]
async fn flow_metrics_refuse_bad_windows_naming_the_field() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2024-13-01T00:00:00Z", "until"),
        (
            "since=2024-06-02T00:00:00Z&until=2024-06-01T00:00:00Z",
            "since",
        ),
        (
            "since=2024-06-01T00:00:00Z&until=2024-06-01T00:00:00Z",
            "since",
        ),
        ("project_key=A%00B", "project_key"),
        ("repository=%00", "repository"),
    ] {
        let response = app
            .get_as(&format!("/api/v1/etl/flow-metrics?{query}"), &acme)
            .await;
        assert_eq!(response.status(), 422, "{query}");
        let body = json(response).await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_pull_request_is_read_by_its_own_tenant_only() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    let other = app.tenant("other");
    let github = app.create_integration(acme.id, "github", true);
    app.execute(&format!(
        "INSERT INTO pull_requests (tenant_id, integration_id, external_id, repository, number, state, title)
         VALUES ({}, {github}, '1', 'o/r', 4, 'open', 'PAY-1')",
        acme.id
    ));
    let id = app.count("SELECT max(id)::int8 FROM pull_requests");
    let detail = json(
        app.get_as(&format!("/api/v1/etl/pull-requests/{id}"), &acme)
            .await,
    )
    .await;
    assert_eq!(detail["title"], "PAY-1");
    assert_eq!(
        (
            &detail["commits"],
            &detail["reviews"],
            &detail["work_items"]
        ),
        (&json!([]), &json!([]), &json!([]))
    );
    for (path, tenant, status) in [
        (format!("/api/v1/etl/pull-requests/{id}"), &other, 404),
        (format!("/api/v1/etl/pull-requests/{}", id + 1), &acme, 404),
    ] {
        assert_eq!(app.get_as(&path, tenant).await.status(), status, "{path}");
    }
    let bad = app
        .get_as("/api/v1/etl/pull-requests/x", &acme)
        .await
        .status();
    assert!(bad.is_client_error(), "{bad}");
    app.stop().await;
}

#[tokio::test]
async fn a_work_item_lists_its_oldest_1000_status_changes() {
    let app = TestApp::spawn().await;
    let acme = app.tenant("acme");
    app.execute(&format!(
        "INSERT INTO work_items (tenant_id, integration_id, external_id, key, summary)
         VALUES ({}, {}, '1', 'K-1', 's')",
        acme.id, acme.integration
    ));
    app.execute(&format!(
        "INSERT INTO work_item_changes (tenant_id, integration_id, work_item_external_id, changelog_id,
                                        item_index, field, to_value, changed_at)
         SELECT {t}, {i}, '1', 'h' || g, 0, 'status', g::text,
                timestamptz '2024-01-01' + g * interval '1 minute'
           FROM generate_series(1, 1005) AS g",
        t = acme.id,
        i = acme.integration
    ));
    let id = app.count("SELECT max(id)::int8 FROM work_items");
    let detail = json(
        app.get_as(&format!("/api/v1/etl/work-items/{id}"), &acme)
            .await,
    )
    .await;
    let changes = detail["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1000);
    assert_eq!(changes[0]["to_value"], "1", "oldest first");
    assert_eq!(changes[999]["to_value"], "1000");
    app.stop().await;
}

/// Many alike requests share computations, yet a request made after a
/// write always sees it: ten work items resolved one by one, each followed
/// by a read, while eight other clients ask the same all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_metrics_asked_by_many_at_once_still_see_every_write_before_them() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let acme = app.tenant("acme");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut others = Vec::new();
    for _ in 0..8 {
        let (app, acme, stop) = (app.clone(), acme.clone(), stop.clone());
        others.push(tokio::spawn(async move {
            let mut answered = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = app.get_as("/api/v1/etl/flow-metrics", &acme).await;
                assert_eq!(response.status(), 200);
                answered += 1;
            }
            answered
        }));
    }
    for n in 1..=10 {
        app.execute(&format!(
            "INSERT INTO work_items (tenant_id, integration_id, external_id, key, summary,
                                     source_created_at, resolved_at)
             VALUES ({}, {}, 'w{n}', 'K-{n}', 's', now() - interval '2 hours', now() - interval '1 hour')",
            acme.id, acme.integration
        ));
        let seen = json(app.get_as("/api/v1/etl/flow-metrics", &acme).await).await;
        assert_eq!(seen["work_items"]["count"], n, "after {n} writes: {seen}");
        assert_eq!(seen["work_items"]["lead_time_s"]["p50"], 3600.0, "{seen}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for other in others {
        assert!(other.await.expect("client") > 0);
    }
}
