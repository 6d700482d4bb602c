//! Identifiers as types of their own, so that a run's id cannot be passed where a lease's is meant.
//! Each is text on the wire and in the database (`serde(transparent)`); the server mints them.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id!(
    /// A run.
    RunId
);
id!(
    /// A task within its run: the step's name, with `[i]` per loop level for a loop's iterations.
    TaskId
);
id!(
    /// A worker, as the server registered it.
    WorkerId
);
id!(
    /// One lease of one attempt of a task; every report about the attempt carries it.
    LeaseId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_plain_text_on_the_wire() {
        let id = LeaseId::new("l-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"l-1\"");
        let back: LeaseId = serde_json::from_str("\"l-1\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(format!("[{id:>5}]"), "[  l-1]");
    }
}
