//! The improvement direction of a measure.

/// Which way is better for a measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Higher is better (e.g. Friends and Family Test % positive).
    Increase,
    /// Lower is better (e.g. staff leaver rate).
    Decrease,
    /// No direction: results are only *higher* / *lower*, never better / worse.
    Neither,
}

impl Direction {
    /// The direction of the negated measure: increase ↔ decrease, neither stays.
    pub const fn flipped(self) -> Direction {
        match self {
            Direction::Increase => Direction::Decrease,
            Direction::Decrease => Direction::Increase,
            Direction::Neither => Direction::Neither,
        }
    }
}
