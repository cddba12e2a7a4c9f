//! Lifecycle statuses of build runs, deployments and pipeline runs, approval decisions,
//! and the classification of build failures.
//!
//! Every enum here is stored and sent as its lowercase snake_case name (`as_str`), parses
//! back with `FromStr` (the error lists the allowed values), and knows which transitions
//! are legal (`can_transition_to`). The engine checks transitions before writing them, so
//! a status never moves backwards by accident.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A status or decision string that is not one of the allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{found}`; expected one of: {}", .allowed.join(", "))]
pub struct UnknownVariant {
    /// What was being parsed, e.g. "build run status".
    pub kind: &'static str,
    /// The rejected input.
    pub found: String,
    /// The accepted values.
    pub allowed: &'static [&'static str],
}

/// Implements `as_str`, `ALL`, `Display` and `FromStr` for a fieldless enum from one table,
/// so the names cannot drift apart.
macro_rules! named_enum {
    ($ty:ident, $kind:literal, $names:ident, { $($variant:ident => $name:literal),+ $(,)? }) => {
        /// Wire names of every variant, in declaration order.
        const $names: &[&str] = &[$($name),+];

        impl $ty {
            #[doc = concat!("Every ", $kind, ", in declaration order.")]
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The lowercase snake_case name used in the database, the API and the UI.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(UnknownVariant {
                        kind: $kind,
                        found: s.to_owned(),
                        allowed: $names,
                    }),
                }
            }
        }
    };
}

/// Status of one execution of a build spec.
///
/// ```text
/// pending ──► building ──► completed | failed | cancelled
///    │  ▲         │
///    │  └─────────┘  (lease expired: requeue)
///    └──► failed | cancelled
/// ```
///
/// `building → pending` is allowed **only** for requeueing a run whose runner lost its
/// lease (the process died or stalled); nothing else may move a run backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildRunStatus {
    /// Queued, waiting for a runner to claim it.
    Pending,
    /// Claimed by a runner, which holds a lease and is building.
    Building,
    /// Every requested service was built and pushed.
    Completed,
    /// The build failed (see the run's error class and message).
    Failed,
    /// Cancelled by a user before it finished.
    Cancelled,
}

