//! Funnel plots for proportions against hand-computed values.
//!
//! The arithmetic in the comments was done on a calculator to 7 decimals; the
//! assertions allow for that rounding.

#![allow(clippy::unwrap_used)]

mod common;

use common::close;
use ics_peers::{
    CurveError, Direction, FunnelError, FunnelLabel, FunnelUnit, Performance, Position, Z_95,
    Z_998, funnel, funnel_curve, funnel_limits,
};

/// Seven units, pooled proportion exactly 0.25, two clear outliers.
fn seven() -> Vec<FunnelUnit> {
    vec![
        FunnelUnit::new("A", 8.0, 100.0),
        FunnelUnit::new("B", 40.0, 100.0),
        FunnelUnit::new("C", 50.0, 200.0),
        FunnelUnit::new("D", 100.0, 400.0),
        FunnelUnit::new("E", 20.0, 100.0),
        FunnelUnit::new("F", 25.0, 100.0),
        FunnelUnit::new("G", 32.0, 100.0),
    ]
}

#[test]
fn over_dispersed_example_by_hand() {
    let f = funnel(&seven(), Direction::Increase).unwrap();

    // Target: ΣO = 8+40+50+100+20+25+32 = 275, ΣN = 100·5+200+400 = 1100,
    // p₀ = 275/1100 = 0.25, θ₀ = asin(sqrt(0.25)) = asin(0.5) = π/6 = 0.5235988.
    assert_eq!(f.target, 0.25);
    close(
        "θ₀",
        f.target_transformed,
        std::f64::consts::FRAC_PI_6,
        1e-15,
    );

    // s = 1/(2·sqrt(N)): N=100 → 1/20 = 0.05; N=200 → 1/28.2842712 = 0.0353553;
    // N=400 → 1/40 = 0.025.
    let u = &f.units;
    close("s A", u[0].standard_error, 0.05, 1e-15);
    close("s C", u[2].standard_error, 0.0353553, 1e-7);
    close("s D", u[3].standard_error, 0.025, 1e-15);

    // y = asin(sqrt(p)):
    //   A: asin(sqrt(0.08)) = asin(0.2828427) = 0.2867566
    //   B: asin(sqrt(0.40)) = asin(0.6324555) = 0.6847192
    //   E: asin(sqrt(0.20)) = asin(0.4472136) = 0.4636476
    //   G: asin(sqrt(0.32)) = asin(0.5656854) = 0.6012642
    //   C, D, F: p = 0.25 → π/6
    close("y A", u[0].transformed, 0.2867566, 1e-7);
    close("y B", u[1].transformed, 0.6847192, 1e-7);
    close("p A", u[0].proportion, 0.08, 1e-15);

    // z = (y − θ₀)/s:
    //   A: (0.2867566 − 0.5235988)/0.05 = −0.2368422/0.05 = −4.736844
    //   B: (0.6847192 − 0.5235988)/0.05 =  0.1611204/0.05 =  3.222409
    //   E: (0.4636476 − 0.5235988)/0.05 = −0.0599512/0.05 = −1.199023
    //   G: (0.6012642 − 0.5235988)/0.05 =  0.0776654/0.05 =  1.553309
    //   C, D, F: 0
    let z: Vec<f64> = u.iter().map(|r| r.z).collect();
    for (got, want) in z
        .iter()
        .zip([-4.736844, 3.222409, 0.0, 0.0, -1.199023, 0.0, 1.553309])
    {
        close("z", *got, want, 1e-6);
    }

    // Winsorising, sorted z: −4.736844, −1.199023, 0, 0, 0, 1.553309, 3.222409 (n = 7)
    //   10th centile: h = 6·0.1 = 0.6 → −4.736844 + 0.6·(−1.199023 + 4.736844)
    //                 = −4.736844 + 0.6·3.537821 = −2.614152
    //   90th centile: h = 6·0.9 = 5.4 → 1.553309 + 0.4·(3.222409 − 1.553309)
    //                 = 1.553309 + 0.4·1.669100 = 2.220949
    close("lower centile", f.winsorised_lower, -2.614152, 1e-6);
    close("upper centile", f.winsorised_upper, 2.220949, 1e-6);
    // A and B are clipped, the rest unchanged.
    close("wz A", u[0].z_winsorised, -2.614152, 1e-6);
    close("wz B", u[1].z_winsorised, 2.220949, 1e-6);
    for r in &u[2..] {
        assert_eq!(r.z_winsorised, r.z, "{}", r.id);
    }

    // φ = (2.614152² + 2.220949² + 1.199023² + 1.553309²)/7
    //   = (6.833790 + 4.932613 + 1.437657 + 2.412768)/7 = 15.616828/7 = 2.230975
    close("φ", f.phi, 2.230975, 1e-6);

    // w = 1/s² = 4N: 400, 400, 800, 1600, 400, 400, 400
    //   Σw = 4400; Σw² = 5·400² + 800² + 1600² = 800000 + 640000 + 2560000 = 4000000
    //   Σw − Σw²/Σw = 4400 − 909.090909 = 3490.909091
    // τ² = (7·2.230975 − 6)/3490.909091 = 9.616828/3490.909091 = 0.002754821
    close("τ²", f.tau2, 0.002754821, 1e-9);
    assert!(f.overdispersion_applied);

    // Widened s at N=100: sqrt(0.05² + τ²) = sqrt(0.0025 + 0.002754821)
    //   = sqrt(0.005254821) = 0.0724901
    // z* = (y − θ₀)/0.0724901:
    //   A: −0.2368422/0.0724901 = −3.267234   (beyond −3.090232: lower, beyond 99.8%)
    //   B:  0.1611204/0.0724901 =  2.222653   (higher, inside 99.8%)
    //   E: −0.0599512/0.0724901 = −0.827025
    //   G:  0.0776654/0.0724901 =  1.071393   (as expected; unadjusted 1.553309 also)
    close("z* A", u[0].z_adjusted, -3.267234, 1e-6);
    close("z* B", u[1].z_adjusted, 2.222653, 1e-6);
    close("z* E", u[4].z_adjusted, -0.827025, 1e-6);
    close("z* G", u[6].z_adjusted, 1.071393, 1e-6);
    assert_eq!(u[2].z_adjusted, 0.0);

    // Limits at N=100, widened:
    //   95%:   θ₀ ± 1.959964·0.0724901 = 0.5235988 ± 0.1420781 → 0.3815207, 0.6656769
    //          sin²: 0.138631, 0.381419
    //   99.8%: θ₀ ± 3.090232·0.0724901 = 0.5235988 ± 0.2240114 → 0.2995874, 0.7476102
    //          sin²: 0.087099, 0.462248
    let l = u[0].limits;
    close("lower 95", l.lower_95, 0.138631, 1e-6);
    close("upper 95", l.upper_95, 0.381419, 1e-6);
    close("lower 99.8", l.lower_998, 0.087099, 1e-6);
    close("upper 99.8", l.upper_998, 0.462248, 1e-6);
    // Every N=100 unit has the same limits.
    assert!(
        u.iter()
            .filter(|r| r.denominator == 100.0)
            .all(|r| r.limits == l)
    );
    // Unadjusted at N=100: θ₀ ± 1.959964·0.05 = 0.5235988 ± 0.0979982
    //   → 0.4256006, 0.6215970 → sin²: 0.170460, 0.339113
    let ul = u[0].unadjusted_limits;
    close("unadjusted lower 95", ul.lower_95, 0.170460, 1e-6);
    close("unadjusted upper 95", ul.upper_95, 0.339113, 1e-6);
    // Limits narrow as N grows: at N=400, s² + τ² = 0.000625 + 0.002754821,
    //   sqrt = 0.0581362; 95%: 0.5235988 ± 0.1139449 → sin²: 0.158636, 0.354291
    close("lower 95 D", u[3].limits.lower_95, 0.158636, 1e-6);
    close("upper 95 D", u[3].limits.upper_95, 0.354291, 1e-6);

    // Labels (higher is better here).
    let positions: Vec<Position> = u.iter().map(|r| r.label.position).collect();
    use Position::{AsExpected as X, Higher as H, Lower as L};
    assert_eq!(positions, vec![L, H, X, X, X, X, X]);
    assert!(u[0].label.beyond_998);
    assert!(!u[1].label.beyond_998);
    assert_eq!(u[0].label.performance, Some(Performance::Worse));
    assert_eq!(u[1].label.performance, Some(Performance::Better));
    assert_eq!(u[4].label.performance, Some(Performance::Same));
    // The label matches the proportion against the limits.
    assert!(u[0].proportion < u[0].limits.lower_998);
    assert!(u[1].proportion > u[1].limits.upper_95 && u[1].proportion < u[1].limits.upper_998);
    assert_eq!(
        u[0].label.to_string(),
        "lower than expected, beyond the 99.8% limit: worse"
    );
    assert_eq!(u[1].label.to_string(), "higher than expected: better");
    assert_eq!(u[2].label.to_string(), "as expected: same");
}

