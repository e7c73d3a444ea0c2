//! Shared test helpers: a seeded xorshift generator and series builders.

#![allow(dead_code)]

use ics_spc::{Direction, Point};

/// Four-decimal comparison, as the published vectors are given.
pub fn approx4(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 0.000_05
}

/// Plain points from values.
pub fn plain(values: &[f64]) -> Vec<Point> {
    values.iter().map(|&v| Point::new(v)).collect()
}

/// 16 baseline points alternating 9, 11 (mean 10, AMR 2, so process limits
/// 4.68 … 15.32 and 2σ lines 6.4533 … 13.5467), fixed as the partition's baseline,
/// followed by `tail`.
pub fn baseline_then(tail: &[f64]) -> Vec<Point> {
    let mut points: Vec<Point> = (0..16)
        .map(|i| Point::new(if i % 2 == 0 { 9.0 } else { 11.0 }))
        .collect();
    points[0] = points[0].with_baseline(16);
    points.extend(tail.iter().map(|&v| Point::new(v)));
    points
}

/// xorshift64* — small, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A multiple of 1/4 in `-range..=range` (exact in binary, so sums, negation and
    /// shifting by an integer are exact).
    pub fn quarter(&mut self, range: i64) -> f64 {
        let steps = (range * 4) as u64;
        (self.below(2 * steps + 1) as i64 - steps as i64) as f64 / 4.0
    }
}

/// A random series with partition markers, baselines and ghosts, exercising every
/// rule: independent noise, random walks, steps and ramps, with repeated values.
pub fn random_series(rng: &mut Rng) -> Vec<Point> {
    let len = rng.below(70) as usize;
    let mut points = Vec::with_capacity(len);
    let mut level = rng.quarter(20);
    let mut slope = 0.0;
    for i in 0..len {
        match rng.below(20) {
            0 => level += rng.quarter(10), // step
            1 => slope = rng.quarter(1),   // start a ramp (may be 0)
            2 => slope = 0.0,              // end it
            _ => {}
        }
        level += slope;
        let value = match rng.below(10) {
            0 if i > 0 => points.last().map_or(level, |p: &Point| p.value), // tie
            1 => level + rng.quarter(12),                                   // outlier-ish
            _ => level + rng.quarter(2),
        };
        let mut p = Point::new(value);
        p.ghosted = rng.chance(1, 10);
        p.recalculate_from = i > 0 && rng.chance(1, 18);
        if (i == 0 || p.recalculate_from) && rng.chance(1, 4) {
            p = p.with_baseline(rng.below(22) as usize);
        }
        points.push(p);
    }
    points
}

pub fn random_direction(rng: &mut Rng) -> Direction {
    rng.pick(&[Direction::Increase, Direction::Decrease, Direction::Neither])
}
