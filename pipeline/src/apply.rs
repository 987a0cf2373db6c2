//! Apply stage (ZooKeeper's FinalRequestProcessor for writes): turns what applying a txn
//! produced into the client's reply.
//!
//! The tree itself was changed when prep applied the txn to the speculative tree; releasing
//! it publishes that version, so there is exactly one code path that mutates a tree
//! (`Tree::apply`) for leaders, followers and log replay alike.

use rzk_proto::{ErrorCode, MultiResult, Response};
use rzk_tree::OpOutcome;

fn single(outcome: &OpOutcome) -> (ErrorCode, Response) {
    match outcome {
        OpOutcome::Created {
            path,
            stat,
            reply_stat,
        } => {
            let path = path.to_string();
            let response = if *reply_stat {
                Response::Create2 { path, stat: *stat }
            } else {
                Response::Create { path }
            };
            (ErrorCode::Ok, response)
        }
        OpOutcome::DataSet { stat } | OpOutcome::AclSet { stat } => {
            (ErrorCode::Ok, Response::Stat(*stat))
        }
        OpOutcome::Deleted
        | OpOutcome::Checked
        | OpOutcome::SessionCreated
        | OpOutcome::SessionClosed => (ErrorCode::Ok, Response::Empty),
        OpOutcome::Error(err) => (*err, Response::Empty),
    }
}

fn multi_result(outcome: &OpOutcome) -> MultiResult {
    match outcome {
        OpOutcome::Created {
            path,
            stat,
            reply_stat,
        } => {
            if *reply_stat {
                MultiResult::Create2 {
                    path: path.to_string(),
                    stat: *stat,
                }
            } else {
                MultiResult::Create {
                    path: path.to_string(),
                }
            }
        }
        OpOutcome::Deleted => MultiResult::Delete,
        OpOutcome::DataSet { stat } => MultiResult::SetData { stat: *stat },
        OpOutcome::Checked => MultiResult::Check,
        OpOutcome::Error(err) => MultiResult::Error { err: *err },
        OpOutcome::AclSet { .. } | OpOutcome::SessionCreated | OpOutcome::SessionClosed => {
            unreachable!("not a multi op: {outcome:?}")
        }
    }
}

/// The reply for a released write: header error code and body. A multi's header is Ok even
/// when an op failed; its results carry the errors (as ZooKeeper's FinalRequestProcessor).
pub fn reply(outcomes: &[OpOutcome], is_multi: bool) -> (ErrorCode, Response) {
    if is_multi {
        (
            ErrorCode::Ok,
            Response::Multi(outcomes.iter().map(multi_result).collect()),
        )
    } else {
        let outcome = outcomes.first().expect("a txn has one outcome");
        single(outcome)
    }
}
