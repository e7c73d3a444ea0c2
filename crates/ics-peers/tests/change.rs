//! Change against peers against hand-computed values.

#![allow(clippy::unwrap_used)]

mod common;

use common::close;
use ics_peers::{ChangeError, ChangeUnit, Direction, Movement, Relative, changes, compare_change};

/// Staff leaver rate (%, leavers ÷ mean of start and end headcount) for five trusts
/// over a year. Lower is better; every trust improved.
fn leaver_rates() -> Vec<ChangeUnit> {
    vec![
        ChangeUnit::new("RXA", 14.2, 12.9), // −1.3
        ChangeUnit::new("RXB", 13.5, 12.6), // −0.9
        ChangeUnit::new("RXC", 15.1, 13.4), // −1.7
        ChangeUnit::new("RXD", 12.8, 11.3), // −1.5
        ChangeUnit::new("RXE", 14.6, 13.8), // −0.8
    ]
}

/// A unit with the given change against peers whose changes are given.
fn with_peers(change: f64, peers: &[f64]) -> Vec<ChangeUnit> {
    let mut v = vec![ChangeUnit::new("me", 10.0, 10.0 + change)];
    v.extend(
        peers
            .iter()
            .enumerate()
            .map(|(i, c)| ChangeUnit::new(format!("p{i}"), 10.0, 10.0 + c)),
    );
    v
}

#[test]
fn seed_turnover_improved_everywhere_but_not_distinctly() {
    let units = leaver_rates();
    let all = changes(&units).unwrap();
    for (c, want) in all.iter().zip([-1.3, -0.9, -1.7, -1.5, -0.8]) {
        close(&c.id, c.change, want, 1e-12);
    }

    let c = compare_change(&units, Direction::Decrease, "RXA").unwrap();
    assert_eq!(c.unit.id, "RXA");
    close("change", c.unit.change, -1.3, 1e-12);
    let peer_ids: Vec<&str> = c.peers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(peer_ids, ["RXB", "RXC", "RXD", "RXE"]);
    // Peers' changes −0.9, −1.7, −1.5, −0.8: mean = −4.9/4 = −1.225
    close("peer mean", c.peer_mean, -1.225, 1e-12);
    // deviations 0.325, −0.475, −0.275, 0.425; squares 0.105625, 0.225625,
    // 0.075625, 0.180625; sum 0.5875; /3 = 0.1958333; sd = sqrt = 0.4425306
    close("peer sd", c.peer_sd, 0.4425306, 1e-7);
    // z = (−1.3 + 1.225)/0.4425306 = −0.075/0.4425306 = −0.1694798
    close("z", c.z.unwrap(), -0.1694798, 1e-7);
    // Peers below −1.3: −1.7, −1.5 → 2 of 4 → 50th percentile; improved more than
    // −0.9 and −0.8 → 50% of peers.
    close("percentile", c.percentile_rank, 50.0, 1e-12);
    close(
        "improvement",
        c.improvement_percentile.unwrap(),
        50.0,
        1e-12,
    );
    assert_eq!(c.label.movement(), Movement::Improved);
    assert_eq!(c.label.relative(), Relative::NotDistinct);
    assert!(!c.label.is_distinct());
    assert_eq!(c.label.text(), "improved, not distinctly from peers");
    assert_eq!(c.label.to_string(), "improved, not distinctly from peers");

    // The same answer for each of the five against the other four
    // (z: RXA −0.17, RXB 1.10, RXC −1.74, RXD −0.79, RXE 1.61).
    for (id, z) in [
        ("RXA", -0.1694798),
        ("RXB", 1.1004062),
        ("RXC", -1.7402948),
        ("RXD", -0.7901799),
        ("RXE", 1.6102351),
    ] {
        let c = compare_change(&units, Direction::Decrease, id).unwrap();
        close(id, c.z.unwrap(), z, 1e-7);
        assert_eq!(
            c.label.text(),
            "improved, not distinctly from peers",
            "{id}"
        );
    }
    // RXC improved the most: bottom of the raw distribution, top for improvement.
    let c = compare_change(&units, Direction::Decrease, "RXC").unwrap();
    assert_eq!(c.percentile_rank, 0.0);
    assert_eq!(c.improvement_percentile, Some(100.0));
}

