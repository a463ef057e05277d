//! SPEC §1 transport security: `amqps://` through a TLS-terminating proxy
//! in front of the test broker, with a throwaway CA. A certificate that
//! does not verify (unknown CA, wrong host name) is a connection failure
//! that `/ready` reports; the client never falls back to plain AMQP.

use std::time::Duration;

use etl_queue::AmqpConfig;
use etl_tests::poll_until;
use etl_tests::tls::{TestCa, TlsProxy};

use crate::harness::Harness;

async fn proxy(ca: &TestCa) -> TlsProxy {
    TlsProxy::start(
        ca,
        &["localhost"],
        "127.0.0.1:5672".parse().expect("address"),
    )
    .await
}

#[tokio::test]
async fn amqps_with_a_trusted_ca_runs_jobs_end_to_end() {
    let ca = TestCa::new("trusted");
    let tls = proxy(&ca).await;
    let port = tls.address.port();
    let pem = ca.pem();
    let mut h = Harness::start_with_amqp(move |vhost| {
        AmqpConfig::new(format!(
            "amqps://guest:guest@localhost:{port}/{}",
            vhost.name
        ))
        .with_tls_ca(Some(pem))
    })
    .await;
    h.pipeline_worker("over-tls");
    let job = h.load_job().await;
    h.wait_for_status(job, "completed").await;
    let ready = poll_until(Duration::from_secs(10), || async {
        (h.app.get("/ready").await.status() == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "ready over TLS");
    assert!(
        tls.handshakes() >= 2,
        "the relay and the worker went through TLS"
    );
    assert_eq!(tls.plain_connections(), 0);
    assert_eq!(
        h.app.count("SELECT count(*) FROM pull_requests"),
        1,
        "the load job ran"
    );
    h.stop().await;
}

/// Starts a harness whose broker URL is `url` (given the vhost) and checks
/// that nothing gets published and `/ready` says RabbitMQ is down.
async fn refused(tls: &TlsProxy, url: impl FnOnce(&str) -> String + 'static, pem: String) {
    let h = Harness::start_with_amqp(move |vhost| {
        AmqpConfig::new(url(&vhost.name)).with_tls_ca(Some(pem))
    })
    .await;
    let job = h.extract_job(5).await;
    // The relay has tried (and failed) at least once by now.
    let tried = poll_until(Duration::from_secs(10), || async {
        (tls.plain_connections() + tls.handshakes() > 0
            || h.app.get("/ready").await.status() == 503)
            .then_some(())
    })
    .await;
    assert!(tried.is_some());
    let ready = h.app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("JSON");
    assert_eq!(body["checks"]["rabbitmq"], "down", "{body}");
    assert_eq!(
        h.job(job).await["status"],
        "pending",
        "nothing was published"
    );
    assert_eq!(tls.handshakes(), 0, "no TLS session was accepted");
    assert_eq!(tls.plain_connections(), 0, "no fallback to plain AMQP");
    assert_eq!(h.vhost.as_ref().map(|v| v.depth("etl.extract")), Some(0));
    h.stop().await;
}

#[tokio::test]
async fn amqps_with_an_untrusted_ca_is_refused_and_ready_says_so() {
    let ca = TestCa::new("the proxy's");
    let tls = proxy(&ca).await;
    let port = tls.address.port();
    let other = TestCa::new("another");
    refused(
        &tls,
        move |vhost| format!("amqps://guest:guest@localhost:{port}/{vhost}"),
        other.pem(),
    )
    .await;
}

#[tokio::test]
async fn amqps_to_a_host_name_the_certificate_does_not_name_is_refused() {
    let ca = TestCa::new("trusted");
    let tls = proxy(&ca).await;
    let port = tls.address.port();
    // The certificate names `localhost`, not `127.0.0.1`.
    refused(
        &tls,
        move |vhost| format!("amqps://guest:guest@127.0.0.1:{port}/{vhost}"),
        ca.pem(),
    )
    .await;
}