#[test]
fn under_dispersed_example_has_no_widening() {
    let units = [
        FunnelUnit::new("A", 21.0, 100.0),
        FunnelUnit::new("B", 29.0, 100.0),
        FunnelUnit::new("C", 50.0, 200.0),
        FunnelUnit::new("D", 100.0, 400.0),
    ];
    let f = funnel(&units, Direction::Decrease).unwrap();
    // p₀ = 200/800 = 0.25, θ₀ = π/6.
    assert_eq!(f.target, 0.25);
    // z A = (asin(sqrt(0.21)) − θ₀)/0.05 = (0.4760338 − 0.5235988)/0.05 = −0.951299
    // z B = (asin(sqrt(0.29)) − θ₀)/0.05 = (0.5686755 − 0.5235988)/0.05 =  0.901535
    // z C = z D = 0
    close("z A", f.units[0].z, -0.951299, 1e-6);
    close("z B", f.units[1].z, 0.901535, 1e-6);
    // sorted: −0.951299, 0, 0, 0.901535 (n = 4)
    //   10th: h = 0.3 → −0.951299 + 0.3·0.951299 = −0.665909
    //   90th: h = 2.7 → 0 + 0.7·0.901535 = 0.631074
    close("lower centile", f.winsorised_lower, -0.665909, 1e-6);
    close("upper centile", f.winsorised_upper, 0.631074, 1e-6);
    // φ = (0.665909² + 0.631074²)/4 = (0.443435 + 0.398255)/4 = 0.210422 < 1
    close("φ", f.phi, 0.210422, 1e-6);
    // n·φ − (n − 1) = 0.841690 − 3 < 0 → τ² = 0, no adjustment.
    assert_eq!(f.tau2, 0.0);
    assert!(!f.overdispersion_applied);
    for r in &f.units {
        assert_eq!(r.z_adjusted, r.z);
        assert_eq!(r.limits, r.unadjusted_limits);
        assert_eq!(r.label.position, Position::AsExpected);
        assert_eq!(r.label.performance, Some(Performance::Same));
    }
    // Unadjusted limits at N=100: θ₀ ± 1.959964·0.05 → sin²: 0.170460, 0.339113;
    //   99.8%: θ₀ ± 3.090232·0.05 = 0.5235988 ± 0.1545116 → 0.3690872, 0.6781104
    //   → sin²: 0.130151, 0.393534
    let l = f.units[0].limits;
    close("lower 95", l.lower_95, 0.170460, 1e-6);
    close("upper 95", l.upper_95, 0.339113, 1e-6);
    close("lower 99.8", l.lower_998, 0.130151, 1e-6);
    close("upper 99.8", l.upper_998, 0.393534, 1e-6);
}