#[test]
fn distinct_changes() {
    // Peers −1.0, −1.2, −0.8, −1.1: mean −4.1/4 = −1.025; deviations 0.025,
    // −0.175, 0.225, −0.075; squares sum 0.0875; /3 = 0.0291667; sd = 0.1707825.
    let peers = [-1.0, -1.2, -0.8, -1.1];

    // +0.5: z = 1.525/0.1707825 = 8.929486; lower is better → worsened, distinctly.
    let c = compare_change(&with_peers(0.5, &peers), Direction::Decrease, "me").unwrap();
    close("mean", c.peer_mean, -1.025, 1e-12);
    close("sd", c.peer_sd, 0.1707825, 1e-7);
    close("z", c.z.unwrap(), 8.929486, 1e-6);
    assert_eq!(c.percentile_rank, 100.0);
    assert_eq!(c.improvement_percentile, Some(0.0));
    assert_eq!(
        (c.label.movement(), c.label.relative()),
        (Movement::Worsened, Relative::Worse)
    );
    assert_eq!(c.label.text(), "worsened, distinctly from peers");
    // Higher is better → the same change improved, distinctly.
    let c = compare_change(&with_peers(0.5, &peers), Direction::Increase, "me").unwrap();
    assert_eq!(c.label.text(), "improved, distinctly from peers");
    assert_eq!(c.improvement_percentile, Some(100.0));
    // No direction.
    let c = compare_change(&with_peers(0.5, &peers), Direction::Neither, "me").unwrap();
    assert_eq!(c.label.text(), "increased, distinctly from peers");
    assert_eq!(c.label.relative(), Relative::Higher);
    assert_eq!(c.improvement_percentile, None);

    // −3.0: z = −1.975/0.1707825 = −11.564416.
    let c = compare_change(&with_peers(-3.0, &peers), Direction::Decrease, "me").unwrap();
    close("z", c.z.unwrap(), -11.564416, 1e-6);
    assert_eq!(c.label.text(), "improved, distinctly from peers");
    let c = compare_change(&with_peers(-3.0, &peers), Direction::Increase, "me").unwrap();
    assert_eq!(c.label.text(), "worsened, distinctly from peers");
    let c = compare_change(&with_peers(-3.0, &peers), Direction::Neither, "me").unwrap();
    assert_eq!(c.label.text(), "decreased, distinctly from peers");

    // −0.1: improved (down), but z = 0.925/0.1707825 = 5.416245 — distinctly less
    // improvement than peers.
    let c = compare_change(&with_peers(-0.1, &peers), Direction::Decrease, "me").unwrap();
    close("z", c.z.unwrap(), 5.416245, 1e-6);
    assert_eq!(
        (c.label.movement(), c.label.relative()),
        (Movement::Improved, Relative::Worse)
    );
    assert!(c.label.is_distinct());
    assert_eq!(c.label.text(), "improved, but distinctly less than peers");
    let c = compare_change(&with_peers(-0.1, &peers), Direction::Increase, "me").unwrap();
    assert_eq!(c.label.text(), "worsened, but distinctly less than peers");
    let c = compare_change(&with_peers(-0.1, &peers), Direction::Neither, "me").unwrap();
    assert_eq!(c.label.text(), "decreased, but distinctly less than peers");

    // 0: z = 1.025/0.1707825 = 6.001785 → no change while peers improved.
    let c = compare_change(&with_peers(0.0, &peers), Direction::Decrease, "me").unwrap();
    close("z", c.z.unwrap(), 6.001785, 1e-6);
    assert_eq!(c.label.text(), "no change, distinctly worse than peers");
    let c = compare_change(&with_peers(0.0, &peers), Direction::Increase, "me").unwrap();
    assert_eq!(c.label.text(), "no change, distinctly better than peers");
    let c = compare_change(&with_peers(0.0, &peers), Direction::Neither, "me").unwrap();
    assert_eq!(c.label.text(), "no change, distinctly higher than peers");
}

