//! Overload control's contract: how much file work a worker sheds right now ([`ShedLevel`]),
//! shared between the worker's load monitor and the file analyzers of its connections
//! ([`LoadSignal`]), and which files the submission policy wants ([`WantedFiles`]), so that shedding
//! never takes the hashes the threat-intel API, the store and the fleet key on.
//!
//! The order is fixed (README "Overload"): BLAKE3 first, then SHA-1, then every hash of files no
//! policy wants. Reassembly, parsing and sniffing are never shed, nor MD5 and SHA-256 of a file
//! the policy wants: every file keeps its record with size, type and name.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// How much hashing is shed, in the fixed order. Each level sheds what the ones below it do.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ShedLevel {
    /// Full work.
    #[default]
    None = 0,
    /// BLAKE3 is not computed.
    Blake3 = 1,
    /// Neither BLAKE3 nor SHA-1.
    Sha1 = 2,
    /// Also no hash at all of a file the policy does not want (decided by its sniffed type).
    Unwanted = 3,
}

impl ShedLevel {
    pub const MAX: ShedLevel = ShedLevel::Unwanted;

    pub fn from_u8(v: u8) -> ShedLevel {
        match v {
            0 => ShedLevel::None,
            1 => ShedLevel::Blake3,
            2 => ShedLevel::Sha1,
            _ => ShedLevel::Unwanted,
        }
    }

    /// The next level up (saturating).
    pub fn up(self) -> ShedLevel {
        ShedLevel::from_u8((self as u8).saturating_add(1))
    }

    pub fn name(self) -> &'static str {
        match self {
            ShedLevel::None => "none",
            ShedLevel::Blake3 => "blake3",
            ShedLevel::Sha1 => "sha1",
            ShedLevel::Unwanted => "unwanted",
        }
    }
}

/// The current [`ShedLevel`] of one worker. The worker's load monitor sets it; every file analyzer
/// of that worker reads it before hashing new bytes. All on the worker's thread: the atomic is
/// there because parsers must be `Send`, and a relaxed load costs what a plain one does.
#[derive(Clone, Default)]
pub struct LoadSignal(Arc<AtomicU8>);

impl LoadSignal {
    /// A signal of its own (each worker has one).
    pub fn new() -> Self {
        LoadSignal::default()
    }

    #[inline]
    pub fn get(&self) -> ShedLevel {
        ShedLevel::from_u8(self.0.load(Ordering::Relaxed))
    }

    pub fn set(&self, level: ShedLevel) {
        self.0.store(level as u8, Ordering::Relaxed);
    }
}

impl fmt::Debug for LoadSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoadSignal({:?})", self.get())
    }
}

/// What a policy looks at to decide whether it wants a file: the sniffed type, the declared type
/// and the filename (size bounds are left out: the size is known only at the end).
pub trait FileInterest: Send + Sync {
    fn wants(&self, mime_type: Option<&str>, declared_mime_type: Option<&str>, filename: Option<&str>) -> bool;
}

/// The submission policy's type test, as the workers see it. Without one (a bare `-r` in tests,
/// benchmarks) every file counts as wanted, so shedding stops at SHA-1.
#[derive(Clone, Default)]
pub struct WantedFiles(Option<Arc<dyn FileInterest>>);

impl WantedFiles {
    /// Every file is wanted.
    pub const ALL: WantedFiles = WantedFiles(None);

    pub fn new(interest: Arc<dyn FileInterest>) -> Self {
        WantedFiles(Some(interest))
    }

    pub fn wants(&self, mime_type: Option<&str>, declared_mime_type: Option<&str>, filename: Option<&str>) -> bool {
        self.0
            .as_ref()
            .is_none_or(|i| i.wants(mime_type, declared_mime_type, filename))
    }
}

impl fmt::Debug for WantedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "WantedFiles(policy)"
        } else {
            "WantedFiles(all)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_climb_in_order_and_saturate() {
        assert_eq!(ShedLevel::None.up(), ShedLevel::Blake3);
        assert_eq!(ShedLevel::Blake3.up(), ShedLevel::Sha1);
        assert_eq!(ShedLevel::Sha1.up(), ShedLevel::Unwanted);
        assert_eq!(ShedLevel::Unwanted.up(), ShedLevel::Unwanted);
        assert!(ShedLevel::Blake3 < ShedLevel::Unwanted);
    }

    #[test]
    fn a_signal_is_shared_by_its_clones_only() {
        let a = LoadSignal::new();
        let b = a.clone();
        let other = LoadSignal::new();
        a.set(ShedLevel::Sha1);
        assert_eq!(b.get(), ShedLevel::Sha1);
        assert_eq!(other.get(), ShedLevel::None);
    }

    struct PdfOnly;
    impl FileInterest for PdfOnly {
        fn wants(&self, mime: Option<&str>, _: Option<&str>, _: Option<&str>) -> bool {
            mime == Some("application/pdf")
        }
    }

    #[test]
    fn without_a_policy_every_file_is_wanted() {
        assert!(WantedFiles::ALL.wants(None, None, None));
        let pdf = WantedFiles::new(Arc::new(PdfOnly));
        assert!(pdf.wants(Some("application/pdf"), None, None));
        assert!(!pdf.wants(Some("text/plain"), None, None));
    }
}
