//! Fault points: places in the data path where a test can make the process die as `kill -9`
//! would, at a moment no signal from outside can hit reliably (between JetStream's ack and the
//! relay's checkpoint, say).
//!
//! Off unless the environment variable `ICS_FAULT_POINT` is `<name>` or `<name>:<n>` (die on the
//! n-th time the point is reached, the first by default). Production never sets it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const VARIABLE: &str = "ICS_FAULT_POINT";

struct Armed {
    name: String,
    on_hit: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(VARIABLE).ok()?;
            let (name, on_hit) = match value.split_once(':') {
                Some((name, count)) => (name.to_string(), count.parse().ok()?),
                None => (value, 1),
            };
            Some(Armed {
                name,
                on_hit,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process when `name` is the armed fault point and its hit count is reached.
pub fn point(name: &str) {
    let Some(armed) = armed() else {
        return;
    };
    if armed.name != name {
        return;
    }
    let hit = armed.hits.fetch_add(1, Ordering::SeqCst) + 1;
    if hit == armed.on_hit {
        eprintln!("fault point {name} reached (hit {hit}); aborting as a crash would");
        std::process::abort();
    }
}
