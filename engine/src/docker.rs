//! The narrow wrapper over bollard the rest of the engine uses (grows with the
//! build backend).

pub use bollard::Docker;
