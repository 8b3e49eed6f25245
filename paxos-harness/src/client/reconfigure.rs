//! Changing a running cluster's membership through its client ports: find the leader among
//! the nodes and ask it ([`reconfigure`]). What `paxos-harness reconfigure` and the jepsen
//! membership nemesis both do.

use super::protocol::{MembershipView, Roles};
use super::{Client, ClientError};
use std::time::Duration;
use tokio::time::{Instant, sleep, timeout};

/// How long one node may take to answer a status request before the next one is asked.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two rounds over the nodes when none took the change.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Why a change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReconfigureError {
    /// The leader refused it (a change already in progress, an id used before, a new
    /// acceptor that is not a learner yet, ...): it will not happen as asked.
    #[error("refused: {0}")]
    Refused(String),
    /// No node took it in time (none led, or the leader changed each time it was asked).
    #[error("no leader took the change in {within:?} ({last})")]
    NoLeader {
        /// How long it was tried.
        within: Duration,
        /// The last node's answer.
        last: String,
    },
}

/// Ask the leader among `nodes` (client addresses) for the configuration `roles`, until it is
/// in force on the leader or `within` has passed. A node that says it leads but answers
/// "not the leader" (it stepped down between the two questions) is looked past.
///
/// # Errors
/// [`ReconfigureError::Refused`] with the leader's reason, or
/// [`ReconfigureError::NoLeader`] when no node took it in time.
pub async fn reconfigure(
    nodes: &[String],
    roles: &Roles,
    within: Duration,
    token: Option<&str>,
) -> Result<MembershipView, ReconfigureError> {
    let deadline = Instant::now() + within;
    let mut last = String::from("no node answered");
    while Instant::now() < deadline {
        for node in nodes {
            match ask_if_leader(node, roles, deadline, token).await {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(ClientError::Node {
                    error,
                    not_leader: true,
                    ..
                }) => last = format!("{node}: {error}"),
                Err(ClientError::Node { error, .. }) => {
                    return Err(ReconfigureError::Refused(error));
                }
                Err(e) => last = format!("{node}: {e}"),
            }
        }
        sleep(RETRY_EVERY).await;
    }
    Err(ReconfigureError::NoLeader { within, last })
}

/// Send the change to `node` if it says it leads; `None` if it does not (or is unreachable
/// within [`ASK_TIMEOUT`]).
async fn ask_if_leader(
    node: &str,
    roles: &Roles,
    deadline: Instant,
    token: Option<&str>,
) -> Result<Option<MembershipView>, ClientError> {
    let probe = async {
        let mut client = Client::connect_with(node, token).await?;
        let status = client.status().await?;
        Ok::<_, ClientError>((status.leader == Some(status.id)).then_some(client))
    };
    let Ok(found) = timeout(ASK_TIMEOUT, probe).await else {
        return Ok(None);
    };
    let Some(mut leader) = found? else {
        return Ok(None);
    };
    let left = deadline.saturating_duration_since(Instant::now());
    // The node gives up at `left`; allow its answer a moment to arrive.
    match timeout(left + ASK_TIMEOUT, leader.reconfigure(roles, Some(left))).await {
        Ok(answer) => answer.map(Some),
        Err(_) => Err(ClientError::Closed),
    }
}
