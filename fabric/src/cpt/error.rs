//! What can go wrong when describing a machine, cutting it into partitions
//! or starting service threads; each maps to the errno a caller reports.

use crate::Errno;

/// A failure of the CPT layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CptError {
    /// A topology (detected or written for a test) that cannot be used.
    #[error("bad topology: {0}")]
    Topology(String),
    /// hwloc could not read this machine's topology.
    #[error("cannot read the machine topology: {0}")]
    Detect(String),
    /// `cpu_npartitions` asks for something the machine cannot give.
    #[error("cannot make {requested} CPU partitions: {reason}")]
    Count { requested: usize, reason: String },
    /// `cpu_pattern` did not parse or names cores the machine lacks.
    #[error("bad cpu_pattern `{pattern}`: {error}")]
    Pattern { pattern: String, error: PatternError },
    /// A service pool configuration that cannot run.
    #[error("bad service pool configuration: {0}")]
    PoolConfig(String),
    /// A service thread could not be started.
    #[error("cannot start service thread {name}: {reason}")]
    ThreadStart { name: String, reason: String },
}

impl CptError {
    pub fn errno(&self) -> Errno {
        match self {
            CptError::Topology(_) | CptError::Count { .. } | CptError::PoolConfig(_) => Errno::EINVAL,
            CptError::Detect(_) => Errno::ENODEV,
            CptError::Pattern { error, .. } => error.errno(),
            CptError::ThreadStart { .. } => Errno::EAGAIN,
        }
    }
}

impl From<CptError> for Errno {
    fn from(e: CptError) -> Errno {
        e.errno()
    }
}

/// Why a `cpu_pattern` was refused. Patterns look like `0[0-3] 1[4-7]`
/// (partition 0 has cpus 0 to 3, ...), `N 0[0] 1[1]` (partitions by NUMA
/// node ids) or `N` (one partition per NUMA node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("no partitions (write `N`, or partitions such as `0[0-3] 1[4-7]`)")]
    Empty,
    #[error("expected a partition number at `{0}`")]
    ExpectedPartition(String),
    #[error("partition {cpt} is out of range: the pattern has {count} partitions")]
    PartitionOutOfRange { cpt: usize, count: usize },
    #[error("partition {0} is given twice")]
    DuplicatePartition(usize),
    #[error("expected `[` after partition {cpt}, found `{found}`")]
    ExpectedBracket { cpt: usize, found: String },
    #[error("missing `]` for partition {0}")]
    MissingBracket(usize),
    #[error("bad range `{range}` in partition {cpt}: {reason}")]
    BadRange { cpt: usize, range: String, reason: &'static str },
    #[error("{kind} {id} in partition {cpt} does not exist on this machine")]
    NoSuch { cpt: usize, kind: &'static str, id: usize },
    #[error("{kind} {id} is in partitions {first} and {second}")]
    Twice { kind: &'static str, id: usize, first: usize, second: usize },
    #[error("partition {0} has no cpus")]
    NoCpus(usize),
    #[error("{count} partitions but only {available} {kind}")]
    TooMany { count: usize, available: usize, kind: &'static str },
}

impl PatternError {
    /// Lustre answers a pattern naming absent hardware with ENODEV and a
    /// malformed one with EINVAL; so do we.
    pub fn errno(&self) -> Errno {
        match self {
            PatternError::NoSuch { .. } | PatternError::NoCpus(_) => Errno::ENODEV,
            PatternError::BadRange { .. } => Errno::ERANGE,
            _ => Errno::EINVAL,
        }
    }
}
