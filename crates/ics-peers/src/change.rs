//! A unit's change over a period against the distribution of its peers' changes.

use std::fmt;

use crate::stats;
use ics_spc::Direction;

/// A change is *distinct* from peers when it lies strictly beyond this many peer
/// standard deviations from the peers' mean change.
pub const DISTINCT_Z: f64 = 1.96;

/// One unit's value of a measure at the start and end of a period.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeUnit {
    /// Identifier (e.g. an ODS code); must be unique within a comparison.
    pub id: String,
    /// Value at the start of the period.
    pub start: f64,
    /// Value at the end of the period.
    pub end: f64,
}

impl ChangeUnit {
    /// A unit.
    pub fn new(id: impl Into<String>, start: f64, end: f64) -> ChangeUnit {
        ChangeUnit {
            id: id.into(),
            start,
            end,
        }
    }
}

/// One unit's change, `end − start`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitChange {
    /// The unit's id.
    pub id: String,
    /// As given.
    pub start: f64,
    /// As given.
    pub end: f64,
    /// `end − start`.
    pub change: f64,
}

/// Why a change comparison could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangeError {
    /// A start or end value is NaN or infinite, or their difference overflows.
    NonFinite {
        /// Index of the unit in the input.
        index: usize,
        /// The unit's id.
        id: String,
        /// `"start"`, `"end"` or `"change"`.
        field: &'static str,
    },
    /// Two units share an id.
    DuplicateId {
        /// The repeated id.
        id: String,
    },
    /// The unit to compare is not among the units.
    UnknownUnit {
        /// The id asked for.
        id: String,
    },
    /// Fewer than 2 peers besides the unit: no peer standard deviation.
    TooFewPeers {
        /// Peers available.
        peers: usize,
    },
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::NonFinite { index, id, field } => {
                write!(f, "unit {index} ({id}): {field} is not a finite number")
            }
            ChangeError::DuplicateId { id } => write!(f, "unit id {id} appears more than once"),
            ChangeError::UnknownUnit { id } => write!(f, "unit {id} is not among the units"),
            ChangeError::TooFewPeers { peers } => {
                write!(f, "comparison needs at least 2 peers, got {peers}")
            }
        }
    }
}

impl std::error::Error for ChangeError {}

/// Which way the unit's own value moved, read through the direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Movement {
    /// Moved the good way.
    Improved,
    /// Change exactly 0.
    NoChange,
    /// Moved the bad way.
    Worsened,
    /// Went up ([`Direction::Neither`] only).
    Increased,
    /// Went down ([`Direction::Neither`] only).
    Decreased,
}

/// Where the unit's change sits against its peers' changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relative {
    /// Distinctly better than peers' change (beyond [`DISTINCT_Z`] on the good side).
    Better,
    /// Within ±[`DISTINCT_Z`] peer standard deviations of the peers' mean.
    NotDistinct,
    /// Distinctly worse than peers' change.
    Worse,
    /// Distinctly above peers' change ([`Direction::Neither`] only).
    Higher,
    /// Distinctly below peers' change ([`Direction::Neither`] only).
    Lower,
}

/// The label of a change against peers: the unit's own [`Movement`] and where the
/// change sits among the peers' changes ([`Relative`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChangeLabel {
    movement: Movement,
    relative: Relative,
}

impl ChangeLabel {
    /// The label for a unit's change and its z-score against peers (raw change
    /// scale; `None` when the peers' changes are all equal, see the crate docs).
    pub fn new(change: f64, z: Option<f64>, peer_mean: f64, direction: Direction) -> ChangeLabel {
        let movement = if change == 0.0 {
            Movement::NoChange
        } else {
            let up = change > 0.0;
            match direction {
                Direction::Increase if up => Movement::Improved,
                Direction::Increase => Movement::Worsened,
                Direction::Decrease if up => Movement::Worsened,
                Direction::Decrease => Movement::Improved,
                Direction::Neither if up => Movement::Increased,
                Direction::Neither => Movement::Decreased,
            }
        };
        // +1 above peers, −1 below, 0 not distinct (raw change scale).
        let side = match z {
            Some(z) if z > DISTINCT_Z => 1,
            Some(z) if z < -DISTINCT_Z => -1,
            Some(_) => 0,
            None if change > peer_mean => 1,
            None if change < peer_mean => -1,
            None => 0,
        };
        let relative = match (side, direction) {
            (0, _) => Relative::NotDistinct,
            (1, Direction::Increase) | (-1, Direction::Decrease) => Relative::Better,
            (_, Direction::Increase) | (_, Direction::Decrease) => Relative::Worse,
            (1, Direction::Neither) => Relative::Higher,
            (_, Direction::Neither) => Relative::Lower,
        };
        ChangeLabel { movement, relative }
    }

    /// The unit's own movement.
    pub const fn movement(self) -> Movement {
        self.movement
    }

    /// Where the change sits against peers.
    pub const fn relative(self) -> Relative {
        self.relative
    }

    /// Whether the change is distinct from peers'.
    pub const fn is_distinct(self) -> bool {
        !matches!(self.relative, Relative::NotDistinct)
    }

