//! A PostgreSQL server of a test's own, on a spare loopback port, so that a test can stop it,
//! restart it, move its transaction counter or restore a backup into it without disturbing the
//! tests that share the machine's server.
//!
//! PostgreSQL refuses to run as root; when the test runs as root (as CI does), every server
//! command runs as the `postgres` system user through `setpriv`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::{free_port, unique_token};

/// A private cluster: `initdb`, `pg_ctl` and `pg_resetwal` on a data directory in the temporary
/// directory, removed when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    pub port: u16,
    root: PathBuf,
    running: bool,
}

impl PrivatePostgres {
    /// Creates a cluster (trust authentication, user `postgres`) and starts it.
    pub fn start() -> Self {
        Self::start_with_next_transaction_id(None)
    }

    /// As [`start`](Self::start), with the cluster's next transaction id set before its first
    /// start, so that a test can cross 9,999→10,000 or 99,999→100,000 in a few transactions.
    pub fn start_with_next_transaction_id(next_transaction_id: Option<u64>) -> Self {
        let root = std::env::temp_dir().join(format!("ics-pg-{}", unique_token()));
        std::fs::create_dir_all(root.join("socket")).expect("create private postgres dirs");
        hand_to_postgres_user(&root);
        hand_to_postgres_user(&root.join("socket"));
        let mut cluster = PrivatePostgres {
            port: free_port(),
            root,
            running: false,
        };
        cluster.run_checked(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
        );
        if let Some(next) = next_transaction_id {
            cluster.set_next_transaction_id(next);
        }
        cluster.start_again();
        cluster
    }

    /// `postgres://postgres@127.0.0.1:<port>`: append `/<database>`.
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// A URL for `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.server_url())
    }

    fn data_dir(&self) -> String {
        self.root.join("data").display().to_string()
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&mut self) {
        if self.running {
            return;
        }
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.root.join("socket").display()
        );
        let log = self.root.join("server.log").display().to_string();
        self.run_checked(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
        self.running = true;
    }

    /// Stops the server as a crash would: no checkpoint, open connections cut
    /// (`pg_ctl -m immediate`).
    pub fn stop_immediately(&mut self) {
        self.stop_with("immediate");
    }

    /// Stops the server cleanly.
    pub fn stop(&mut self) {
        self.stop_with("fast");
    }

    fn stop_with(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        self.run_checked(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", mode, "-w", "stop"],
        );
        self.running = false;
    }

    /// Serves TLS with `certificate_pem` and `key_pem`, and from then on lets every role but
    /// `postgres` in only over TLS and with its password (SCRAM); `postgres` keeps trust
    /// authentication for the test's own set-up. Restarts the server.
    pub fn require_tls_and_passwords(&mut self, certificate_pem: &str, key_pem: &str) {
        let data = self.root.join("data");
        for (name, contents) in [("server.crt", certificate_pem), ("server.key", key_pem)] {
            let path = data.join(name);
            std::fs::write(&path, contents).expect("write a server tls file");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("restrict a server tls file");
            hand_to_postgres_user(&path);
        }
        let mut settings = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.auto.conf"))
            .expect("open postgresql.auto.conf");
        std::io::Write::write_all(&mut settings, b"ssl = on\n").expect("turn ssl on");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        self.stop();
        self.start_again();
    }

    /// Sets the transaction id the next transaction gets (`pg_resetwal -x`), stopping and
    /// restarting the server around it when it runs.
    pub fn set_next_transaction_id(&mut self, next_transaction_id: u64) {
        let was_running = self.running;
        self.stop();
        self.run_checked(
            "pg_resetwal",
            &["-x", &next_transaction_id.to_string(), &self.data_dir()],
        );
        // pg_resetwal -x needs the commit log to cover the new id: the segment holding it must
        // exist, as PostgreSQL's documentation of pg_resetwal advises.
        let segment = next_transaction_id / (32 * 1024 * 8 * 4);
        let pg_xact = self.root.join("data").join("pg_xact");
        let file = pg_xact.join(format!("{segment:04X}"));
        // A segment initdb created holds only the pages used so far; the server reads the page of
        // the new id, so the segment is zero-filled to its full size either way.
        let segment_bytes = 256 * 1024;
        let existing = std::fs::metadata(&file).map(|meta| meta.len()).unwrap_or(0);
        if existing < segment_bytes {
            let handle = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .expect("open pg_xact segment");
            handle
                .set_len(segment_bytes)
                .expect("extend pg_xact segment");
            hand_to_postgres_user(&file);
        }
        if was_running {
            self.start_again();
        }
    }

    /// Runs `pg_dump -Fc` of `database` into `file`.
    pub fn dump(&self, database: &str, file: &Path) {
        let output = Command::new(pg_binary("pg_dump"))
            .args(["-Fc", "-f"])
            .arg(file)
            .arg(self.url(database))
            .output()
            .expect("run pg_dump");
        assert_success("pg_dump", &output);
    }

    /// Creates `database` and restores the `pg_dump -Fc` archive `file` into it.
    pub fn restore(&self, database: &str, file: &Path) {
        let output = Command::new(pg_binary("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(database)
            .output()
            .expect("run createdb");
        assert_success("createdb", &output);
        let output = Command::new(pg_binary("pg_restore"))
            .args(["--no-owner", "-d"])
            .arg(self.url(database))
            .arg(file)
            .output()
            .expect("run pg_restore");
        assert_success("pg_restore", &output);
    }

    fn run_checked(&self, program: &str, args: &[&str]) {
        let output = as_postgres_user(&pg_binary(program))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        if !output.status.success() {
            let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
            panic!(
                "{program} {args:?} failed: {}{}\nserver log:\n{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = as_postgres_user(&pg_binary("pg_ctl"))
                .args(["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn assert_success(program: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The directory of PostgreSQL's server programs: `ICS_PG_BIN`, else `pg_config --bindir`,
/// else Debian's PostgreSQL 15.
fn pg_binary(program: &str) -> PathBuf {
    let dir = std::env::var("ICS_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Command::new("pg_config")
                .arg("--bindir")
                .output()
                .ok()
                .filter(|output| output.status.success())
                .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
                .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
        });
    dir.join(program)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The command, run as the `postgres` user when this process is root.
fn as_postgres_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--reset-env",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Gives a path to the `postgres` user when this process is root (the server must own it).
fn hand_to_postgres_user(path: &Path) {
    if running_as_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown {} failed", path.display());
    }
}
