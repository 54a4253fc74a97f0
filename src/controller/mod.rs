//! The controller: reconciles NodeENIs against EC2.

pub mod desired;
pub mod plan;
