//! Test support for the real Postgres and NATS JetStream on the machine.
//!
//! Every test gets its own database and its own NATS subject prefix (hence its own JetStream
//! streams and consumers), so tests run in parallel and clean up after themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

mod private_postgres;
pub use private_postgres::PrivatePostgres;

/// The Postgres server tests use; `ICS_TEST_POSTGRES_URL` overrides it.
pub fn postgres_server_url() -> String {
    std::env::var("ICS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

/// The NATS server tests use; `ICS_TEST_NATS_URL` overrides it.
pub fn nats_url() -> String {
    std::env::var("ICS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

/// A short unique token, usable in database names, subjects and stream names.
pub fn unique_token() -> String {
    let simple = uuid::Uuid::now_v7().simple().to_string();
    // The random tail, not the timestamp head, keeps parallel tests apart.
    format!("t{}", &simple[simple.len() - 12..])
}

/// A database of its own for one test. Call [`TestDatabase::drop_database`] at the end.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// The server's URL, without a database.
    pub server: String,
}

impl TestDatabase {
    /// A database on the machine's shared server.
    pub async fn create() -> Self {
        Self::create_on(&postgres_server_url()).await
    }

    /// A database on the server at `server` (e.g. a [`PrivatePostgres`]).
    pub async fn create_on(server: &str) -> Self {
        let name = format!("ics_test_{}", unique_token());
        let server = server.to_string();
        let mut admin = format!("{server}/postgres")
            .parse::<PgConnectOptions>()
            .expect("postgres url parses")
            .connect()
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "postgres is not reachable at {server} ({error}); start it with: \
                     pg_ctlcluster --skip-systemctl-redirect 15 main start"
                )
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        TestDatabase {
            url: format!("{server}/{name}"),
            name,
            server,
        }
    }

    /// A pool whose connections use `schema` (created if missing).
    pub async fn pool(&self, schema: &str) -> PgPool {
        let bootstrap = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .expect("connect test database");
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&bootstrap)
            .await
            .expect("create schema");
        bootstrap.close().await;
        let options = self
            .url
            .parse::<PgConnectOptions>()
            .expect("database url parses")
            .options([("search_path", schema)]);
        PgPoolOptions::new()
            .max_connections(60)
            .connect_with(options)
            .await
            .expect("connect test database")
    }

    pub async fn drop_database(self) {
        let server = &self.server;
        let Ok(mut admin) = format!("{server}/postgres")
            .parse::<PgConnectOptions>()
            .expect("postgres url parses")
            .connect()
            .await
        else {
            return;
        };
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await;
    }
}

/// Deletes every JetStream stream whose name starts with the (upper-cased) prefix.
pub async fn delete_streams(nats: &async_nats::Client, subject_prefix: &str) {
    use futures_util::StreamExt;
    let jetstream = async_nats::jetstream::new(nats.clone());
    let wanted = format!("{}_", subject_prefix.to_uppercase());
    let mut names = jetstream.stream_names();
    let mut doomed = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        if name.starts_with(&wanted) {
            doomed.push(name);
        }
    }
    for name in doomed {
        let _ = jetstream.delete_stream(&name).await;
    }
}