#[test]
fn phi_just_below_one_still_widens_as_funnelplotr() {
    // τ² > 0 needs n·φ > n − 1, i.e. φ > 3/4 with 4 units — not φ > 1.
    let units = [
        FunnelUnit::new("A", 17.0, 100.0),
        FunnelUnit::new("B", 33.0, 100.0),
        FunnelUnit::new("C", 50.0, 200.0),
        FunnelUnit::new("D", 100.0, 400.0),
    ];
    let f = funnel(&units, Direction::Increase).unwrap();
    // z A = (asin(sqrt(0.17)) − θ₀)/0.05 = (0.4249888 − 0.5235988)/0.05 = −1.972200
    // z B = (asin(sqrt(0.33)) − θ₀)/0.05 = (0.6119397 − 0.5235988)/0.05 =  1.766819
    // 10th: −1.972200 + 0.3·1.972200 = −1.380540; 90th: 0.7·1.766819 = 1.236773
    // φ = (1.380540² + 1.236773²)/4 = (1.905890 + 1.529608)/4 = 0.858875
    close("φ", f.phi, 0.858875, 1e-6);
    assert!(f.phi < 1.0);
    // Σw = 400 + 400 + 800 + 1600 = 3200; Σw² = 2·160000 + 640000 + 2560000 = 3520000
    // Σw − Σw²/Σw = 3200 − 1100 = 2100
    // τ² = (4·0.858875 − 3)/2100 = 0.435498/2100 = 0.000207380
    close("τ²", f.tau2, 0.000207380, 1e-9);
    assert!(f.overdispersion_applied);
    assert!(f.units[0].limits.lower_95 < f.units[0].unadjusted_limits.lower_95);
}

