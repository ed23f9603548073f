//! SIGTERM drains: the listener closes at once, a stream in flight runs to its end, its turn
//! is ingested, and the process exits 0 as soon as nothing is left rather than when the grace
//! period ends.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_stream_in_flight_finish_then_exits() {
    let mock = mock_gateway::spawn().await;
    let mut mg = Memgate::start_with(
        &mock.url(),
        &[("MEMGATE_PROXY__SHUTDOWN_GRACE_SECONDS", "20")],
    )
    .await;
    mg.create_session(ACME_ADMIN, "draining").await;

    let statement = "Our quarterly planning offsite is in Porto this year.";
    let words = statement.split_whitespace().count();
    let request = mg
        .http
        .post(format!("{}/v1/chat/completions", mg.proxy))
        .bearer_auth(ACME_MEMBER)
        // About 2 s of answer, spread over the signal.
        .header("x-mock-chunk-delay-ms", "150")
        .json(&user_chat(Some("draining"), statement, true));
    let stream = tokio::spawn(async move {
        let response = request.send().await.expect("send");
        let status = response.status();
        (status, response.text().await.expect("the whole stream"))
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.chat_requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the request never reached upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    mg.terminate();
    let signalled = Instant::now();
    let readiness = loop {
        let status = mg
            .http
            .get(format!("{}/readyz", mg.admin))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        if status != Some(200) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(readiness, Some(503), "not ready while draining");
    let proxy_addr = mg.proxy.trim_start_matches("http://").to_string();
    loop {
        if tokio::net::TcpStream::connect(&proxy_addr).await.is_err() {
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "the proxy still accepts connections after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, body) = stream.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let pieces = body.matches("\"content\":\"").count();
    assert!(pieces > words, "{pieces} pieces for {words} words:\n{body}");

    let exit = mg
        .wait_exit(Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("still running 15 s after SIGTERM:\n{}", mg.log()));
    assert!(exit.success(), "exit status {exit}:\n{}", mg.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "waited out the grace period"
    );
    // The drain waited for the ingestion of the turn the stream produced: a sidecar's
    // embedded store leaves with its pod.
    let log = mg.log();
    let ingested = log
        .find("turn ingested")
        .expect("turn ingested before the exit");
    let exited = log.find("drained, exiting").expect("drained");
    assert!(ingested < exited, "{log}");

    // And a new process on the same store has the fact.
    let restarted =
        Memgate::start_with(&mock.url(), &[("MEMGATE_STORAGE__URL", &mg.storage_url)]).await;
    restarted
        .wait_for_fact(ACME_MEMBER, "draining", "Porto")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_an_idle_process_exits_at_once() {
    let mock = mock_gateway::spawn().await;
    let mut mg = Memgate::start_with(
        &mock.url(),
        &[("MEMGATE_PROXY__SHUTDOWN_GRACE_SECONDS", "60")],
    )
    .await;
    mg.terminate();
    let exit = mg
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("an idle memgate waited for the 60 s grace:\n{}", mg.log()));
    assert!(exit.success(), "exit status {exit}");
}
