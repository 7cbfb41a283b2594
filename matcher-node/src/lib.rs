//! The Secret Santa matcher's pure core: who may give to whom, a random valid assignment
//! (or a reason naming who cannot be placed), splicing a late addition into a committed
//! assignment, and the sealed box each participant reads. No I/O and no clocks: the node
//! feeds these functions its replicated state and a seeded random generator.

pub mod assign;
pub mod constraints;
pub mod node;
pub mod seal;
pub mod sm;
pub mod splice;

pub use assign::{assign, Assignment, Infeasible};
pub use constraints::{compatible, Budget, Invalid, Participant, Registration};
pub use splice::{splice, Splice, SpliceError};
