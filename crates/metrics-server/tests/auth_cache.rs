//! The token and authorization caches in front of TokenReview and SubjectAccessReview.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kaddons_metrics_server::api::{
    Attributes, Authorizer, CachingAuthorizer, CachingTokenReviewer, Decision, Target,
    TokenReviewer, UserInfo,
};
use kaddons_testkit::auth::{FnAuthorizer, StaticTokens};

fn attrs(user: &str, verb: &str, target: Target) -> Attributes {
    Attributes {
        user: UserInfo::new(user, &[]),
        verb: verb.into(),
        target,
    }
}

fn nodes(name: &str) -> Target {
    Target::Resource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        resource: "nodes".into(),
        namespace: String::new(),
        name: name.into(),
    }
}

#[tokio::test]
async fn token_cache_hits_and_expires() {
    let inner = StaticTokens::new([("good".to_string(), UserInfo::new("alice", &["g"]))]);
    let calls = inner.calls.clone();
    let cache =
        CachingTokenReviewer::new(inner, Duration::from_secs(60), Duration::from_millis(50));
    assert_eq!(cache.review("good").await.unwrap().unwrap().name, "alice");
    assert_eq!(cache.review("good").await.unwrap().unwrap().name, "alice");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(cache.review("bad").await.unwrap().is_none());
    assert!(cache.review("bad").await.unwrap().is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(cache.review("bad").await.unwrap().is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 3, "negative entry expired");
    assert!(cache.review("good").await.unwrap().is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 3, "positive entry still live");
}

#[tokio::test]
async fn authorizer_cache_keys_on_attributes() {
    let inner = FnAuthorizer::new(|a: &Attributes| {
        if a.verb == "get" {
            Decision::Allow
        } else {
            Decision::Deny {
                reason: "nope".into(),
            }
        }
    });
    let calls = inner.calls.clone();
    let cache = CachingAuthorizer::with_defaults(inner);
    let get = attrs("u", "get", nodes("n"));
    let list = attrs("u", "list", nodes(""));
    assert_eq!(cache.authorize(&get).await.unwrap(), Decision::Allow);
    assert_eq!(cache.authorize(&get).await.unwrap(), Decision::Allow);
    assert!(matches!(
        cache.authorize(&list).await.unwrap(),
        Decision::Deny { .. }
    ));
    assert!(matches!(
        cache.authorize(&list).await.unwrap(),
        Decision::Deny { .. }
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
