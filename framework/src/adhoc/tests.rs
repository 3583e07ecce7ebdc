//! The plugin's session limits under concurrent requests (the mock-server
//! tests in `framework/tests/adhoc.rs` cannot run two stages of one account
//! at once: the dispatcher orders each account's requests).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::stanza_error::DefinedCondition;

use super::*;
use crate::context::QueueLimits;

/// A first stage that waits for the test to let it finish.
struct Slow(Arc<Semaphore>);

#[async_trait]
impl AdhocCommand for Slow {
    fn node(&self) -> &str {
        "slow"
    }
    fn name(&self) -> &str {
        "Slow"
    }
    async fn execute(&self, _cx: &Context, _s: &mut CommandSession) -> Result<Step, HandlerError> {
        let _gate = self.0.acquire().await.map_err(HandlerError::internal)?;
        Ok(Step::form_then_more(DataForm::new(
            DataFormType::Form,
            "urn:test:slow",
            Vec::new(),
        )))
    }
}

fn context() -> Context {
    let limits = QueueLimits {
        stanzas: 16,
        bytes: 1 << 20,
    };
    let jid = BareJid::new("svc.test").expect("jid");
    Context::new(
        jid,
        limits,
        1,
        Duration::from_secs(5),
        CancellationToken::new(),
    )
    .0
}

fn execute(from: &str) -> IqRequest {
    IqRequest {
        from: Jid::new(from).expect("jid"),
        to: Jid::new("svc.test").expect("jid"),
        id: "x".to_owned(),
        type_: crate::plugin::IqType::Set,
        payload: Command::request("slow").into(),
    }
}

fn condition(result: &IqResult) -> Option<DefinedCondition> {
    match result {
        Ok(_) => None,
        Err(HandlerError::Stanza(e)) => Some(e.defined_condition.clone()),
        Err(_) => Some(DefinedCondition::InternalServerError),
    }
}

#[tokio::test]
async fn concurrent_requests_cannot_pass_the_limits() {
    let gate = Arc::new(Semaphore::new(0));
    let plugin = Arc::new(AdhocPlugin::with_limits(
        vec![Arc::new(Slow(Arc::clone(&gate)))],
        Vec::new(),
        Limits {
            per_account: 2,
            total: 3,
            idle: Duration::from_secs(60),
        },
    ));
    let cx = context();
    // Five resources of one account and two other accounts, all at once,
    // every first stage still running when the next request arrives.
    let from = [
        "u@test/1", "u@test/2", "u@test/3", "u@test/4", "u@test/5", "v@test/1", "w@test/1",
    ];
    let mut tasks = Vec::new();
    for f in from {
        let (plugin, cx) = (Arc::clone(&plugin), cx.clone());
        tasks.push(tokio::spawn(async move {
            plugin.handle_iq(&cx, execute(f)).await
        }));
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(plugin.sessions.len(), 3, "places are taken on arrival");
    gate.add_permits(from.len());
    let mut refused = Vec::new();
    for (f, task) in from.iter().zip(tasks) {
        let result = task.await.expect("join");
        if condition(&result) == Some(DefinedCondition::ResourceConstraint) {
            refused.push(*f);
        } else {
            assert!(result.is_ok(), "{f}: {:?}", condition(&result));
        }
    }
    assert_eq!(refused, ["u@test/3", "u@test/4", "u@test/5", "w@test/1"]);
    assert_eq!(plugin.sessions.len(), 3);
    assert_eq!(plugin.sessions.running(), 0);
}
