//! The admission webhook end to end over real TLS: a self-signed certificate (rcgen), the
//! server as the binary runs it (`webhook::serve` on a TCP listener), and a rustls client that
//! trusts only that certificate, as the API server does with the `caBundle`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::{sync::Arc, time::Duration};

use axum_server::tls_rustls::RustlsConfig;
use operator::{context::Stores, webhook};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
};
use tokio_rustls::TlsConnector;

fn admission_review(num_vfs: u32) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2e-1",
            "kind": {"group": "smartnic.io", "version": "v1alpha1", "kind": "NicPolicy"},
            "resource": {"group": "smartnic.io", "version": "v1alpha1", "resource": "nicpolicies"},
            "name": "p1",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": {
                "apiVersion": "smartnic.io/v1alpha1", "kind": "NicPolicy",
                "metadata": {"name": "p1"},
                "spec": {
                    "nodeSelector": {"matchLabels": {"gpu": "true"}},
                    "nicSelector": {"pfNames": ["ens1f0"]},
                    "numVfs": num_vfs,
                    "resourceName": "cx6_vf"
                }
            },
            "oldObject": null,
            "dryRun": false
        }
    }))
    .unwrap()
}

/// POSTs `body` to `path` over a TLS connection that verifies the server against `ca_der`.
async fn post(port: u16, ca_der: &[u8], path: &str, body: &[u8]) -> (u16, Value) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.to_vec().into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the webhook");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    // the server closes after the response (Connection: close); a TLS close_notify may be absent
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8(raw).unwrap();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (headers, payload) = text.split_once("\r\n\r\n").unwrap();
    let payload = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    (status, serde_json::from_str(&payload).unwrap())
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

#[tokio::test]
async fn webhook_denies_and_allows_over_https() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let tls = RustlsConfig::from_pem(
        cert.cert.pem().into_bytes(),
        cert.signing_key.serialize_pem().into_bytes(),
    )
    .await
    .unwrap();
    let listener = webhook::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stores, _writers) = Stores::new();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(webhook::serve(listener, tls, stores, async move {
        let _ = stop_rx.await;
    }));

    let ca = cert.cert.der().to_vec();
    let (status, review) = post(port, &ca, "/validate-nicpolicy", &admission_review(0)).await;
    assert_eq!(status, 200);
    assert_eq!(review["response"]["uid"], "e2e-1");
    assert_eq!(review["response"]["allowed"], false);
    let msg = review["response"]["status"]["message"].as_str().unwrap();
    assert!(msg.contains("spec.numVfs:"), "{msg}");

    let (status, review) = post(port, &ca, "/validate-nicpolicy", &admission_review(8)).await;
    assert_eq!(status, 200);
    assert_eq!(review["response"]["allowed"], true, "{review}");

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
