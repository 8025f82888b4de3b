//! Writes core/v1 Events about Rollouts, folding exact repeats into a count.
//!
//! kube-runtime's `Recorder` writes events.k8s.io/v1 Events with `eventTime`
//! only, so `kubectl get events --sort-by=.lastTimestamp` cannot order them,
//! and its series key leaves out the note, so "step 2/7 completed" is folded
//! into "step 1/7 completed". This writer sets `firstTimestamp`,
//! `lastTimestamp` and `count`, and folds only repeats of the same
//! object + type + reason + message seen within [`FOLD_WINDOW`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

/// Repeats further apart than this start a new Event (client-go uses 10 min).
pub const FOLD_WINDOW: Duration = Duration::from_secs(600);
/// Most series remembered; the oldest is forgotten first.
pub const FOLD_CAPACITY: usize = 4096;
/// Longest message written, in bytes (the API server refuses longer notes
/// on events.k8s.io, which shows the same objects).
pub const MESSAGE_LIMIT: usize = 1024;

/// What makes two Events "the same" for folding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub namespace: String,
    pub object_uid: String,
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone)]
struct Series {
    event_name: String,
    count: i32,
    last: Timestamp,
}

/// What to write for one Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A new Event object.
    Create,
    /// Bump the existing Event `name` to `count` and the new `lastTimestamp`.
    Fold { name: String, count: i32 },
}

/// Bounded memory of recent Events, pure so it is tested without a cluster.
#[derive(Debug)]
pub struct SeriesCache {
    entries: HashMap<SeriesKey, Series>,
    window: Duration,
    capacity: usize,
}

impl SeriesCache {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            window,
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decide how to write `key` at `now`; a fold is counted at once.
    pub fn decide(&mut self, key: &SeriesKey, now: Timestamp) -> Write {
        let window = self.window;
        match self.entries.get_mut(key) {
            Some(series) if within(series.last, now, window) => {
                series.count = series.count.saturating_add(1);
                series.last = now;
                Write::Fold {
                    name: series.event_name.clone(),
                    count: series.count,
                }
            }
            _ => Write::Create,
        }
    }

    /// Remember a freshly created Event, forgetting expired and oldest ones.
    pub fn remember(&mut self, key: SeriesKey, event_name: String, now: Timestamp) {
        let window = self.window;
        self.entries.retain(|_, s| within(s.last, now, window));
        while self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
        self.entries.insert(
            key,
            Series {
                event_name,
                count: 1,
                last: now,
            },
        );
    }

    /// Forget a series whose Event is gone (expired by the API server's TTL).
    pub fn forget(&mut self, key: &SeriesKey) {
        self.entries.remove(key);
    }
}

fn within(last: Timestamp, now: Timestamp, window: Duration) -> bool {
    let window = jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
    now.duration_since(last) <= window
}