#[test]
fn labels_follow_the_direction() {
    let dec = funnel(&seven(), Direction::Decrease).unwrap();
    let inc = funnel(&seven(), Direction::Increase).unwrap();
    let nei = funnel(&seven(), Direction::Neither).unwrap();
    // Positions and statistics do not depend on the direction.
    assert_eq!(dec.phi, inc.phi);
    for ((d, i), n) in dec.units.iter().zip(&inc.units).zip(&nei.units) {
        assert_eq!(d.label.position, i.label.position);
        assert_eq!(d.label.position, n.label.position);
        assert_eq!(n.label.performance, None);
    }
    // Lower is better: A (lower) is better, B (higher) is worse.
    assert_eq!(dec.units[0].label.performance, Some(Performance::Better));
    assert_eq!(dec.units[1].label.performance, Some(Performance::Worse));
    assert_eq!(dec.units[2].label.performance, Some(Performance::Same));
    assert_eq!(
        dec.units[0].label.to_string(),
        "lower than expected, beyond the 99.8% limit: better"
    );
    assert_eq!(nei.units[1].label.to_string(), "higher than expected");
    assert_eq!(nei.units[2].label.to_string(), "as expected");

    // The mapping on its own.
    use Direction::{Decrease, Increase, Neither};
    use Performance::{Better, Same, Worse};
    use Position::{AsExpected, Higher, Lower};
    let cases = [
        (Increase, Higher, Some(Better)),
        (Increase, Lower, Some(Worse)),
        (Increase, AsExpected, Some(Same)),
        (Decrease, Higher, Some(Worse)),
        (Decrease, Lower, Some(Better)),
        (Decrease, AsExpected, Some(Same)),
        (Neither, Higher, None),
        (Neither, Lower, None),
        (Neither, AsExpected, None),
    ];
    for (dir, pos, want) in cases {
        assert_eq!(
            Performance::from_position(pos, dir),
            want,
            "{dir:?} {pos:?}"
        );
    }
    let label = FunnelLabel {
        position: Higher,
        beyond_998: true,
        performance: None,
    };
    assert_eq!(
        label.to_string(),
        "higher than expected, beyond the 99.8% limit"
    );
}

