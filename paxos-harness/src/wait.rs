//! [`eventually`]: the one polling loop. Everything in the harness that waits for a condition
//! ("every node decided", "the mailbox drained", "the node answers") looks through it, in
//! whatever time the run uses (simulated under turmoil, real otherwise).

use crate::cluster::Failure;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// What one look found: done, with a result, or not yet, with what is still missing (the
/// failure message if time runs out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Look<T> {
    /// The condition holds.
    Done(T),
    /// Not yet: what is missing.
    Wait(String),
}

/// Look with `look` every `every` until it is [`Look::Done`], for at most `within`. The first
/// look happens at once; the last one at or after the deadline.
///
/// # Errors
/// The last [`Look::Wait`] reason once `within` has passed, or the first error `look` returns
/// (an error ends the wait at once: it is not something more time can mend).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use paxos_harness::wait::{Look, eventually};
/// use std::time::Duration;
///
/// let start = tokio::time::Instant::now();
/// let done = eventually(Duration::from_secs(1), Duration::from_millis(1), || async {
///     Ok(match start.elapsed() >= Duration::from_millis(5) {
///         true => Look::Done("five ms later"),
///         false => Look::Wait("too early".into()),
///     })
/// })
/// .await;
/// assert_eq!(done.unwrap(), "five ms later");
///
/// let never = eventually(Duration::from_millis(3), Duration::from_millis(1), || async {
///     Ok(Look::<()>::Wait("still nothing".into()))
/// })
/// .await;
/// assert_eq!(never.unwrap_err().0, "still nothing (waited 3ms)");
/// # });
/// ```
pub async fn eventually<T, Fut>(
    within: Duration,
    every: Duration,
    mut look: impl FnMut() -> Fut,
) -> Result<T, Failure>
where
    Fut: Future<Output = Result<Look<T>, Failure>>,
{
    let deadline = Instant::now() + within;
    loop {
        match look().await? {
            Look::Done(t) => return Ok(t),
            Look::Wait(missing) if Instant::now() >= deadline => {
                return Err(Failure(format!("{missing} (waited {within:?})")));
            }
            Look::Wait(_) => tokio::time::sleep(every).await,
        }
    }
}