/// Cut `text` to at most `limit` bytes without splitting a character.
pub fn truncate_on_char_boundary(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Publishes Events for one controller instance.
pub struct EventWriter {
    client: Client,
    component: String,
    instance: String,
    cache: Mutex<SeriesCache>,
}

impl EventWriter {
    pub fn new(client: Client, component: &str, instance: &str) -> Self {
        Self {
            client,
            component: component.into(),
            instance: instance.into(),
            cache: Mutex::new(SeriesCache::new(FOLD_WINDOW, FOLD_CAPACITY)),
        }
    }

    /// Write one Event about `object`; failures are logged, never returned,
    /// because an Event must not fail the reconcile that reports it.
    pub async fn publish<K>(
        &self,
        object: &K,
        action: &str,
        warning: bool,
        reason: &str,
        note: &str,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let namespace = object.namespace().unwrap_or_default();
        let message = truncate_on_char_boundary(note, MESSAGE_LIMIT).to_string();
        let key = SeriesKey {
            namespace: namespace.clone(),
            object_uid: object.uid().unwrap_or_else(|| object.name_any()),
            warning,
            reason: reason.into(),
            message: message.clone(),
        };
        let now = Timestamp::now();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let decision = match self.cache.lock() {
            Ok(mut cache) => cache.decide(&key, now),
            Err(_) => Write::Create,
        };
        if let Write::Fold { name, count } = decision {
            let patch = json!({ "count": count, "lastTimestamp": Time(now) });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                Err(err) => {
                    warn!(object = %object.name_any(), event = %name, error = %err,
                        "cannot fold a repeated Event; writing a new one");
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.forget(&key);
                    }
                }
            }
        }
        let event = self.event(object, action, warning, reason, message, now);
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.remember(key, created.name_any(), now);
                }
            }
            Err(err) => {
                warn!(object = %object.name_any(), reason, error = %err, "cannot publish Event");
            }
        }
    }

    fn event<K>(
        &self,
        object: &K,
        action: &str,
        warning: bool,
        reason: &str,
        message: String,
        now: Timestamp,
    ) -> Event
    where
        K: Resource<DynamicType = ()>,
    {
        let reference = object.object_ref(&());
        Event {
            metadata: ObjectMeta {
                // The server adds a random suffix, so names never collide.
                generate_name: Some(format!("{}.", object.name_any())),
                namespace: object.namespace(),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: reference.api_version,
                kind: reference.kind,
                name: reference.name,
                namespace: reference.namespace,
                uid: reference.uid,
                resource_version: reference.resource_version,
                field_path: None,
            },
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            reason: Some(reason.into()),
            message: Some(message),
            action: Some(action.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(message: &str) -> SeriesKey {
        SeriesKey {
            namespace: "team".into(),
            object_uid: "uid-1".into(),
            warning: false,
            reason: "StepCompleted".into(),
            message: message.into(),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn a_different_note_is_its_own_event() {
        let mut cache = SeriesCache::new(FOLD_WINDOW, 10);
        assert_eq!(
            cache.decide(&key("step 1/7 completed"), at(0)),
            Write::Create
        );
        cache.remember(key("step 1/7 completed"), "r.a".into(), at(0));
        assert_eq!(
            cache.decide(&key("step 2/7 completed"), at(1)),
            Write::Create
        );
    }

    #[test]
    fn an_identical_repeat_within_the_window_is_counted() {
        let mut cache = SeriesCache::new(FOLD_WINDOW, 10);
        cache.remember(key("paused"), "r.a".into(), at(0));
        let fold = |count| Write::Fold {
            name: "r.a".into(),
            count,
        };
        assert_eq!(cache.decide(&key("paused"), at(5)), fold(2));
        assert_eq!(cache.decide(&key("paused"), at(9)), fold(3));
    }

    #[test]
    fn a_repeat_after_the_window_starts_a_new_event() {
        let mut cache = SeriesCache::new(Duration::from_secs(600), 10);
        cache.remember(key("paused"), "r.a".into(), at(0));
        assert_eq!(cache.decide(&key("paused"), at(601)), Write::Create);
    }

    #[test]
    fn the_window_slides_with_each_repeat() {
        let mut cache = SeriesCache::new(Duration::from_secs(600), 10);
        cache.remember(key("paused"), "r.a".into(), at(0));
        assert!(matches!(
            cache.decide(&key("paused"), at(500)),
            Write::Fold { .. }
        ));
        assert!(matches!(
            cache.decide(&key("paused"), at(1000)),
            Write::Fold { .. }
        ));
    }

    #[test]
    fn type_reason_and_object_are_part_of_the_key() {
        let mut cache = SeriesCache::new(FOLD_WINDOW, 10);
        cache.remember(key("x"), "r.a".into(), at(0));
        let mut warning = key("x");
        warning.warning = true;
        let mut reason = key("x");
        reason.reason = "Other".into();
        let mut object = key("x");
        object.object_uid = "uid-2".into();
        for other in [warning, reason, object] {
            assert_eq!(cache.decide(&other, at(1)), Write::Create, "{other:?}");
        }
    }

    #[test]
    fn the_cache_stays_bounded_and_forgets_the_oldest() {
        let mut cache = SeriesCache::new(FOLD_WINDOW, 3);
        for i in 0..5 {
            cache.remember(key(&format!("m{i}")), format!("r.{i}"), at(i));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.decide(&key("m0"), at(6)), Write::Create);
        assert_eq!(cache.decide(&key("m1"), at(6)), Write::Create);
        assert!(matches!(
            cache.decide(&key("m4"), at(6)),
            Write::Fold { .. }
        ));
    }

    #[test]
    fn expired_series_are_dropped_when_remembering() {
        let mut cache = SeriesCache::new(Duration::from_secs(10), 100);
        cache.remember(key("a"), "r.a".into(), at(0));
        cache.remember(key("b"), "r.b".into(), at(20));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn forget_makes_the_next_repeat_a_new_event() {
        let mut cache = SeriesCache::new(FOLD_WINDOW, 10);
        cache.remember(key("a"), "r.a".into(), at(0));
        cache.forget(&key("a"));
        assert!(cache.is_empty());
        assert_eq!(cache.decide(&key("a"), at(1)), Write::Create);
    }

    #[test]
    fn truncation_never_splits_a_character() {
        let text = "é".repeat(600); // 1200 bytes, 2 per char
        let cut = truncate_on_char_boundary(&text, MESSAGE_LIMIT);
        assert_eq!(cut.len(), 1024);
        let odd = format!("a{text}");
        let cut = truncate_on_char_boundary(&odd, MESSAGE_LIMIT);
        assert_eq!(cut.len(), 1023);
        assert_eq!(truncate_on_char_boundary("short", MESSAGE_LIMIT), "short");
    }
}
