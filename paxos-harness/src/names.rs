//! How the harness's choices are spelled on the command line and in reports: each choice enum
//! (storage, transport, learner strategy, protocol break) gets its names, parsing and printing
//! from one table, the `named!` macro.

/// A name that is none of a choice's names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}; one of: {}", .known.join(", "))]
pub struct UnknownKind {
    /// What was being named (`storage`, `transport`...).
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The names that exist.
    pub known: Vec<&'static str>,
}

/// Names, parsing and printing of a kind enum: one table per enum.
macro_rules! named {
    ($ty:ident, $what:literal, $($variant:ident => $name:literal),+) => {
        impl $ty {
            /// Every kind, in the order the command line lists them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The name on the command line and in reports.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::names::UnknownKind;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| $crate::names::UnknownKind {
                    what: $what,
                    given: s.to_owned(),
                    known: Self::ALL.iter().map(|k| k.name()).collect(),
                })
            }
        }
    };
}
