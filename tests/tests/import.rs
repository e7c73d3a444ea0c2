//! `icsctl import observations` through the real binaries: bad rows named by line and field
//! while the good ones land, a second import that records nothing, and whole files refused
//! before anything is sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ics_e2e::{Deployment, IcsctlOutput, Server, authorized, channel};
use ics_proto::date::iso;
use ics_proto::events::v1::{SeriesKey, SpcSeries};
use ics_proto::metrics::v1::GetSeriesRequest;
use ics_proto::metrics::v1::metrics_service_client::MetricsServiceClient;
use ics_service_kit::Principal;

/// A CSV file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "ics-e2e-{}-{}-{name}.csv",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Good rows on lines 2, 8 and 9; a bad one on each line between.
const MIXED: &str = "\
ods_code,measure_code,period_start,period_end,value,numerator,denominator
RR8,FFT_POSITIVE,2024-02-01,2024-02-29,,910,1000
RR8,FFT_POSITIVE,2024-03-01,2024-03-31,ninety,,
RR8,FFT_POSITIVE,2024-04-30,2024-04-01,,900,1000
RR8,FFT_POSITIVE,2024-05-01,2024-05-31,,1001,1000
RR8,NO_SUCH_MEASURE,2024-06-01,2024-06-30,0.5,,
RR8,FFT_POSITIVE,2024-01-01,2024-01-31,,950,1000
RR8,FFT_POSITIVE,2024-07-01,2024-07-31,,930,1000
RR8,FFT_POSITIVE,2024-08-01,2024-08-31,0.94,,
";

/// Each bad row of [`MIXED`]: its line, the field named, and what the reason says.
const BAD_ROWS: [(usize, &str, &str); 5] = [
    (3, "value", "'ninety' is not a number"),
    (
        4,
        "period_end",
        "2024-04-01 is before period_start 2024-04-30",
    ),
    (5, "numerator", "1001 is greater than the denominator 1000"),
    (6, "measure_code", "NO_SUCH_MEASURE"),
    // 2024-01 was recorded as 900 of 1000 before the import.
    (7, "value", "already recorded"),
];

