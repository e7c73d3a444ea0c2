//! The identity provider's keys fetched from a URL, and refreshed from it: a rotation is used
//! without a restart, and a failed refresh keeps the keys in use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ics_service_kit::config::AuthConfig;
use ics_service_kit::{Authenticator, Principal};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ics-auth/tests/keys");

fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{name}")).unwrap()
}

fn token(kid: &str) -> MetadataMap {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(key_file(&format!("{kid}.pem")).as_bytes()).unwrap();
    let claims = ics_auth::claims_for(
        "ics",
        "ics-platform",
        &Principal::Operator,
        Duration::from_secs(600),
    );
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let mut metadata = MetadataMap::new();
    metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
    metadata
}

/// Serves `document` (or a 500 when it is `None`) to every HTTP request, on loopback.
async fn key_server(document: Arc<Mutex<Option<String>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut connection, _)) = listener.accept().await else {
                return;
            };
            let document = document.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = connection.read(&mut request).await;
                let response = match document.lock().await.clone() {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                };
                let _ = connection.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{address}/jwks.json")
}

#[tokio::test]
async fn keys_from_a_url_are_refreshed_and_a_failed_refresh_keeps_them() {
    let document = Arc::new(Mutex::new(Some(key_file("jwks-1.json"))));
    let url = key_server(document.clone()).await;
    let config = AuthConfig {
        token_jwks: Some(url),
        token_jwks_refresh_secs: 1,
        ..AuthConfig::default()
    };
    let shutdown = CancellationToken::new();
    let authenticator = Authenticator::start(&config, &shutdown).await.unwrap();
    assert_eq!(
        authenticator.authenticate(&token("rsa-1")),
        Ok(Principal::Operator)
    );
    assert!(authenticator.authenticate(&token("rsa-2")).is_err());

    // The provider fails for a while: the keys in use stay.
    *document.lock().await = None;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        authenticator.authenticate(&token("rsa-1")),
        Ok(Principal::Operator)
    );

    *document.lock().await = Some(key_file("jwks-2.json"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while authenticator.authenticate(&token("rsa-2")).is_err() {
        assert!(
            Instant::now() < deadline,
            "the rotation was never picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(authenticator.authenticate(&token("rsa-1")).is_err());
    shutdown.cancel();
}

#[tokio::test]
async fn published_keys_and_a_shared_secret_are_never_configured_together() {
    let config = AuthConfig {
        token_jwks: Some("/nonexistent/jwks.json".into()),
        ..AuthConfig::with_secret("a-secret-of-at-least-thirty-two-bytes")
    };
    let refused = Authenticator::start(&config, &CancellationToken::new()).await;
    assert!(refused.unwrap_err().to_string().contains("not both"));
    let unreadable = AuthConfig {
        token_jwks: Some("/nonexistent/jwks.json".into()),
        ..AuthConfig::default()
    };
    assert!(
        Authenticator::start(&unreadable, &CancellationToken::new())
            .await
            .is_err()
    );
}
