//! The controller: reconciles NodeENIs against EC2. [`desired`], [`plan`], [`adopt`], [`addresses`], [`nads`],
//! [`reasons`], [`status`] and [`eninode`] are pure; [`executor`] performs actions,
//! [`kube_io`] talks to the API server, [`watch`] feeds the reconciler, [`reconciler`] runs
//! the loop.

pub mod addresses;
pub mod adopt;
pub mod desired;
pub mod eninode;
pub mod executor;
pub mod kube_io;
pub mod leader;
pub mod metrics;
pub mod migration;
pub mod nads;
pub mod plan;
pub mod reasons;
pub mod reconciler;
pub mod resolve;
pub mod status;
pub mod watch;
