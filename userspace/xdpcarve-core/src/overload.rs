//! Overload control: a worker that falls behind its packets sheds file work, never packets.
//!
//! The driver reports the worker's backlog (live: frames waiting in its AF_XDP rx ring; `-r`
//! with a simulated link rate: frames that would be waiting) as often as it likes, with its clock.
//! Above `high_water` (a fraction of the ring) the level climbs one step per `step` of time spent
//! above it (BLAKE3, then SHA-1, then every hash of files no policy wants: see
//! [`xdpcarve_contract::load`]); at or below `low_water` the worker returns to full work. The
//! gap between the two marks keeps it from flapping. Files shed what the level says for the
//! bytes still to come; their records say what was shed.

use std::time::Duration;

use xdpcarve_contract::{LoadSignal, ShedLevel};

/// Where shedding starts and stops.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct OverloadConfig {
    /// Backlog (fraction of the ring) at or above which shedding climbs a level per `step`.
    pub high_water: f64,
    /// Backlog at or below which the worker returns to full work.
    pub low_water: f64,
    /// Time above the high-water mark between two levels.
    pub step: Duration,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            high_water: 0.5,
            low_water: 0.125,
            step: Duration::from_millis(20),
        }
    }
}

impl OverloadConfig {
    /// A message naming what is wrong, for the flags and keys that set these.
    pub fn validate(&self) -> Result<(), String> {
        let ok = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !ok(self.high_water) || !ok(self.low_water) || self.low_water >= self.high_water {
            return Err(format!(
                "overload marks must satisfy 0 <= low water ({}) < high water ({}) <= 1",
                self.low_water, self.high_water
            ));
        }
        Ok(())
    }
}

xdpcarve_contract::counters! {
    /// What overload control did (area `overload`).
    pub struct OverloadStats {
        /// Times the worker started shedding (from full work).
        episodes,
        /// Steps up a level.
        escalations,
        /// Nanoseconds spent shedding (any level).
        shed_ns,
        /// Nanoseconds spent at the last level (no hash of files no policy wants).
        shed_unwanted_ns,
    }
}

/// One worker's load monitor. Sans-IO: the driver passes its clock and backlog in.
#[derive(Debug)]
pub struct LoadMonitor {
    cfg: OverloadConfig,
    signal: LoadSignal,
    level: ShedLevel,
    /// When the level last changed, or the backlog first stood above the high-water mark.
    since_ns: Option<u64>,
    last_ns: u64,
    stats: OverloadStats,
}

impl LoadMonitor {
    pub fn new(cfg: OverloadConfig, signal: LoadSignal) -> Self {
        LoadMonitor {
            cfg,
            signal,
            level: ShedLevel::None,
            since_ns: None,
            last_ns: 0,
            stats: OverloadStats::default(),
        }
    }

    pub fn level(&self) -> ShedLevel {
        self.level
    }

    pub fn stats(&self) -> &OverloadStats {
        &self.stats
    }

    /// The backlog at `now_ns` (any monotonic nanosecond clock): `waiting` of `capacity` frames.
    /// Returns the level now in force.
    pub fn observe(&mut self, now_ns: u64, waiting: u64, capacity: u64) -> ShedLevel {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        if self.level > ShedLevel::None && self.last_ns > 0 {
            self.stats.shed_ns += elapsed;
            if self.level == ShedLevel::Unwanted {
                self.stats.shed_unwanted_ns += elapsed;
            }
        }
        self.last_ns = now_ns;
        let fill = if capacity == 0 {
            0.0
        } else {
            waiting as f64 / capacity as f64
        };
        let step = u64::try_from(self.cfg.step.as_nanos()).unwrap_or(u64::MAX);
        if fill >= self.cfg.high_water {
            match self.since_ns {
                // The first sample above the mark starts the first level at once: the ring is
                // already half full, waiting a step would only fill it further.
                None if self.level == ShedLevel::None => self.set(ShedLevel::Blake3, now_ns),
                None => self.since_ns = Some(now_ns),
                Some(t) if now_ns.saturating_sub(t) >= step && self.level < ShedLevel::MAX => {
                    self.set(self.level.up(), now_ns)
                }
                Some(_) => {}
            }
        } else if fill <= self.cfg.low_water && self.level > ShedLevel::None {
            self.set(ShedLevel::None, now_ns);
        } else if self.level > ShedLevel::None {
            // Between the marks: hold the level, and restart the climb's clock.
            self.since_ns = None;
        }
        self.level
    }

    fn set(&mut self, level: ShedLevel, now_ns: u64) {
        if self.level == ShedLevel::None && level > ShedLevel::None {
            self.stats.episodes += 1;
        }
        if level > self.level {
            self.stats.escalations += 1;
        }
        self.level = level;
        self.since_ns = (level > ShedLevel::None).then_some(now_ns);
        self.signal.set(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn monitor() -> (LoadMonitor, LoadSignal) {
        let signal = LoadSignal::new();
        (LoadMonitor::new(OverloadConfig::default(), signal.clone()), signal)
    }

    #[test]
    fn climbs_a_level_per_step_above_the_high_water_mark_and_returns_below_the_low_one() {
        let (mut m, signal) = monitor();
        assert_eq!(m.observe(MS, 10, 100), ShedLevel::None);
        assert_eq!(m.observe(2 * MS, 60, 100), ShedLevel::Blake3, "first level at once");
        assert_eq!(signal.get(), ShedLevel::Blake3);
        assert_eq!(m.observe(10 * MS, 70, 100), ShedLevel::Blake3, "not a step yet");
        assert_eq!(m.observe(22 * MS, 70, 100), ShedLevel::Sha1);
        assert_eq!(m.observe(42 * MS, 90, 100), ShedLevel::Unwanted);
        assert_eq!(m.observe(90 * MS, 99, 100), ShedLevel::Unwanted, "saturates");
        assert_eq!(
            m.observe(100 * MS, 30, 100),
            ShedLevel::Unwanted,
            "held between the marks"
        );
        assert_eq!(m.observe(110 * MS, 12, 100), ShedLevel::None);
        assert_eq!(signal.get(), ShedLevel::None);
        let s = m.stats();
        assert_eq!((s.episodes, s.escalations), (1, 3));
        assert_eq!(s.shed_ns, 108 * MS);
        assert_eq!(s.shed_unwanted_ns, 68 * MS);
    }

    #[test]
    fn a_dip_between_the_marks_restarts_the_climb() {
        let (mut m, _) = monitor();
        m.observe(MS, 50, 100);
        m.observe(15 * MS, 40, 100);
        assert_eq!(
            m.observe(25 * MS, 60, 100),
            ShedLevel::Blake3,
            "the step counts from here"
        );
        assert_eq!(m.observe(44 * MS, 60, 100), ShedLevel::Blake3);
        assert_eq!(m.observe(45 * MS, 60, 100), ShedLevel::Sha1);
    }

    #[test]
    fn an_empty_ring_never_sheds_and_bad_marks_are_refused() {
        let (mut m, _) = monitor();
        assert_eq!(m.observe(MS, 0, 0), ShedLevel::None);
        assert!(OverloadConfig::default().validate().is_ok());
        let bad = OverloadConfig {
            low_water: 0.6,
            ..OverloadConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("low water"));
    }
}