async fn series(deployment: &Deployment, server: &Server) -> SpcSeries {
    let operator = deployment.token(&Principal::Operator);
    let mut metrics = MetricsServiceClient::new(channel(&server.metrics_url).await);
    metrics
        .get_series(authorized(
            &operator,
            GetSeriesRequest {
                series: Some(SeriesKey {
                    measure_code: "FFT_POSITIVE".into(),
                    ods_code: "RR8".into(),
                    value_stream_id: String::new(),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Each point's period start, value and revision.
fn points(series: &SpcSeries) -> Vec<(String, f64, u32)> {
    series
        .points
        .iter()
        .map(|point| {
            (
                iso(point.period_start.as_ref().unwrap()),
                point.value,
                point.revision,
            )
        })
        .collect()
}

async fn metrics_events(deployment: &Deployment) -> i64 {
    let pool = deployment.database.pool("metrics").await;
    let count = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

fn assert_names_every_bad_row(output: &IcsctlOutput) {
    for (line, field, reason) in BAD_ROWS {
        let prefix = format!("line {line}: {field}: ");
        let named = output
            .stdout
            .lines()
            .find(|text| text.starts_with(&prefix))
            .unwrap_or_else(|| panic!("line {line} is not named:\n{}", output.stdout));
        assert!(named.contains(reason), "{named}");
    }
    for good in [2, 8, 9] {
        assert!(
            !output.stdout.contains(&format!("line {good}:")),
            "good line {good} was reported:\n{}",
            output.stdout
        );
    }
}

#[tokio::test]
async fn an_import_names_bad_rows_by_line_and_field_lands_the_good_ones_and_repeats_as_unchanged() {
    let deployment = Deployment::new().await;
    let server = deployment.start("all").await;

    let (registered, output) = deployment
        .icsctl(
            &server,
            &[
                "org",
                "register",
                "RR8",
                "--name",
                "The Leeds Teaching Hospitals NHS Trust",
                "--kind",
                "trust",
            ],
        )
        .await;
    assert!(registered, "{output}");
    let (installed, output) = deployment
        .icsctl(&server, &["measure", "install-reference"])
        .await;
    assert!(installed, "{output}");

    // One month recorded before the import, once the metrics service has learnt of the trust
    // from the trusts service's events (until then it answers NOT_FOUND).
    let record = [
        "observation",
        "record",
        "--ods",
        "RR8",
        "--measure",
        "FFT_POSITIVE",
        "--period-start",
        "2024-01-01",
        "--period-end",
        "2024-01-31",
        "--numerator",
        "900",
        "--denominator",
        "1000",
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let output = deployment.icsctl_output(&server, &record).await;
        if output.success {
            break;
        }
        assert!(
            output.stderr.contains("NOT_FOUND") && Instant::now() < deadline,
            "{}",
            output.stderr
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let file = TempFile::new("mixed", MIXED.as_bytes());
    let first = deployment
        .icsctl_output(&server, &["import", "observations", file.path()])
        .await;
    assert!(!first.success, "{}", first.stdout);
    assert_eq!(first.code, Some(1));
    assert!(
        first.stdout.starts_with(&format!(
            "{}: 8 rows read; 5 sent in 1 message; 3 rejected before sending",
            file.path()
        )),
        "{}",
        first.stdout
    );
    for expected in [
        "received:  5",
        "recorded:  3",
        "unchanged: 0",
        "rejected:  5 (3 before sending, 2 by the server)",
    ] {
        assert!(
            first.stdout.contains(expected),
            "{expected}:\n{}",
            first.stdout
        );
    }
    assert_names_every_bad_row(&first);
    assert!(
        first.stderr.contains("5 of 8 rows of ")
            && first
                .stderr
                .contains("were rejected; the other 3 were sent (3 recorded, 0 unchanged)"),
        "{}",
        first.stderr
    );

    // The good rows are in the series; the conflicting one did not replace January's figure.
    let after_first = points(&series(&deployment, &server).await);
    assert_eq!(
        after_first,
        [
            ("2024-01-01".to_owned(), 0.9, 1),
            ("2024-02-01".to_owned(), 0.91, 1),
            ("2024-07-01".to_owned(), 0.93, 1),
            ("2024-08-01".to_owned(), 0.94, 1),
        ]
    );
    let (shown, text) = deployment
        .icsctl(
            &server,
            &["series", "get", "--ods", "RR8", "--measure", "FFT_POSITIVE"],
        )
        .await;
    assert!(shown, "{text}");
    assert!(
        text.contains("2024-07-01") && text.ends_with("4 points\n"),
        "{text}"
    );

    // A dry run reads and reports without sending anything.
    let events = metrics_events(&deployment).await;
    let dry = deployment
        .icsctl_output(
            &server,
            &["import", "observations", file.path(), "--dry-run"],
        )
        .await;
    assert!(
        dry.stdout.contains("dry run: nothing was sent"),
        "{}",
        dry.stdout
    );
    assert_eq!(metrics_events(&deployment).await, events);

    // The same file again, two rows per message on one call: nothing recorded, the good rows
    // unchanged, the bad ones named again by their lines.
    let second = deployment
        .icsctl_output(
            &server,
            &["import", "observations", file.path(), "--chunk", "2"],
        )
        .await;
    assert!(!second.success);
    assert!(
        second.stdout.contains("5 sent in 3 messages"),
        "{}",
        second.stdout
    );
    for expected in [
        "received:  5",
        "recorded:  0",
        "unchanged: 3",
        "rejected:  5 (3 before sending, 2 by the server)",
    ] {
        assert!(
            second.stdout.contains(expected),
            "{expected}:\n{}",
            second.stdout
        );
    }
    assert_names_every_bad_row(&second);
    assert!(
        second
            .stderr
            .contains("the other 3 were sent (0 recorded, 3 unchanged)"),
        "{}",
        second.stderr
    );
    assert_eq!(metrics_events(&deployment).await, events);
    assert_eq!(points(&series(&deployment, &server).await), after_first);

    // A wrong header, and bytes that are not UTF-8: the whole file is refused, the line named,
    // nothing sent — not even the good rows before the fault.
    let wrong_header = TempFile::new(
        "header",
        b"ods_code,measure,period_start,period_end,value,numerator,denominator\n\
          RR8,FFT_POSITIVE,2024-09-01,2024-09-30,,900,1000\n",
    );
    let not_utf8 = TempFile::new(
        "encoding",
        b"ods_code,measure_code,period_start,period_end,value,numerator,denominator\n\
          RR8,FFT_POSITIVE,2024-10-01,2024-10-31,,900,1000\n\
          RR8,FFT_POSITIVE,2024-11-01,2024-11-30,,9\xff0,1000\n",
    );
    for (file, expected) in [
        (
            &wrong_header,
            "line 1: header column 2: expected 'measure_code', found 'measure'",
        ),
        (
            &not_utf8,
            "line 3: the file is not valid UTF-8 (byte 42 of the line)",
        ),
    ] {
        let refused = deployment
            .icsctl_output(&server, &["import", "observations", file.path()])
            .await;
        assert!(!refused.success);
        assert_eq!(refused.code, Some(1));
        assert!(refused.stderr.contains(expected), "{}", refused.stderr);
        assert!(
            refused.stderr.contains("nothing was sent"),
            "{}",
            refused.stderr
        );
        assert!(!refused.stdout.contains("recorded:"), "{}", refused.stdout);
    }
    assert_eq!(metrics_events(&deployment).await, events);
    assert_eq!(points(&series(&deployment, &server).await), after_first);

    let mut server = server;
    assert!(server.terminate().await);
    deployment.finish().await;
}
