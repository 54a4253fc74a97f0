//! The controller: reconciles NodeENIs against EC2. [`desired`], [`plan`], [`adopt`] and
//! [`reasons`] are pure;
//! [`executor`] performs actions, [`kube_io`] talks to the API server, [`reconciler`] runs
//! the loop.

pub mod adopt;
pub mod desired;
pub mod executor;
pub mod kube_io;
pub mod leader;
pub mod metrics;
pub mod migration;
pub mod plan;
pub mod reasons;
pub mod reconciler;
pub mod resolve;
pub mod status;
