//! Injected faults: what can go wrong between hqx and an exchange, on
//! demand and reproducibly.
//!
//! Why seeded: a fault campaign that fails must replay. Every API request
//! takes exactly the same number of draws from one seeded generator (one
//! per fault kind, in a fixed order, plus one to pick a variant), so the
//! same seed and the same request sequence give the same faults.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long a stall hangs when [`FaultSpec::stall_for`] is zero (unset).
pub const DEFAULT_STALL_FOR: Duration = Duration::from_secs(30);

/// Which faults the sandbox injects, as shares of API requests.
///
/// Written as `latency=5ms,error5xx=0.1,drop=0.1,reset=0.05,limit429=0.05,stall=0.02,stall_for=3s`
/// (see the [`FromStr`] impl). Shares are checked in the order
/// `reset`, `error5xx`, `limit429`, `stall`, `drop`: the first that hits
/// decides the request's fault, so shares need not add up to 1 or less.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    /// Delay added to every API request.
    pub latency: Duration,
    /// Share answered 500, 502 or 503 without doing anything.
    pub error5xx: f64,
    /// Share of successful placements and cancels that are committed (the order
    /// exists, funds move) but answered 500 or with the connection closed.
    pub drop: f64,
    /// Share where the connection is closed before anything is done.
    pub reset: f64,
    /// Share answered 429 with `Retry-After: 1` without doing anything.
    pub limit429: f64,
    /// Share that hang for `stall_for`, then answer 504; a placement or cancel is
    /// committed before the hang or not at all (half each).
    pub stall: f64,
    /// How long a stall hangs; zero means [`DEFAULT_STALL_FOR`].
    pub stall_for: Duration,
}

impl FaultSpec {
    /// Whether any fault or latency is configured.
    pub fn is_none(&self) -> bool {
        *self == FaultSpec::default()
    }

    /// The stall duration in force.
    pub fn effective_stall_for(&self) -> Duration {
        if self.stall_for.is_zero() {
            DEFAULT_STALL_FOR
        } else {
            self.stall_for
        }
    }
}

const KEYS: &str = "latency, error5xx, drop, reset, limit429, stall, stall_for";

impl FromStr for FaultSpec {
    type Err = String;

    /// Parse `key=value,...`. Durations take `ms` or `s` (`5ms`, `1.5s`);
    /// shares are numbers from 0 to 1. `""` and `none` mean no faults.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut spec = FaultSpec::default();
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(spec);
        }
        let mut seen: Vec<&str> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "`{item}` is not key=value: write e.g. `drop=0.1` or `latency=5ms` (keys: {KEYS})"
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            if seen.contains(&key) {
                return Err(format!("`{key}` is given twice"));
            }
            match key {
                "latency" => spec.latency = duration(key, value)?,
                "stall_for" => {
                    spec.stall_for = duration(key, value)?;
                    if spec.stall_for.is_zero() {
                        return Err("`stall_for` must be greater than zero, like `3s`".into());
                    }
                }
                "error5xx" => spec.error5xx = share(key, value)?,
                "drop" => spec.drop = share(key, value)?,
                "reset" => spec.reset = share(key, value)?,
                "limit429" => spec.limit429 = share(key, value)?,
                "stall" => spec.stall = share(key, value)?,
                other => {
                    return Err(format!("unknown fault `{other}`: the keys are {KEYS}"));
                }
            }
            seen.push(key);
        }
        Ok(spec)
    }
}