#[test]
fn no_change_and_not_distinct() {
    // Peers −0.2, 0.1, 0.3, −0.1: mean 0.025; deviations −0.225, 0.075, 0.275,
    // −0.125; squares sum 0.1475; /3 = 0.0491667; sd = 0.2217356;
    // z = −0.025/0.2217356 = −0.112747.
    let units = with_peers(0.0, &[-0.2, 0.1, 0.3, -0.1]);
    let c = compare_change(&units, Direction::Decrease, "me").unwrap();
    close("mean", c.peer_mean, 0.025, 1e-12);
    close("sd", c.peer_sd, 0.2217356, 1e-7);
    close("z", c.z.unwrap(), -0.112747, 1e-6);
    assert_eq!(c.label.movement(), Movement::NoChange);
    assert_eq!(c.label.text(), "no change");
    // Two peers below 0 → 50th percentile.
    assert_eq!(c.percentile_rank, 50.0);

    // Worsened, not distinctly: +0.2 → z = 0.175/0.2217356 = 0.789228.
    let units = with_peers(0.2, &[-0.2, 0.1, 0.3, -0.1]);
    let c = compare_change(&units, Direction::Decrease, "me").unwrap();
    close("z", c.z.unwrap(), 0.789228, 1e-6);
    assert_eq!(c.label.text(), "worsened, not distinctly from peers");
    let c = compare_change(&units, Direction::Neither, "me").unwrap();
    assert_eq!(c.label.text(), "increased, not distinctly from peers");
    let units = with_peers(-0.2, &[-0.2, 0.1, 0.3, -0.1]);
    let c = compare_change(&units, Direction::Neither, "me").unwrap();
    assert_eq!(c.label.text(), "decreased, not distinctly from peers");
    // Tie with one peer counts half: (0 below + ½·1 equal)/4 = 12.5.
    assert_eq!(c.percentile_rank, 12.5);
    let c = compare_change(&units, Direction::Decrease, "me").unwrap();
    assert_eq!(c.improvement_percentile, Some(87.5));
}

#[test]
fn peers_all_changed_the_same() {
    // sd = 0: no z; a change equal to the peers' is not distinct, any other is.
    let peers = [-1.0, -1.0, -1.0];
    let c = compare_change(&with_peers(-1.0, &peers), Direction::Decrease, "me").unwrap();
    assert_eq!((c.peer_mean, c.peer_sd, c.z), (-1.0, 0.0, None));
    assert_eq!(c.label.text(), "improved, not distinctly from peers");
    assert_eq!(c.percentile_rank, 50.0);
    let c = compare_change(&with_peers(-0.5, &peers), Direction::Decrease, "me").unwrap();
    assert_eq!(c.z, None);
    assert_eq!(c.label.text(), "improved, but distinctly less than peers");
    let c = compare_change(&with_peers(-1.5, &peers), Direction::Decrease, "me").unwrap();
    assert_eq!(c.label.text(), "improved, distinctly from peers");
}

#[test]
fn input_errors() {
    let mut units = leaver_rates();
    assert_eq!(
        compare_change(&units, Direction::Decrease, "RXZ"),
        Err(ChangeError::UnknownUnit { id: "RXZ".into() })
    );
    units.push(ChangeUnit::new("RXB", 1.0, 2.0));
    assert_eq!(
        compare_change(&units, Direction::Decrease, "RXA"),
        Err(ChangeError::DuplicateId { id: "RXB".into() })
    );
    assert_eq!(
        compare_change(&units[..2], Direction::Decrease, "RXA"),
        Err(ChangeError::TooFewPeers { peers: 1 })
    );
    assert!(compare_change(&units[..3], Direction::Decrease, "RXA").is_ok());

    let bad = [
        ChangeUnit::new("a", 1.0, 2.0),
        ChangeUnit::new("b", f64::NAN, 2.0),
    ];
    let err = ChangeError::NonFinite {
        index: 1,
        id: "b".into(),
        field: "start",
    };
    assert_eq!(changes(&bad), Err(err.clone()));
    assert_eq!(compare_change(&bad, Direction::Increase, "a"), Err(err));
    let bad = [ChangeUnit::new("a", 1.0, f64::NEG_INFINITY)];
    assert!(matches!(
        changes(&bad),
        Err(ChangeError::NonFinite { field: "end", .. })
    ));
    // Finite values whose difference overflows.
    let bad = [ChangeUnit::new("a", -f64::MAX, f64::MAX)];
    assert!(matches!(
        changes(&bad),
        Err(ChangeError::NonFinite {
            field: "change",
            ..
        })
    ));
    assert_eq!(
        ChangeError::TooFewPeers { peers: 1 }.to_string(),
        "comparison needs at least 2 peers, got 1"
    );
}