#[test]
fn limits_clamp_at_zero_and_one() {
    // p₀ = 0.05, N = 4: θ₀ = asin(sqrt(0.05)) = 0.2255134, s = 1/(2·2) = 0.25.
    //   lower 95: 0.2255134 − 1.959964·0.25 = −0.2644776 < 0 → clamped to 0 → 0
    //     (FunnelPlotR's sin² would fold back up to 0.068333)
    //   upper 95: 0.2255134 + 0.4899910 = 0.7155044 → sin² = 0.430334
    //   upper 99.8: 0.2255134 + 0.7725580 = 0.9980714 → sin² = 0.706318
    let l = funnel_limits(0.05, 0.0, 4.0);
    assert_eq!(l.lower_95, 0.0);
    assert_eq!(l.lower_998, 0.0);
    close("upper 95", l.upper_95, 0.430334, 1e-6);
    close("upper 99.8", l.upper_998, 0.706318, 1e-6);
    // p₀ = 0.98, N = 4: θ₀ = 1.4288993; + 0.4899910 > π/2 → 1.
    //   lower 95: 1.4288993 − 0.4899910 = 0.9389083 → sin² = 0.651110
    let h = funnel_limits(0.98, 0.0, 4.0);
    assert_eq!(h.upper_95, 1.0);
    assert_eq!(h.upper_998, 1.0);
    close("lower 95", h.lower_95, 0.651110, 1e-6);
    // N = 0: infinitely wide.
    let z = funnel_limits(0.3, 0.0, 0.0);
    assert_eq!((z.lower_998, z.upper_998), (0.0, 1.0));

    // A unit with no events under a clamped lower limit is as expected, not lower.
    let units = [
        FunnelUnit::new("small", 0.0, 4.0),
        FunnelUnit::new("big", 6.0, 60.0),
    ];
    let f = funnel(&units, Direction::Decrease).unwrap();
    assert_eq!(f.units[0].limits.lower_95, 0.0);
    assert_eq!(f.units[0].label.position, Position::AsExpected);
}

#[test]
fn all_zero_numerators_are_fine() {
    let units = [
        FunnelUnit::new("A", 0.0, 10.0),
        FunnelUnit::new("B", 0.0, 20.0),
        FunnelUnit::new("C", 0.0, 30.0),
    ];
    let f = funnel(&units, Direction::Decrease).unwrap();
    assert_eq!((f.target, f.phi, f.tau2), (0.0, 0.0, 0.0));
    assert!(!f.overdispersion_applied);
    for r in &f.units {
        assert_eq!(r.z, 0.0);
        assert_eq!(r.label.position, Position::AsExpected);
        assert_eq!(r.limits.lower_95, 0.0);
        assert!(r.limits.upper_95 > 0.0 && r.limits.upper_95 < 1.0);
    }
}

#[test]
fn curves_for_plotting() {
    let f = funnel(&seven(), Direction::Increase).unwrap();
    let c = f.curve(100.0, 400.0, 4).unwrap();
    let ns: Vec<f64> = c.iter().map(|p| p.n).collect();
    assert_eq!(ns, vec![100.0, 200.0, 300.0, 400.0]);
    // The curve passes through the units' own limits.
    assert_eq!(c[0].limits, f.units[0].limits);
    assert_eq!(c[0].unadjusted, f.units[0].unadjusted_limits);
    assert_eq!(c[1].limits, f.units[2].limits);
    assert_eq!(c[3].limits, f.units[3].limits);
    assert_eq!(f.limits_at(200.0), f.units[2].limits);
    assert_eq!(f.unadjusted_limits_at(400.0), f.units[3].unadjusted_limits);
    // Funnel shape: limits narrow as n grows; widened limits are outside the
    // unadjusted ones.
    for w in c.windows(2) {
        assert!(w[1].limits.lower_95 > w[0].limits.lower_95);
        assert!(w[1].limits.upper_95 < w[0].limits.upper_95);
        assert!(w[1].unadjusted.upper_998 < w[0].unadjusted.upper_998);
    }
    for p in &c {
        assert!(p.limits.lower_998 < p.limits.lower_95);
        assert!(p.limits.lower_95 < f.target && f.target < p.limits.upper_95);
        assert!(p.limits.upper_95 < p.limits.upper_998);
        assert!(p.limits.upper_95 > p.unadjusted.upper_95);
    }
    // The free function agrees.
    assert_eq!(funnel_curve(f.target, f.tau2, 100.0, 400.0, 4).unwrap(), c);

    assert_eq!(
        f.curve(0.0, 10.0, 5),
        Err(CurveError::InvalidRange {
            from: 0.0,
            to: 10.0
        })
    );
    assert_eq!(
        f.curve(10.0, 10.0, 5),
        Err(CurveError::InvalidRange {
            from: 10.0,
            to: 10.0
        })
    );
    assert!(matches!(
        f.curve(1.0, f64::INFINITY, 5),
        Err(CurveError::InvalidRange { .. })
    ));
    assert_eq!(
        f.curve(1.0, 10.0, 1),
        Err(CurveError::TooFewPoints { points: 1 })
    );
}

