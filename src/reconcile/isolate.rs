//! Panic isolation: one object's reconcile may panic without taking the
//! controller (and every other object) down with it.
//!
//! kube-runtime polls all reconciles inside one stream, so an unwinding
//! panic would end the whole process and crash-loop it on the same object.
//! Catching it here turns it into an error on that object instead.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// Run `work`; a panic inside it comes back as `Err` with the panic's message.
///
/// `AssertUnwindSafe` is sound here because a reconcile keeps no state
/// across calls that a half-finished run could leave inconsistent: the next
/// one observes the cluster again from scratch.
pub async fn isolate<T>(work: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(|payload| panic_message(payload.as_ref()))
}

/// The text a panic was raised with, when it has one.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic without a message".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_and_the_next_object_still_runs() {
        let poisoned = isolate(async {
            let steps: Vec<u64> = Vec::new();
            // Indexing past the end: the kind of bug the isolation is for.
            let seconds = std::hint::black_box(&steps).iter().sum::<u64>() as usize;
            steps[seconds]
        })
        .await;
        let message = poisoned.expect_err("the panic is caught");
        assert!(message.contains("index out of bounds"), "{message}");
        assert_eq!(
            isolate(async { 7 }).await,
            Ok(7),
            "healthy work is untouched"
        );
        let formatted = isolate(async {
            let name = "web";
            panic!("cannot plan {name}")
        })
        .await;
        assert_eq!(formatted, Err::<(), _>("cannot plan web".into()));
    }
}