fn share(key: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{key}={value}`: a share must be a number from 0 to 1, like `{key}=0.1`"
        )),
    }
}

fn duration(key: &str, value: &str) -> Result<Duration, String> {
    let bad = || {
        format!("`{key}={value}`: a duration is a number with `ms` or `s`, like `{key}=5ms` or `{key}=3s`")
    };
    let (number, unit_secs) = if let Some(n) = value.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0)
    } else if value == "0" {
        ("0", 1.0)
    } else {
        return Err(bad());
    };
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    let secs = n * unit_secs;
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("`{key}={value}`: must be from 0 to 1 day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl fmt::Display for FaultSpec {
    /// The canonical text form, parseable again; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        if !self.latency.is_zero() {
            parts.push(format!("latency={}", fmt_duration(self.latency)));
        }
        for (k, v) in [
            ("error5xx", self.error5xx),
            ("drop", self.drop),
            ("reset", self.reset),
            ("limit429", self.limit429),
            ("stall", self.stall),
        ] {
            if v > 0.0 {
                parts.push(format!("{k}={v}"));
            }
        }
        if !self.stall_for.is_zero() {
            parts.push(format!("stall_for={}", fmt_duration(self.stall_for)));
        }
        f.write_str(&parts.join(","))
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ms", d.as_secs_f64() * 1000.0)
    }
}

/// The fault decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// Behave normally.
    None,
    /// Close the connection before doing anything.
    Reset,
    /// Answer this 5xx status without doing anything.
    Error5xx(u16),
    /// Answer 429 with `Retry-After: 1` without doing anything.
    Limit429,
    /// Hang, then answer 504; a placement or cancel is first committed if `commit`.
    Stall { commit: bool, hang: Duration },
    /// For a successful placement or cancel: commit it, then answer 500 (or close
    /// the connection if `close`). Other requests behave normally.
    Drop { close: bool },
}

/// The fault spec in force and its seeded generator.
pub(super) struct FaultState {
    spec: FaultSpec,
    rng: StdRng,
}

impl FaultState {
    /// A generator seeded with `seed` for `spec`.
    pub(super) fn new(spec: FaultSpec, seed: u64) -> FaultState {
        FaultState {
            spec,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Decide one request's latency and fault. Always takes the same
    /// number of draws, whatever the spec, so sequences replay.
    pub(super) fn draw(&mut self) -> (Duration, Fault) {
        let rng = &mut self.rng;
        let reset = rng.gen::<f64>();
        let error5xx = rng.gen::<f64>();
        let limit429 = rng.gen::<f64>();
        let stall = rng.gen::<f64>();
        let drop = rng.gen::<f64>();
        let variant = rng.gen::<u32>();
        let s = &self.spec;
        let fault = if reset < s.reset {
            Fault::Reset
        } else if error5xx < s.error5xx {
            Fault::Error5xx([500, 502, 503][(variant % 3) as usize])
        } else if limit429 < s.limit429 {
            Fault::Limit429
        } else if stall < s.stall {
            Fault::Stall {
                commit: variant % 2 == 0,
                hang: s.effective_stall_for(),
            }
        } else if drop < s.drop {
            Fault::Drop {
                close: variant % 2 == 0,
            }
        } else {
            Fault::None
        };
        (s.latency, fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_full_example() {
        let f: FaultSpec =
            "latency=5ms,error5xx=0.1,drop=0.1,reset=0.05,limit429=0.05,stall=0.02,stall_for=3s"
                .parse()
                .unwrap();
        assert_eq!(
            f,
            FaultSpec {
                latency: Duration::from_millis(5),
                error5xx: 0.1,
                drop: 0.1,
                reset: 0.05,
                limit429: 0.05,
                stall: 0.02,
                stall_for: Duration::from_secs(3),
            }
        );
        assert_eq!(f.to_string().parse::<FaultSpec>().unwrap(), f);
    }

    #[test]
    fn empty_and_none_are_the_default() {
        for s in ["", "  ", "none", "NONE"] {
            assert_eq!(
                s.parse::<FaultSpec>().unwrap(),
                FaultSpec::default(),
                "{s:?}"
            );
        }
        assert_eq!(FaultSpec::default().to_string(), "none");
        assert_eq!(
            FaultSpec::default().effective_stall_for(),
            DEFAULT_STALL_FOR
        );
    }

    #[test]
    fn durations_and_shares() {
        let f: FaultSpec = " latency = 1.5s , stall=1 ,stall_for=250ms, "
            .parse()
            .unwrap();
        assert_eq!(f.latency, Duration::from_millis(1500));
        assert_eq!(f.stall, 1.0);
        assert_eq!(f.stall_for, Duration::from_millis(250));
        assert_eq!(
            "latency=0".parse::<FaultSpec>().unwrap().latency,
            Duration::ZERO
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases = [
            ("bogus=1", "unknown fault `bogus`"),
            ("drop", "not key=value"),
            ("drop=1.5", "from 0 to 1"),
            ("drop=-0.1", "from 0 to 1"),
            ("drop=NaN", "from 0 to 1"),
            ("drop=abc", "from 0 to 1"),
            ("latency=5", "`ms` or `s`"),
            ("latency=5m", "`ms` or `s`"),
            ("latency=-5ms", "from 0 to 1 day"),
            ("stall_for=0s", "greater than zero"),
            ("drop=0.1,drop=0.2", "given twice"),
        ];
        for (text, needle) in cases {
            let e = text.parse::<FaultSpec>().unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn draws_replay_and_shares_of_one_always_hit() {
        let spec: FaultSpec = "drop=0.5,error5xx=0.2".parse().unwrap();
        let run = |seed| {
            let mut s = FaultState::new(spec.clone(), seed);
            (0..50).map(|_| s.draw().1).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let mut s = FaultState::new("reset=1,error5xx=1".parse().unwrap(), 0);
        assert!((0..20).all(|_| s.draw().1 == Fault::Reset));
        let mut s = FaultState::new(FaultSpec::default(), 0);
        assert!((0..20).all(|_| s.draw() == (Duration::ZERO, Fault::None)));
    }
}