/// A port nobody listens on right now, for a server a test starts.
///
/// Taken below the kernel's ephemeral range: a port the kernel hands out for `bind(0)` is also
/// one it may give any outgoing connection as its source port, and under a full test run one
/// did, between the test choosing it and its nats-server binding it (which then could not
/// start). Within a process the ports are handed out in turn from a random start, never the
/// same one twice before the range wraps: chosen at random each time, two tests of one binary
/// running side by side once drew the same port, and the second icsd found it taken.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    const LOWEST: u16 = 20_000;
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral > LOWEST + 1_000 {
        let span = u64::from(ephemeral - LOWEST);
        let next = NEXT.get_or_init(|| {
            // Each test binary starts somewhere else, so that one binary's lingering servers
            // are not where the next begins.
            let start = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            AtomicU64::new(start % span)
        });
        for _ in 0..1_000 {
            let offset = next.fetch_add(1, Ordering::Relaxed) % span;
            let port = LOWEST + u16::try_from(offset).unwrap();
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind an ephemeral port")
}

/// A nats-server of the test's own, so a test can kill and restart it without disturbing
/// others. Its JetStream store lives in a temporary directory that survives restarts.
#[derive(Debug)]
pub struct PrivateNats {
    pub port: u16,
    store_dir: PathBuf,
    /// A configuration file of the test's (users, permissions, TLS); the command line still
    /// sets the address, port and store.
    config: Option<PathBuf>,
    child: Option<Child>,
}

impl PrivateNats {
    pub async fn start() -> Self {
        Self::start_configured(None, &[]).await
    }

    /// A server run with `config` as its configuration file, beside `files` (name and
    /// contents) that it may include or name; all in the server's own directory.
    pub async fn start_with_config(config: &str, files: &[(&str, &str)]) -> Self {
        Self::start_configured(Some(config), files).await
    }

    async fn start_configured(config: Option<&str>, files: &[(&str, &str)]) -> Self {
        let port = free_port();
        let store_dir = std::env::temp_dir().join(format!("ics-nats-{}", unique_token()));
        std::fs::create_dir_all(&store_dir).expect("create nats store dir");
        for (name, contents) in files {
            std::fs::write(store_dir.join(name), contents).expect("write a nats file");
        }
        let config = config.map(|contents| {
            let path = store_dir.join("server.conf");
            std::fs::write(&path, contents).expect("write the nats configuration");
            path
        });
        let mut nats = PrivateNats {
            port,
            store_dir,
            config,
            child: None,
        };
        nats.restart().await;
        nats
    }

    /// The directory of the server's store and configuration files.
    pub fn dir(&self) -> &std::path::Path {
        &self.store_dir
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server without letting it shut down cleanly.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and store, and waits until it accepts.
    pub async fn restart(&mut self) {
        self.kill();
        let mut command = Command::new(nats_server_binary());
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server (set ICS_NATS_SERVER to its path)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // JetStream needs a moment after the listener opens.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private nats-server did not start on port {}", self.port);
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

/// The nats-server binary: `ICS_NATS_SERVER`, then `PATH`, then Debian's location.
pub fn nats_server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("ICS_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.exists());
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// Three nats-servers with JetStream, clustered on loopback, each with a store of its own that
/// survives its restarts: for replicated (R3) streams and killing their leader.
#[derive(Debug)]
pub struct PrivateNatsCluster {
    nodes: Vec<ClusterNode>,
    root: PathBuf,
}

#[derive(Debug)]
struct ClusterNode {
    name: String,
    port: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl PrivateNatsCluster {
    pub async fn start() -> Self {
        let root = std::env::temp_dir().join(format!("ics-nats-cluster-{}", unique_token()));
        std::fs::create_dir_all(&root).expect("create cluster dir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster)| format!("nats-route://127.0.0.1:{cluster}"))
            .collect();
        let mut nodes = Vec::new();
        for (index, (port, cluster_port)) in ports.iter().enumerate() {
            let name = format!("n{}", index + 1);
            let store = root.join(&name);
            std::fs::create_dir_all(&store).expect("create node store");
            let config = root.join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{port}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{\n  name: ics-test\n  listen: 127.0.0.1:{cluster_port}\n  \
                     routes: [{}]\n}}\n",
                    store.display(),
                    routes.join(", ")
                ),
            )
            .expect("write node config");
            nodes.push(ClusterNode {
                name,
                port: *port,
                config,
                child: None,
            });
        }
        let mut cluster = PrivateNatsCluster { nodes, root };
        for index in 0..3 {
            cluster.start_node(index);
        }
        for node in &cluster.nodes {
            wait_listening(node.port).await;
        }
        cluster.wait_for_jetstream().await;
        cluster
    }

    /// Every node's URL, comma-separated (what `ICS_NATS_URL` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One node's URL.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].port)
    }

    /// The index of the node called `name` (as JetStream names a stream's leader).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// Kills a node without letting it shut down cleanly.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again on its port and store.
    pub async fn restart(&mut self, index: usize) {
        self.kill(index);
        self.start_node(index);
        wait_listening(self.nodes[index].port).await;
    }

    fn start_node(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        node.child = Some(child);
    }

    /// Waits until the cluster can hold a replicated stream.
    async fn wait_for_jetstream(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            // A replicated stream can be placed only once the meta leader is elected and every
            // node has joined (the account-info reply of NATS 2.9 does not parse in this client).
            if let Ok(client) = async_nats::connect(self.url(0)).await {
                let jetstream = async_nats::jetstream::new(client);
                let probe = async_nats::jetstream::stream::Config {
                    name: "ICS_CLUSTER_READY".to_string(),
                    subjects: vec!["ics-cluster-ready".to_string()],
                    num_replicas: 3,
                    ..Default::default()
                };
                if jetstream.create_stream(probe).await.is_ok() {
                    let _ = jetstream.delete_stream("ICS_CLUSTER_READY").await;
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the NATS cluster elected no JetStream leader"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for PrivateNatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nats-server did not start on port {port}");
}

/// Every message payload of a JetStream stream, in stream order, read by an ephemeral consumer
/// that acknowledges nothing; none when the stream does not exist.
pub async fn stream_payloads(
    nats: &async_nats::Client,
    stream_name: &str,
) -> Result<Vec<Vec<u8>>, async_nats::Error> {
    use async_nats::jetstream::consumer;
    use futures_util::StreamExt;
    let jetstream = async_nats::jetstream::new(nats.clone());
    let Ok(mut stream) = jetstream.get_stream(stream_name).await else {
        return Ok(Vec::new());
    };
    let total = usize::try_from(stream.info().await?.state.messages)?;
    if total == 0 {
        return Ok(Vec::new());
    }
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut payloads = Vec::with_capacity(total);
    while payloads.len() < total {
        let message = messages
            .next()
            .await
            .ok_or("the stream's messages ended early")??;
        payloads.push(message.payload.to_vec());
    }
    Ok(payloads)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::free_port;
    use std::collections::HashSet;

    #[test]
    fn a_process_is_never_handed_the_same_port_twice() {
        // Drawn at random, a thousand ports out of the thirteen thousand below the ephemeral
        // range repeat one almost surely.
        let ports: Vec<u16> = (0..1_000).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