named_enum!(BuildRunStatus, "build run status", BUILD_RUN_STATUS_NAMES, {
    Pending => "pending",
    Building => "building",
    Completed => "completed",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl BuildRunStatus {
    /// Whether the run has finished and can never change again.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// Whether the run may move from `self` to `next`.
    ///
    /// `Building → Pending` is the lease-expiry requeue and must not be used otherwise.
    pub const fn can_transition_to(self, next: Self) -> bool {
        use BuildRunStatus::*;
        matches!(
            (self, next),
            (Pending, Building | Failed | Cancelled)
                | (Building, Completed | Failed | Cancelled)
                | (Building, Pending)
        )
    }
}

/// Status of a deployment of a release to an environment.
///
/// ```text
/// pending ──► awaiting_approval ──► deploying ──► succeeded | failed | cancelled
///    │              │
///    │              └──► rejected | cancelled | superseded | failed
///    └──► deploying | cancelled | superseded | failed
/// ```
///
/// `superseded` means the deployment never ran because a newer deployment to the same
/// environment was requested while it was still waiting; a deployment that went live and
/// was later replaced stays `succeeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Recorded, not yet started or gated.
    Pending,
    /// Waiting for the environment's approval gate (and wait timer).
    AwaitingApproval,
    /// Being applied to the target.
    Deploying,
    /// Applied and healthy.
    Succeeded,
    /// Could not be applied.
    Failed,
    /// An approver rejected it.
    Rejected,
    /// Cancelled by a user.
    Cancelled,
    /// Replaced by a newer deployment before it ran.
    Superseded,
}

named_enum!(DeploymentStatus, "deployment status", DEPLOYMENT_STATUS_NAMES, {
    Pending => "pending",
    AwaitingApproval => "awaiting_approval",
    Deploying => "deploying",
    Succeeded => "succeeded",
    Failed => "failed",
    Rejected => "rejected",
    Cancelled => "cancelled",
    Superseded => "superseded",
});

impl DeploymentStatus {
    /// Whether the deployment has finished and can never change again.
    pub const fn is_terminal(self) -> bool {
        !matches!(
            self,
            Self::Pending | Self::AwaitingApproval | Self::Deploying
        )
    }

    /// Whether the deployment may move from `self` to `next`.
    pub const fn can_transition_to(self, next: Self) -> bool {
        use DeploymentStatus::*;
        matches!(
            (self, next),
            (
                Pending,
                AwaitingApproval | Deploying | Failed | Cancelled | Superseded
            ) | (
                AwaitingApproval,
                Deploying | Rejected | Failed | Cancelled | Superseded
            ) | (Deploying, Succeeded | Failed | Cancelled)
        )
    }
}

/// Status of one run of a manifest-defined pipeline.
///
/// `pending → running → succeeded | failed | cancelled`; a pending run may also fail or be
/// cancelled before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineRunStatus {
    /// Recorded, no step started yet.
    Pending,
    /// At least one step has started.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

named_enum!(PipelineRunStatus, "pipeline run status", PIPELINE_RUN_STATUS_NAMES, {
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl PipelineRunStatus {
    /// Whether the run has finished and can never change again.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Whether the run may move from `self` to `next`.
    pub const fn can_transition_to(self, next: Self) -> bool {
        use PipelineRunStatus::*;
        matches!(
            (self, next),
            (Pending, Running | Failed | Cancelled) | (Running, Succeeded | Failed | Cancelled)
        )
    }
}

/// An approver's decision on a deployment waiting at an approval gate.
///
/// Decisions are final: every decision is terminal and none can change into another
/// (a new decision is a new approval record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    /// The approver allows the deployment.
    Approved,
    /// The approver blocks the deployment.
    Rejected,
}

named_enum!(ApprovalDecision, "approval decision", APPROVAL_DECISION_NAMES, {
    Approved => "approved",
    Rejected => "rejected",
});

impl ApprovalDecision {
    /// Always `true`: a recorded decision never changes.
    pub const fn is_terminal(self) -> bool {
        true
    }

    /// Always `false`: a recorded decision never changes.
    pub const fn can_transition_to(self, _next: Self) -> bool {
        false
    }
}

/// Classification of a failed build, with a cause and a fix to show the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Registry or git authentication failed.
    AuthError,
    /// The repository could not be cloned or the commit checked out.
    CloneError,
    /// A Dockerfile step failed.
    BuildError,
    /// The build ran out of time.
    TimeoutError,
    /// Disk, memory or another resource ran out.
    ResourceError,
    /// Pushing to the registry failed.
    RegistryError,
    /// Nothing matched; read the log.
    Unknown,
}

named_enum!(ErrorClass, "error class", ERROR_CLASS_NAMES, {
    AuthError => "auth_error",
    CloneError => "clone_error",
    BuildError => "build_error",
    TimeoutError => "timeout_error",
    ResourceError => "resource_error",
    RegistryError => "registry_error",
    Unknown => "unknown",
});

impl ErrorClass {
    /// One-line cause, for the diagnosis view.
    pub const fn cause(self) -> &'static str {
        match self {
            Self::AuthError => "registry or git authentication failed",
            Self::CloneError => "the repository could not be cloned or the commit checked out",
            Self::BuildError => "a Dockerfile step failed",
            Self::TimeoutError => "the build took longer than its time limit",
            Self::ResourceError => "the builder ran out of disk, memory or another resource",
            Self::RegistryError => "the image could not be pushed to the registry",
            Self::Unknown => "the failure did not match a known pattern",
        }
    }

    /// One-line suggested fix, for the diagnosis view.
    pub const fn hint(self) -> &'static str {
        match self {
            Self::AuthError => "check the registry and git credentials stored as project secrets",
            Self::CloneError => {
                "check the repository URL, its access token and that the commit exists"
            }
            Self::BuildError => "read the build log at the failing Dockerfile stage",
            Self::TimeoutError => {
                "raise the build timeout or make the build faster (cache, smaller context)"
            }
            Self::ResourceError => "free disk space on the builder or raise its memory limit",
            Self::RegistryError => "check the registry host, namespace and push credentials",
            Self::Unknown => "read the last lines of the build log",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the shared contract of a named enum: names are unique, round-trip through
    /// `FromStr`, `Display` and serde, and look like lowercase snake_case.
    fn check_names<T>(all: &[T], as_str: fn(&T) -> &'static str)
    where
        T: FromStr<Err = UnknownVariant> + fmt::Display + Serialize + PartialEq + fmt::Debug,
        T: for<'de> Deserialize<'de>,
    {
        let mut seen = std::collections::BTreeSet::new();
        for v in all {
            let name = as_str(v);
            assert!(seen.insert(name), "duplicate name {name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert_eq!(name.parse::<T>().as_ref(), Ok(v));
            assert_eq!(v.to_string(), name);
            let json = serde_json::to_string(v).expect("serialises");
            assert_eq!(json, format!("\"{name}\""));
            let back: T = serde_json::from_str(&json).expect("deserialises");
            assert_eq!(&back, v);
        }
    }

    #[test]
    fn every_enum_round_trips_through_its_names() {
        check_names(BuildRunStatus::ALL, |v| v.as_str());
        check_names(DeploymentStatus::ALL, |v| v.as_str());
        check_names(PipelineRunStatus::ALL, |v| v.as_str());
        check_names(ApprovalDecision::ALL, |v| v.as_str());
        check_names(ErrorClass::ALL, |v| v.as_str());
        // That the database's CHECK lists hold exactly these names is checked
        // against the real schema in engine/tests/store_projects.rs.
    }

    #[test]
    fn multi_word_names_are_snake_case() {
        assert_eq!(
            DeploymentStatus::AwaitingApproval.as_str(),
            "awaiting_approval"
        );
        assert_eq!(ErrorClass::AuthError.as_str(), "auth_error");
        assert_eq!(ErrorClass::RegistryError.to_string(), "registry_error");
    }

    #[test]
    fn unknown_values_are_rejected_with_the_allowed_list() {
        let err = "done".parse::<BuildRunStatus>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown build run status `done`; expected one of: pending, building, completed, failed, cancelled"
        );
        assert!("Pending".parse::<BuildRunStatus>().is_err());
        assert!("awaiting-approval".parse::<DeploymentStatus>().is_err());
        assert!(serde_json::from_str::<ErrorClass>("\"AuthError\"").is_err());
    }

    #[test]
    fn build_runs_follow_their_lifecycle() {
        use BuildRunStatus::*;
        assert!(Pending.can_transition_to(Building));
        assert!(Pending.can_transition_to(Cancelled));
        assert!(Pending.can_transition_to(Failed));
        assert!(!Pending.can_transition_to(Completed));
        assert!(Building.can_transition_to(Completed));
        assert!(Building.can_transition_to(Failed));
        assert!(Building.can_transition_to(Cancelled));
        assert!(Building.can_transition_to(Pending), "lease-expiry requeue");
    }

    #[test]
    fn terminal_statuses_never_change() {
        for s in BuildRunStatus::ALL.iter().filter(|s| s.is_terminal()) {
            assert!(
                BuildRunStatus::ALL.iter().all(|n| !s.can_transition_to(*n)),
                "{s}"
            );
        }
        for s in DeploymentStatus::ALL.iter().filter(|s| s.is_terminal()) {
            assert!(
                DeploymentStatus::ALL
                    .iter()
                    .all(|n| !s.can_transition_to(*n)),
                "{s}"
            );
        }
        for s in PipelineRunStatus::ALL.iter().filter(|s| s.is_terminal()) {
            assert!(
                PipelineRunStatus::ALL
                    .iter()
                    .all(|n| !s.can_transition_to(*n)),
                "{s}"
            );
        }
        for d in ApprovalDecision::ALL {
            assert!(d.is_terminal());
            assert!(ApprovalDecision::ALL
                .iter()
                .all(|n| !d.can_transition_to(*n)));
        }
    }

    #[test]
    fn no_status_transitions_to_itself() {
        assert!(BuildRunStatus::ALL.iter().all(|s| !s.can_transition_to(*s)));
        assert!(DeploymentStatus::ALL
            .iter()
            .all(|s| !s.can_transition_to(*s)));
        assert!(PipelineRunStatus::ALL
            .iter()
            .all(|s| !s.can_transition_to(*s)));
    }

    #[test]
    fn every_non_terminal_status_can_reach_a_terminal_one() {
        assert!(BuildRunStatus::ALL
            .iter()
            .filter(|s| !s.is_terminal())
            .all(|s| BuildRunStatus::ALL
                .iter()
                .any(|n| n.is_terminal() && s.can_transition_to(*n))));
        assert!(DeploymentStatus::ALL
            .iter()
            .filter(|s| !s.is_terminal())
            .all(|s| DeploymentStatus::ALL
                .iter()
                .any(|n| n.is_terminal() && s.can_transition_to(*n))));
        assert!(PipelineRunStatus::ALL
            .iter()
            .filter(|s| !s.is_terminal())
            .all(|s| PipelineRunStatus::ALL
                .iter()
                .any(|n| n.is_terminal() && s.can_transition_to(*n))));
    }

    #[test]
    fn deployments_pass_the_approval_gate_before_deploying() {
        use DeploymentStatus::*;
        assert!(Pending.can_transition_to(AwaitingApproval));
        assert!(
            Pending.can_transition_to(Deploying),
            "environments without a gate"
        );
        assert!(AwaitingApproval.can_transition_to(Deploying));
        assert!(AwaitingApproval.can_transition_to(Rejected));
        assert!(
            !Pending.can_transition_to(Rejected),
            "only a waiting deployment is rejected"
        );
        assert!(!Deploying.can_transition_to(AwaitingApproval));
        assert!(
            !Deploying.can_transition_to(Superseded),
            "a running deployment finishes"
        );
        assert!(Deploying.can_transition_to(Succeeded));
        assert!(!Pending.can_transition_to(Succeeded));
        assert!(AwaitingApproval.can_transition_to(Superseded));
    }

    #[test]
    fn pipeline_runs_follow_their_lifecycle() {
        use PipelineRunStatus::*;
        assert!(Pending.can_transition_to(Running));
        assert!(Pending.can_transition_to(Cancelled));
        assert!(!Pending.can_transition_to(Succeeded));
        assert!(Running.can_transition_to(Succeeded));
        assert!(Running.can_transition_to(Failed));
        assert!(!Running.can_transition_to(Pending));
    }

    #[test]
    fn every_error_class_has_a_cause_and_a_hint() {
        for c in ErrorClass::ALL {
            assert!(!c.cause().is_empty() && !c.hint().is_empty(), "{c}");
        }
    }
}
