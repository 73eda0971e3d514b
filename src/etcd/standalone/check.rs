//! Checking a running member against what a restore or reset should have produced: exactly
//! one voting member with the expected name, no alarms, and the expected revision.
//!
//! `compare_member` is the pure decision; `check_member` only gathers the observation. Nothing
//! here writes to etcd (no disarming, no member updates): the caller decides what to do.

use std::fmt;

use etcd_client::{AlarmAction, AlarmType};

use super::StandaloneError;

/// What the member must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberExpectation {
    /// The single member's name.
    pub name: String,
    /// When set, the member's peer URLs must include it (the URL the restore recorded).
    pub peer_url: Option<String>,
    /// The store's revision must be at least this.
    pub min_revision: i64,
    /// When set, the revision must be exactly this (e.g. the snapshot's status revision).
    pub exact_revision: Option<i64>,
}

/// One member as etcd lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedMember {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// One raised alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedAlarm {
    pub member_id: u64,
    /// etcd's alarm name (`NOSPACE`, `CORRUPT`).
    pub alarm: String,
}

/// Everything the check looks at, gathered from the running member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberObservation {
    pub members: Vec<ObservedMember>,
    pub alarms: Vec<ObservedAlarm>,
    /// The store's current revision (from a response header).
    pub revision: i64,
}

/// The member that passed the check, for logs and the restore record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReport {
    pub member: ObservedMember,
    pub revision: i64,
}

/// One way the member differs from the expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberMismatch {
    MemberCount {
        names: Vec<String>,
    },
    Name {
        expected: String,
        found: String,
    },
    PeerUrl {
        expected: String,
        found: Vec<String>,
    },
    Learner {
        name: String,
    },
    Alarms {
        alarms: Vec<ObservedAlarm>,
    },
    RevisionBelow {
        minimum: i64,
        found: i64,
    },
    RevisionDiffers {
        expected: i64,
        found: i64,
    },
}

impl fmt::Display for MemberMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MemberCount { names } => write!(
                f,
                "expected exactly one member, found {} [{}]",
                names.len(),
                names.join(", ")
            ),
            Self::Name { expected, found } => {
                write!(f, "member name is {found:?}, expected {expected:?}")
            }
            Self::PeerUrl { expected, found } => write!(
                f,
                "member peer URLs are [{}], expected {expected}",
                found.join(", ")
            ),
            Self::Learner { name } => write!(f, "member {name:?} is a learner"),
            Self::Alarms { alarms } => {
                let texts: Vec<String> = alarms
                    .iter()
                    .map(|a| format!("{} on member {:x}", a.alarm, a.member_id))
                    .collect();
                write!(f, "alarms raised: {}", texts.join(", "))
            }
            Self::RevisionBelow { minimum, found } => {
                write!(f, "revision is {found}, expected at least {minimum}")
            }
            Self::RevisionDiffers { expected, found } => {
                write!(f, "revision is {found}, expected exactly {expected}")
            }
        }
    }
}

/// Compares an observation with the expectation; every difference is reported, not the first.
pub fn compare_member(
    observed: &MemberObservation,
    expected: &MemberExpectation,
) -> Result<MemberReport, Vec<MemberMismatch>> {
    let mut differences = Vec::new();
    let single = match observed.members.as_slice() {
        [member] => Some(member),
        members => {
            let names = members.iter().map(|m| m.name.clone()).collect();
            differences.push(MemberMismatch::MemberCount { names });
            None
        }
    };
    if let Some(member) = single {
        if member.name != expected.name {
            differences.push(MemberMismatch::Name {
                expected: expected.name.clone(),
                found: member.name.clone(),
            });
        }
        if let Some(url) = &expected.peer_url
            && !member.peer_urls.contains(url)
        {
            differences.push(MemberMismatch::PeerUrl {
                expected: url.clone(),
                found: member.peer_urls.clone(),
            });
        }
        if member.is_learner {
            differences.push(MemberMismatch::Learner {
                name: member.name.clone(),
            });
        }
    }
    if !observed.alarms.is_empty() {
        differences.push(MemberMismatch::Alarms {
            alarms: observed.alarms.clone(),
        });
    }
    let found = observed.revision;
    if found < expected.min_revision {
        differences.push(MemberMismatch::RevisionBelow {
            minimum: expected.min_revision,
            found,
        });
    }
    if let Some(exact) = expected.exact_revision.filter(|&exact| exact != found) {
        differences.push(MemberMismatch::RevisionDiffers {
            expected: exact,
            found,
        });
    }
    match single {
        Some(member) if differences.is_empty() => Ok(MemberReport {
            member: member.clone(),
            revision: found,
        }),
        _ => Err(differences),
    }
}

