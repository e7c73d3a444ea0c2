//! TLS on the gRPC listeners, with rustls: a certificate and key (`ICS_TLS_CERT`,
//! `ICS_TLS_KEY`), optionally a CA that client certificates must chain to (`ICS_TLS_CLIENT_CA`,
//! mutual TLS for hospital systems). A connection that fails the handshake — no client
//! certificate when one is required, an untrusted one, plaintext — is dropped before any
//! request is read, so no handler runs.
//!
//! The files are watched (every `ICS_TLS_RELOAD_SECS`): renewed certificates are used for new
//! connections without a restart; files that do not load keep the current ones in use.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures_util::Stream;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

/// A handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files a listener's TLS is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The configured files, or none for plaintext. A certificate without its key (or the
    /// reverse), or a client CA without a certificate, is a configuration error.
    pub fn from_config(config: &TlsConfig) -> anyhow::Result<Option<TlsFiles>> {
        match (&config.tls_cert, &config.tls_key, &config.tls_client_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), client_ca) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: client_ca.clone(),
            })),
            (None, None, Some(_)) => {
                anyhow::bail!("ICS_TLS_CLIENT_CA needs ICS_TLS_CERT and ICS_TLS_KEY")
            }
            _ => anyhow::bail!("set both ICS_TLS_CERT and ICS_TLS_KEY, or neither"),
        }
    }

    fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.cert.as_path(), self.key.as_path()];
        paths.extend(self.client_ca.as_deref());
        paths
    }

    /// When each file last changed: a new value means the files were replaced.
    fn stamps(&self) -> Vec<Option<SystemTime>> {
        self.paths()
            .iter()
            .map(|path| {
                std::fs::metadata(path)
                    .and_then(|meta| meta.modified())
                    .ok()
            })
            .collect()
    }

    /// The rustls configuration the files describe.
    pub fn load(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read the certificate {}", self.cert.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "{} holds no certificate",
            self.cert.display()
        );
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("cannot read the private key {}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(client_ca) => {
                let mut roots = RootCertStore::empty();
                for certificate in CertificateDer::pem_file_iter(client_ca)
                    .with_context(|| format!("cannot read the client CA {}", client_ca.display()))?
                {
                    roots.add(certificate?)?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .context("the certificate and key do not make a TLS identity")?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A listener's TLS configuration, replaced when its files change.
#[derive(Debug, Clone)]
pub struct ReloadingTls {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ReloadingTls {
    /// Loads `files` (failing start-up when they do not load) and watches them every
    /// `reload` until `shutdown`.
    pub fn start(
        files: TlsFiles,
        reload: Duration,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<ReloadingTls> {
        let tls = ReloadingTls {
            current: Arc::new(RwLock::new(files.load()?)),
        };
        let reload = reload.max(Duration::from_secs(1));
        tokio::spawn(watch(files, tls.clone(), reload, shutdown.clone()));
        Ok(tls)
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        TlsAcceptor::from(config)
    }

    fn replace(&self, config: Arc<ServerConfig>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
    }
}

async fn watch(files: TlsFiles, tls: ReloadingTls, reload: Duration, shutdown: CancellationToken) {
    let mut stamps = files.stamps();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(reload) => {}
        }
        let now = files.stamps();
        if now == stamps {
            continue;
        }
        match files.load() {
            Ok(config) => {
                tls.replace(config);
                stamps = now;
                tracing::info!(cert = %files.cert.display(), "tls certificates reloaded");
            }
            // Half-written files are common mid-renewal: try again at the next look.
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "tls certificates not reloaded; keeping the current ones"
                )
            }
        }
    }
}

/// Accepted connections that completed their TLS handshake. Handshakes run off the accept loop,
/// so a slow or hostile client never holds up others; failed ones are dropped here.
pub fn incoming(
    listener: TcpListener,
    tls: ReloadingTls,
    stop: CancellationToken,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let acceptor = tls.acceptor();
            let sender = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => {
                        let _ = sender.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => {
                        tracing::info!(peer = %peer, %error, "tls handshake refused")
                    }
                    Err(_) => tracing::info!(peer = %peer, "tls handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}