    /// The label as text, e.g. `"improved, not distinctly from peers"`.
    ///
    /// | movement \ relative | not distinct | same side as the movement | other side |
    /// |---|---|---|---|
    /// | improved | improved, not distinctly from peers | improved, distinctly from peers | improved, but distinctly less than peers |
    /// | worsened | worsened, not distinctly from peers | worsened, distinctly from peers | worsened, but distinctly less than peers |
    /// | increased / decreased | … not distinctly from peers | … distinctly from peers | … but distinctly less than peers |
    /// | no change | no change | no change, distinctly better (higher) than peers | no change, distinctly worse (lower) than peers |
    pub const fn text(self) -> &'static str {
        use Movement as M;
        use Relative as R;
        match (self.movement, self.relative) {
            (M::NoChange, R::NotDistinct) => "no change",
            (M::NoChange, R::Better) => "no change, distinctly better than peers",
            (M::NoChange, R::Worse) => "no change, distinctly worse than peers",
            (M::NoChange, R::Higher) => "no change, distinctly higher than peers",
            (M::NoChange, R::Lower) => "no change, distinctly lower than peers",
            (M::Improved, R::NotDistinct) => "improved, not distinctly from peers",
            (M::Improved, R::Better) => "improved, distinctly from peers",
            (M::Improved, _) => "improved, but distinctly less than peers",
            (M::Worsened, R::NotDistinct) => "worsened, not distinctly from peers",
            (M::Worsened, R::Worse) => "worsened, distinctly from peers",
            (M::Worsened, _) => "worsened, but distinctly less than peers",
            (M::Increased, R::NotDistinct) => "increased, not distinctly from peers",
            (M::Increased, R::Higher) => "increased, distinctly from peers",
            (M::Increased, _) => "increased, but distinctly less than peers",
            (M::Decreased, R::NotDistinct) => "decreased, not distinctly from peers",
            (M::Decreased, R::Lower) => "decreased, distinctly from peers",
            (M::Decreased, _) => "decreased, but distinctly less than peers",
        }
    }
}

impl fmt::Display for ChangeLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A unit's change against its peers' changes.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerComparison {
    /// The measure's improvement direction.
    pub direction: Direction,
    /// The unit compared.
    pub unit: UnitChange,
    /// Every other unit, in input order.
    pub peers: Vec<UnitChange>,
    /// Mean of the peers' changes.
    pub peer_mean: f64,
    /// Sample standard deviation (n − 1) of the peers' changes.
    pub peer_sd: f64,
    /// `(change − peer_mean) / peer_sd` on the raw change scale (positive = went up
    /// more than peers); `None` when `peer_sd` is 0.
    pub z: Option<f64>,
    /// Percentile rank (0–100) of the unit's change among the peers' changes, raw
    /// scale ascending: `100 × (peers below + ½ × peers equal) / peers`.
    pub percentile_rank: f64,
    /// The same on the improvement scale: the share (0–100) of peers whose
    /// improvement the unit's exceeds (ties count half). `None` for
    /// [`Direction::Neither`].
    pub improvement_percentile: Option<f64>,
    /// Movement and distinctness.
    pub label: ChangeLabel,
}

/// Every unit's change `end − start`, in input order.
pub fn changes(units: &[ChangeUnit]) -> Result<Vec<UnitChange>, ChangeError> {
    units
        .iter()
        .enumerate()
        .map(|(index, u)| {
            let change = u.end - u.start;
            for (field, v) in [("start", u.start), ("end", u.end), ("change", change)] {
                if !v.is_finite() {
                    return Err(ChangeError::NonFinite {
                        index,
                        id: u.id.clone(),
                        field,
                    });
                }
            }
            Ok(UnitChange {
                id: u.id.clone(),
                start: u.start,
                end: u.end,
                change,
            })
        })
        .collect()
}

/// Compares the change of the unit `unit` (by id) with the changes of every other
/// unit in `units` (its peers; at least 2). See the crate docs for the definitions.
pub fn compare_change(
    units: &[ChangeUnit],
    direction: Direction,
    unit: &str,
) -> Result<PeerComparison, ChangeError> {
    let all = changes(units)?;
    for (i, c) in all.iter().enumerate() {
        if all.iter().skip(i + 1).any(|d| d.id == c.id) {
            return Err(ChangeError::DuplicateId { id: c.id.clone() });
        }
    }
    let (mine, peers): (Vec<UnitChange>, Vec<UnitChange>) =
        all.into_iter().partition(|c| c.id == unit);
    let Some(mine) = mine.into_iter().next() else {
        return Err(ChangeError::UnknownUnit { id: unit.into() });
    };

    let peer_changes: Vec<f64> = peers.iter().map(|p| p.change).collect();
    let (Some(peer_mean), Some(peer_sd)) =
        (stats::mean(&peer_changes), stats::sample_sd(&peer_changes))
    else {
        return Err(ChangeError::TooFewPeers { peers: peers.len() });
    };
    let z = (peer_sd > 0.0).then(|| (mine.change - peer_mean) / peer_sd);

    let below = peer_changes.iter().filter(|&&c| c < mine.change).count() as f64;
    let equal = peer_changes.iter().filter(|&&c| c == mine.change).count() as f64;
    let percentile_rank = 100.0 * (below + 0.5 * equal) / peer_changes.len() as f64;
    let improvement_percentile = match direction {
        Direction::Increase => Some(percentile_rank),
        Direction::Decrease => Some(100.0 - percentile_rank),
        Direction::Neither => None,
    };
    let label = ChangeLabel::new(mine.change, z, peer_mean, direction);

    Ok(PeerComparison {
        direction,
        unit: mine,
        peers,
        peer_mean,
        peer_sd,
        z,
        percentile_rank,
        improvement_percentile,
        label,
    })
}