#[test]
fn input_errors() {
    let ok = FunnelUnit::new("ok", 1.0, 10.0);
    let run = |bad: FunnelUnit| funnel(&[ok.clone(), bad], Direction::Increase);

    assert_eq!(
        run(FunnelUnit::new("zero", 0.0, 0.0)),
        Err(FunnelError::NonPositiveDenominator {
            index: 1,
            id: "zero".into()
        })
    );
    assert_eq!(
        run(FunnelUnit::new("neg", 0.0, -5.0)),
        Err(FunnelError::NonPositiveDenominator {
            index: 1,
            id: "neg".into()
        })
    );
    assert_eq!(
        run(FunnelUnit::new("over", 11.0, 10.0)),
        Err(FunnelError::NumeratorExceedsDenominator {
            index: 1,
            id: "over".into()
        })
    );
    assert_eq!(
        run(FunnelUnit::new("minus", -1.0, 10.0)),
        Err(FunnelError::NegativeNumerator {
            index: 1,
            id: "minus".into()
        })
    );
    assert_eq!(
        run(FunnelUnit::new("nan", f64::NAN, 10.0)),
        Err(FunnelError::NonFinite {
            index: 1,
            id: "nan".into(),
            field: "numerator"
        })
    );
    assert_eq!(
        run(FunnelUnit::new("inf", 1.0, f64::INFINITY)),
        Err(FunnelError::NonFinite {
            index: 1,
            id: "inf".into(),
            field: "denominator"
        })
    );
    assert_eq!(
        funnel(std::slice::from_ref(&ok), Direction::Increase),
        Err(FunnelError::TooFewUnits { units: 1 })
    );
    assert_eq!(
        funnel(&[], Direction::Increase),
        Err(FunnelError::TooFewUnits { units: 0 })
    );
    // A numerator equal to its denominator is a proportion of 1, which is fine.
    assert!(run(FunnelUnit::new("all", 10.0, 10.0)).is_ok());
    // Messages.
    assert_eq!(
        run(FunnelUnit::new("over", 11.0, 10.0))
            .unwrap_err()
            .to_string(),
        "unit 1 (over): numerator exceeds denominator"
    );
    assert_eq!(
        FunnelError::TooFewUnits { units: 1 }.to_string(),
        "a funnel plot needs at least 2 units, got 1"
    );
}

#[test]
fn fixed_quantiles() {
    assert_eq!(Z_95, 1.959964);
    assert_eq!(Z_998, 3.090232);
}

#[test]
fn deterministic() {
    let a = funnel(&seven(), Direction::Increase).unwrap();
    let b = funnel(&seven(), Direction::Increase).unwrap();
    assert_eq!(a, b);
    // Input order does not change any unit's result.
    let mut rev = seven();
    rev.reverse();
    let r = funnel(&rev, Direction::Increase).unwrap();
    // (Sums may round differently in another order, hence the tolerance.)
    close("φ", r.phi, a.phi, 1e-12);
    close("τ²", r.tau2, a.tau2, 1e-15);
    for u in &a.units {
        let v = r.units.iter().find(|v| v.id == u.id).unwrap();
        assert_eq!(u.z, v.z);
        assert_eq!(u.label, v.label);
        close("z*", u.z_adjusted, v.z_adjusted, 1e-12);
    }
}