/// Reads members, alarms and the revision from `client` and compares them with `expected`.
pub async fn check_member(
    client: &mut etcd_client::Client,
    expected: &MemberExpectation,
) -> Result<MemberReport, StandaloneError> {
    let observed = observe(client).await?;
    compare_member(&observed, expected)
        .map_err(|differences| StandaloneError::Member { differences })
}

/// Gathers the observation (read-only calls).
async fn observe(client: &mut etcd_client::Client) -> Result<MemberObservation, StandaloneError> {
    let query = |what| move |source| StandaloneError::Query { what, source };
    let list = client
        .member_list()
        .await
        .map_err(query("the member list"))?;
    let members = list
        .members()
        .iter()
        .map(|m| ObservedMember {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        })
        .collect();
    let alarms = client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .map_err(query("the alarm list"))?;
    let alarms = alarms
        .alarms()
        .iter()
        .map(|a| ObservedAlarm {
            member_id: a.member_id(),
            alarm: a.alarm().as_str_name().to_string(),
        })
        .collect();
    let status = client.status().await.map_err(query("the member status"))?;
    let revision = status
        .header()
        .ok_or(StandaloneError::NoHeader {
            what: "the member status",
        })?
        .revision();
    Ok(MemberObservation {
        members,
        alarms,
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> ObservedMember {
        ObservedMember {
            id: 0xb71f75320dc06a6c,
            name: name.into(),
            peer_urls: vec!["http://127.0.0.1:2380".into()],
            client_urls: vec!["http://127.0.0.1:40001".into()],
            is_learner: false,
        }
    }

    fn healthy(revision: i64) -> MemberObservation {
        MemberObservation {
            members: vec![member("x")],
            alarms: vec![],
            revision,
        }
    }

    fn expect(min_revision: i64, exact_revision: Option<i64>) -> MemberExpectation {
        MemberExpectation {
            name: "x".into(),
            peer_url: Some("http://127.0.0.1:2380".into()),
            min_revision,
            exact_revision,
        }
    }

    #[test]
    fn a_single_matching_member_passes() {
        let report = compare_member(&healthy(7), &expect(7, Some(7))).unwrap();
        assert_eq!(report.member, member("x"));
        assert_eq!(report.revision, 7);
        assert!(compare_member(&healthy(9), &expect(3, None)).is_ok());
    }

    #[test]
    fn revision_bounds_are_checked_separately() {
        let errs = compare_member(&healthy(5), &expect(6, Some(6))).unwrap_err();
        assert_eq!(
            errs,
            [
                MemberMismatch::RevisionBelow {
                    minimum: 6,
                    found: 5
                },
                MemberMismatch::RevisionDiffers {
                    expected: 6,
                    found: 5
                },
            ]
        );
        let errs = compare_member(&healthy(8), &expect(6, Some(6))).unwrap_err();
        assert_eq!(
            errs,
            [MemberMismatch::RevisionDiffers {
                expected: 6,
                found: 8
            }]
        );
    }

    #[test]
    fn every_difference_of_the_member_is_named() {
        let mut observed = healthy(7);
        observed.members[0].name = "old".into();
        observed.members[0].peer_urls = vec!["https://10.0.0.1:2380".into()];
        observed.members[0].is_learner = true;
        observed.alarms.push(ObservedAlarm {
            member_id: 0xab,
            alarm: "NOSPACE".into(),
        });
        let errs = compare_member(&observed, &expect(1, None)).unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "member name is \"old\", expected \"x\"",
                "member peer URLs are [https://10.0.0.1:2380], expected http://127.0.0.1:2380",
                "member \"old\" is a learner",
                "alarms raised: NOSPACE on member ab",
            ]
        );
    }

    #[test]
    fn zero_or_several_members_fail() {
        let mut observed = healthy(7);
        observed.members.push(member("y"));
        let errs = compare_member(&observed, &expect(1, None)).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "expected exactly one member, found 2 [x, y]"
        );
        observed.members.clear();
        let errs = compare_member(&observed, &expect(1, None)).unwrap_err();
        assert_eq!(errs, [MemberMismatch::MemberCount { names: vec![] }]);
    }

    #[test]
    fn the_error_lists_all_differences() {
        let err = StandaloneError::Member {
            differences: compare_member(&healthy(2), &expect(3, Some(3))).unwrap_err(),
        };
        assert_eq!(
            err.to_string(),
            "failed to verify the etcd member: revision is 2, expected at least 3; \
             revision is 2, expected exactly 3"
        );
    }
}
